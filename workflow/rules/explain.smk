# The strong model on every item: explanations (generated; sharded, resumable chunks) and its
# zero-shot P(label 1) (read from the label words' logits, no generation). Each runs only when
# some arm reads it (src/w2s_eda/study.py).


rule explain_shard:
    input:
        unpack(STUDY.strong_stage_inputs),
    output:
        shard=PATHS["explain_shard"],
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
        explain=settings("explain"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
        work_dir=chunk_dir,
    script:
        "../scripts/explain_shard.py"


rule explain:
    input:
        shards=STUDY.explain_shards,
    output:
        explanations=PATHS["explanations"],
        stats=PATHS["explain_stats"],
    log:
        "results/logs/explain/{dataset}_seed{seed}_{strong}.log",
    conda:
        "../../envs/generation.yaml"
    params:
        explain=settings("explain"),
        generation=config["generation"],
    script:
        "../scripts/explain.py"


rule zero_shot:
    input:
        unpack(STUDY.strong_stage_inputs),
    output:
        zero_shot=PATHS["zero_shot"],
        stats=PATHS["zero_shot_stats"],
    log:
        "results/logs/zero_shot/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/zero_shot/{dataset}_seed{seed}_{strong}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        zero_shot=settings("zero_shot"),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
        work_dir=chunk_dir,
    script:
        "../scripts/zero_shot.py"
