# Debates: strong-model debaters argue assigned sides over rounds; each round is its own job, so
# raising n_rounds reuses the rounds already run.


rule debate_round:
    input:
        unpack(debate_round_inputs),
    output:
        shard="results/{dataset}/seed{seed}/{strong}/debate/round{round}/shard{shard}.parquet",
    log:
        "results/logs/debate_round/{dataset}_seed{seed}_{strong}_round{round}_shard{shard}.log",
    benchmark:
        "results/benchmarks/debate_round/{dataset}_seed{seed}_{strong}_round{round}_shard{shard}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        debate=debate_round_params,
        generation=config["generation"],
        device=config["device"],
        work_dir=chunk_dir,
    script:
        "../scripts/debate_round.py"


rule debate:
    input:
        unpack(debate_inputs),
    output:
        debates="results/{dataset}/seed{seed}/{strong}/debates.parquet",
        stats="results/{dataset}/seed{seed}/{strong}/debate_stats.json",
    log:
        "results/logs/debate/{dataset}_seed{seed}_{strong}.log",
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        debate=config["debate"],
        generation=config["generation"],
        device=config["device"],
    script:
        "../scripts/debate.py"
