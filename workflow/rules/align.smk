# Align (Ψ): the weak model trained on weak_train in each arm. Arms are config data (context and
# targets); arms reading the same input layout share one feature cache. An arm that reads no
# signal of the strong model (and its features) is computed once per (dataset, seed, weak) and
# shared by every strong model; the `*_strong` rules are the same jobs for arms that read one.


rule weak_features:
    input:
        unpack(STUDY.weak_feature_inputs),
    output:
        features=PATHS["weak_features_shared"],
    log:
        "results/logs/weak_features/{dataset}_seed{seed}_{weak}_{context}.log",
    benchmark:
        "results/benchmarks/weak_features/{dataset}_seed{seed}_{weak}_{context}.tsv"
    wildcard_constraints:
        context=_alternatives(STUDY.layouts(shared=True)),
    conda:
        "../../envs/training.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        train=settings("weak_features"),
        device=config["device"],
        dtype=config["dtype"],
        splits=split_paths(),
        model_dir=model_dir("weak"),
        parts=lambda wildcards: STUDY.layout_parts(wildcards.context),
        n_samples=lambda wildcards: STUDY.feature_samples(wildcards.context),
    script:
        "../scripts/weak_features.py"


use rule weak_features as weak_features_strong with:
    output:
        features=PATHS["weak_features_strong"],
    log:
        "results/logs/weak_features/{dataset}_seed{seed}_{strong}_{weak}_{context}.log",
    benchmark:
        "results/benchmarks/weak_features/{dataset}_seed{seed}_{strong}_{weak}_{context}.tsv"
    wildcard_constraints:
        context=_alternatives(STUDY.layouts(shared=False)),


rule train_weak:
    input:
        unpack(STUDY.train_weak_inputs),
    output:
        soft_labels=PATHS["weak_soft_labels_shared"],
        test=PATHS["weak_test_predictions_shared"],
        metrics=PATHS["weak_metrics_shared"],
    log:
        "results/logs/train_weak/{dataset}_seed{seed}_{weak}_{arm}.log",
    benchmark:
        "results/benchmarks/train_weak/{dataset}_seed{seed}_{weak}_{arm}.tsv"
    wildcard_constraints:
        arm=_alternatives(STUDY.arm_names(shared=True)),
    conda:
        "../../envs/training.yaml"
    threads: training_threads("weak")
    resources:
        mem_mb=4000,
        gpu=1,
    params:
        arm=arm_spec,
        train=settings("weak"),
        device=config["device"],
        dtype=config["dtype"],
        splits=split_paths(),
        model_dir=model_dir("weak"),
    script:
        "../scripts/train_weak.py"


use rule train_weak as train_weak_strong with:
    output:
        soft_labels=PATHS["weak_soft_labels_strong"],
        test=PATHS["weak_test_predictions_strong"],
        metrics=PATHS["weak_metrics_strong"],
    log:
        "results/logs/train_weak/{dataset}_seed{seed}_{strong}_{weak}_{arm}.log",
    benchmark:
        "results/benchmarks/train_weak/{dataset}_seed{seed}_{strong}_{weak}_{arm}.tsv"
    wildcard_constraints:
        arm=_alternatives(STUDY.arm_names(shared=False)),
