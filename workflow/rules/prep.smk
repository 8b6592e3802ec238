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
        # the registered tasks' files, shipped with the project (data/bigbench/README.md)
        shipped=str(Path(workflow.basedir) / "data/bigbench"),
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


# The implicit-conflict setting's other objective (conflict.implicit): balanced items none of whose
# content is in the dataset's splits, mixed into those students' training with their labels.
rule prep_conflict:
    input:
        unpack(split_paths()),
        files=STUDY.implicit_files,
    output:
        conflict=PATHS["conflict_items"],
    log:
        "results/logs/prep_conflict/{dataset}_seed{seed}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=lambda wildcards: STUDY.implicit_spec(),
        n_items=config["conflict"].get("implicit", {}).get("n_items"),
    script:
        "../scripts/prep_conflict.py"
