# Debates: strong-model debaters argue assigned sides over rounds; each round is its own job, so
# raising n_rounds reuses the rounds already run. Then the judge and the side-drift scoring.


rule debate_round:
    input:
        unpack(STUDY.debate_round_inputs),
    output:
        shard=PATHS["debate_round"],
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
        debate=settings("debate_round"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
        work_dir=chunk_dir,
    script:
        "../scripts/debate_round.py"


rule debate:
    input:
        unpack(STUDY.debate_inputs),
    output:
        debates=PATHS["debates"],
        stats=PATHS["debate_stats"],
    log:
        "results/logs/debate/{dataset}_seed{seed}_{strong}.log",
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        debate=settings("debate"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
        judge_model_dir=STUDY.judge_model_dir,
    script:
        "../scripts/debate.py"
