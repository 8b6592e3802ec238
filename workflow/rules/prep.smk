# Dataset preparation: balanced, seeded, disjoint weak_train / w2s_train / test splits.


rule download_bigbench:
    output:
        task=PATHS["bigbench"],
    log:
        "results/logs/download_bigbench/{bigbench_task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        folder=lambda wildcards: STUDY.registered(wildcards.bigbench_task).bigbench_task,
    script:
        "../scripts/download_bigbench.py"


rule prep:
    input:
        unpack(prep_inputs),
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
    script:
        "../scripts/prep.py"
