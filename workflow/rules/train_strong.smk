# The strong model on w2s_train: the ceiling (gold labels) once per cell, shared by every arm, one
# W2S student per arm and loss (the weak model's soft labels), and the self-distillation control.
# Then the cell's table.


rule strong_features:
    input:
        unpack(STUDY.strong_feature_inputs),
    output:
        features=PATHS["strong_features"],
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
        train=settings("strong_features"),
        device=config["device"],
        dtype=config["dtype"],
        splits=lambda wildcards: STUDY.strong_splits(wildcards, "any"),
        model_dir=model_dir("strong"),
    script:
        "../scripts/strong_features.py"


# The intermediate model of a chain (pairs[].intermediate), read at its own block.
use rule strong_features as intermediate_features with:
    input:
        unpack(STUDY.intermediate_feature_inputs),
    output:
        features=PATHS["intermediate_features"],
    log:
        "results/logs/intermediate_features/{dataset}_seed{seed}_{strong}_{weak}.log",
    benchmark:
        "results/benchmarks/intermediate_features/{dataset}_seed{seed}_{strong}_{weak}.tsv"
    params:
        train=STUDY.intermediate_feature_settings,
        device=config["device"],
        dtype=config["dtype"],
        splits=lambda wildcards: STUDY.strong_splits(wildcards, "any"),
        model_dir=lambda wildcards: STUDY.model_dir(STUDY.intermediate_of(wildcards)),


rule train_ceiling:
    input:
        unpack(STUDY.train_strong_inputs),
    output:
        test=PATHS["ceiling_test_predictions"],
        metrics=PATHS["ceiling_metrics"],
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
        train=settings("strong"),
        device=config["device"],
        dtype=config["dtype"],
        splits=split_paths("w2s_train", "test"),
        model_dir=model_dir("strong"),
    script:
        "../scripts/train_strong.py"


use rule train_ceiling as train_student with:
    output:
        test=PATHS["student_test_predictions"],
        train=PATHS["student_train_predictions"],
        metrics=PATHS["student_metrics"],
    log:
        "results/logs/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}.log",
    benchmark:
        "results/benchmarks/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}.tsv"
    wildcard_constraints:
        arm=_alternatives(STUDY.arms),
    params:
        role="student",
        loss=lambda wildcards: wildcards.loss,
        train=settings("strong"),
        device=config["device"],
        dtype=config["dtype"],
        splits=split_paths("w2s_train", "test"),
        model_dir=model_dir("strong"),


# Students of the other settings: a conflict (Yang et al. 2024: `explicit`, `implicit`), and
# chains weak -> intermediate -> strong (`<conflict>+via-<intermediate>`).
use rule train_ceiling as train_student_setting with:
    input:
        unpack(STUDY.setting_student_inputs),
    output:
        test=PATHS["setting_test_predictions"],
        train=PATHS["setting_train_predictions"],
        metrics=PATHS["setting_metrics"],
    log:
        "results/logs/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}_{setting}.log",
    benchmark:
        "results/benchmarks/train_student/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}_{setting}.tsv"
    wildcard_constraints:
        arm=_alternatives(STUDY.arms),
    params:
        role="student",
        loss=lambda wildcards: wildcards.loss,
        train=settings("strong"),
        device=config["device"],
        dtype=config["dtype"],
        splits=lambda wildcards: STUDY.strong_splits(
            wildcards, STUDY.setting_conflict(wildcards.setting)
        ),
        model_dir=model_dir("strong"),
        conflict=lambda wildcards: STUDY.conflict_spec(STUDY.setting_conflict(wildcards.setting)),


# The middle link of a chain: the intermediate model learns the weak arm's labels in one conflict
# setting and labels w2s_train out of fold for the strong student.
use rule train_ceiling as train_intermediate with:
    input:
        unpack(STUDY.intermediate_inputs),
    output:
        labels=PATHS["intermediate_labels"],
        test=PATHS["intermediate_test_predictions"],
        metrics=PATHS["intermediate_metrics"],
    log:
        "results/logs/train_intermediate/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}_{conflict}.log",
    benchmark:
        "results/benchmarks/train_intermediate/{dataset}_seed{seed}_{strong}_{weak}_{arm}_{loss}_{conflict}.tsv"
    wildcard_constraints:
        arm=_alternatives(STUDY.arms),
    params:
        role="intermediate",
        loss=lambda wildcards: wildcards.loss,
        train=lambda wildcards: STUDY.intermediate_train(wildcards),
        device=config["device"],
        dtype=config["dtype"],
        splits=lambda wildcards: STUDY.strong_splits(wildcards, wildcards.conflict),
        model_dir=lambda wildcards: STUDY.model_dir(STUDY.intermediate_of(wildcards)),
        conflict=lambda wildcards: STUDY.conflict_spec(wildcards.conflict),


# The self-distillation control: the strong model learns its own zero-shot labels on w2s_train,
# so a student's gain over it is more than the strong model teaching itself.
use rule train_ceiling as train_self_distill with:
    input:
        unpack(STUDY.self_distill_inputs),
    output:
        test=PATHS["self_distill_test_predictions"],
        train=PATHS["self_distill_train_predictions"],
        metrics=PATHS["self_distill_metrics"],
    log:
        "results/logs/train_self_distill/{dataset}_seed{seed}_{strong}_{loss}.log",
    benchmark:
        "results/benchmarks/train_self_distill/{dataset}_seed{seed}_{strong}_{loss}.tsv"
    params:
        role="student",
        arm="self_distill",
        loss=lambda wildcards: wildcards.loss,
        train=settings("strong"),
        device=config["device"],
        dtype=config["dtype"],
        splits=split_paths("w2s_train", "test"),
        model_dir=model_dir("strong"),


rule cell_table:
    input:
        cell_table_inputs,
    output:
        summary=PATHS["cell_table_json"],
        table=PATHS["cell_table_md"],
    log:
        "results/logs/cell_table/{dataset}_seed{seed}_{strong}_{weak}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        files=cell_table_files,
    script:
        "../scripts/cell_table.py"
