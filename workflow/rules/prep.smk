# Dataset preparation: balanced, seeded, disjoint weak_train / w2s_train / test splits.


rule download_bigbench:
    output:
        task=PATHS["bigbench"],
    log:
        "results/logs/download_bigbench/{bigbench_task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        folder=lambda wildcards: STUDY.bigbench_folder(wildcards.bigbench_task),
    script:
        "../scripts/download_bigbench.py"


rule prep:
    input:
        unpack(STUDY.prep_inputs),
    output:
        weak_train=PATHS["weak_train"],
        w2s_train=PATHS["w2s_train"],
        test=PATHS["test"],
        manifest=PATHS["manifest"],
    log:
        "results/logs/prep/{dataset}_seed{seed}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
        sizes=lambda wildcards: STUDY.split_sizes(wildcards.dataset),
        source=lambda wildcards: STUDY.dataset_source(wildcards.dataset),
    message:
        "prep {wildcards.dataset} seed {wildcards.seed} from {params.source}"
    script:
        "../scripts/prep.py"
