# Debates: strong-model debaters argue assigned sides over rounds, debate.n_samples times per item;
# each round is its own job, so raising n_rounds reuses the rounds already run. The gather job
# scores side drift. Consultancy is the same stage with one speaker arguing an assigned side. The
# judge reads every transcript and gives P(label 1), for its accuracy and for arms that read it.


rule debate_round:
    input:
        unpack(STUDY.round_inputs("debates")),
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


use rule debate_round as consultancy_round with:
    input:
        unpack(STUDY.round_inputs("consultancy")),
    output:
        shard=PATHS["consultancy_round"],
    log:
        "results/logs/consultancy_round/{dataset}_seed{seed}_{strong}_round{round}_shard{shard}.log",
    benchmark:
        "results/benchmarks/consultancy_round/{dataset}_seed{seed}_{strong}_round{round}_shard{shard}.tsv"
    params:
        debate=settings("consultancy_round"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
        work_dir=chunk_dir,


rule debate:
    input:
        unpack(STUDY.gather_inputs("debates")),
    output:
        transcripts=PATHS["debates"],
        stats=PATHS["debate_stats"],
    log:
        "results/logs/debate/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/debate/{dataset}_seed{seed}_{strong}.tsv"
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
    script:
        "../scripts/debate.py"


use rule debate as consultancy with:
    input:
        unpack(STUDY.gather_inputs("consultancy")),
    output:
        transcripts=PATHS["consultancy"],
        stats=PATHS["consultancy_stats"],
    log:
        "results/logs/consultancy/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/consultancy/{dataset}_seed{seed}_{strong}.tsv"
    params:
        debate=settings("consultancy"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),


rule judge:
    input:
        unpack(STUDY.judge_inputs),
    output:
        judge=PATHS["judge"],
        stats=PATHS["judge_stats"],
    log:
        "results/logs/judge/{dataset}_seed{seed}_{strong}_{judge}_{kind}.log",
    benchmark:
        "results/benchmarks/judge/{dataset}_seed{seed}_{strong}_{judge}_{kind}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        judge=settings("judge"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        judge_model_dir=lambda wildcards: STUDY.model_dir(wildcards.judge),
    script:
        "../scripts/judge.py"
