# Align (Ψ): the weak model trained on weak_train in each arm. Arms are config data (context and
# targets); arms reading the same input layout share one feature cache.


rule weak_features:
    input:
        unpack(weak_feature_inputs),
    output:
        features="results/{dataset}/seed{seed}/{strong}/weak/{weak}/features/{context}.npz",
    log:
        "results/logs/weak_features/{dataset}_seed{seed}_{strong}_{weak}_{context}.log",
    benchmark:
        "results/benchmarks/weak_features/{dataset}_seed{seed}_{strong}_{weak}_{context}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        train=feature_settings("weak"),
        device=config["device"],
        dtype=config["dtype"],
    script:
        "../scripts/weak_features.py"


rule train_weak:
    input:
        unpack(train_weak_inputs),
    output:
        soft_labels="results/{dataset}/seed{seed}/{strong}/weak/{weak}/{arm}/soft_labels.parquet",
        test="results/{dataset}/seed{seed}/{strong}/weak/{weak}/{arm}/test_predictions.parquet",
        metrics="results/{dataset}/seed{seed}/{strong}/weak/{weak}/{arm}/metrics.json",
    log:
        "results/logs/train_weak/{dataset}_seed{seed}_{strong}_{weak}_{arm}.log",
    benchmark:
        "results/benchmarks/train_weak/{dataset}_seed{seed}_{strong}_{weak}_{arm}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: training_threads("weak")
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        arm=arm_spec,
        train=config["train"]["weak"],
        device=config["device"],
        dtype=config["dtype"],
    script:
        "../scripts/train_weak.py"
