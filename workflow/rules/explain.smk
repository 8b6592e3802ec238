# Explanations: the strong model explains every item and gives its zero-shot P(label 1).


rule explain_shard:
    input:
        unpack(strong_stage_inputs),
    output:
        shard="results/{dataset}/seed{seed}/{strong}/explain/shard{shard}.parquet",
    log:
        "results/logs/explain_shard/{dataset}_seed{seed}_{strong}_shard{shard}.log",
    benchmark:
        "results/benchmarks/explain_shard/{dataset}_seed{seed}_{strong}_shard{shard}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        explain=config["explain"],
        generation=config["generation"],
        device=config["device"],
        work_dir=chunk_dir,
    script:
        "../scripts/explain_shard.py"


rule explain:
    input:
        unpack(strong_stage_inputs),
        shards=explain_shards,
    output:
        explanations="results/{dataset}/seed{seed}/{strong}/explanations.parquet",
        stats="results/{dataset}/seed{seed}/{strong}/explain_stats.json",
    log:
        "results/logs/explain/{dataset}_seed{seed}_{strong}.log",
    conda:
        "../../envs/generation.yaml"
    params:
        explain=config["explain"],
        generation=config["generation"],
    script:
        "../scripts/explain.py"
