# The strong model on w2s_train: the ceiling (gold labels) once per cell, shared by every arm, and
# one W2S student per arm and loss (the weak model's soft labels). Then the cell's table.


rule strong_features:
    input:
        unpack(strong_feature_inputs),
    output:
        features="results/{dataset}/seed{seed}/{strong}/features/item.npz",
    log:
        "results/logs/strong_features/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/strong_features/{dataset}_seed{seed}_{strong}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
        gpu=1,
    params:
        train=feature_settings("strong"),
        device=config["device"],
        dtype=config["dtype"],
    script:
        "../scripts/strong_features.py"


rule train_ceiling:
    input:
        unpack(train_strong_inputs),
    output:
        test="results/{dataset}/seed{seed}/{strong}/ceiling/test_predictions.parquet",
        metrics="results/{dataset}/seed{seed}/{strong}/ceiling/metrics.json",
    log:
        "results/logs/train_ceiling/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/train_ceiling/{dataset}_seed{seed}_{strong}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: training_threads("strong")
    resources:
        mem_mb=6000,
        gpu=1,
    params:
        role="ceiling",
        loss="xent",
        train=config["train"]["strong"],
        device=config["device"],
        dtype=config["dtype"],
    script:
        "../scripts/train_strong.py"


rule train_student:
    input:
        unpack(train_strong_inputs),
    output:
        test="results/{dataset}/seed{seed}/{strong}/w2s/{weak}/{arm}/{loss}/test_predictions.parquet",
        metrics="results/{dataset}/seed{seed}/{strong}/w2s/{weak}/{arm}/{loss}/metrics.json",
    log:
        "results/logs/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}.log",
    benchmark:
        "results/benchmarks/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: training_threads("strong")
    resources:
        mem_mb=6000,
        gpu=1,
    params:
        role="student",
        loss=lambda wildcards: wildcards.loss,
        train=config["train"]["strong"],
        device=config["device"],
        dtype=config["dtype"],
    script:
        "../scripts/train_strong.py"


rule w2s_summary:
    input:
        unpack(w2s_summary_inputs),
    output:
        summary="results/{dataset}/seed{seed}/{strong}/w2s/{weak}/align.json",
        table="results/{dataset}/seed{seed}/{strong}/w2s/{weak}/align.md",
    log:
        "results/logs/w2s_summary/{dataset}_seed{seed}_{strong}_{weak}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        arms=config["align"]["arms"],
        losses=config["train"]["strong"]["losses"],
    script:
        "../scripts/w2s_summary.py"
