# Dataset preparation: balanced, seeded, disjoint weak_train / w2s_train / test splits.


rule download_bigbench:
    output:
        task="resources/bigbench/{bigbench_task}.json",
    log:
        "results/logs/download_bigbench/{bigbench_task}.log",
    conda:
        "../../envs/data.yaml"
    params:
        folder=bigbench_folder,
    script:
        "../scripts/download_bigbench.py"


rule prep:
    input:
        unpack(prep_inputs),
    output:
        weak_train="results/{dataset}/seed{seed}/data/weak_train.parquet",
        w2s_train="results/{dataset}/seed{seed}/data/w2s_train.parquet",
        test="results/{dataset}/seed{seed}/data/test.parquet",
        manifest="results/{dataset}/seed{seed}/data/manifest.json",
    log:
        "results/logs/prep/{dataset}_seed{seed}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=dataset_spec,
        sizes=dataset_sizes,
    script:
        "../scripts/prep.py"
