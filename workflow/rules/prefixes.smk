# Each item's prompt prefix (the chat header, the item's text and question), which the prompt of
# every strong-model stage opens with, prefilled once: explain, zero-shot, the debate rounds and
# side drift load its keys and values (generation.reuse_prefixes). The file is kept, not a temp():
# Snakemake reruns every stage that reads a file it has to remake, so a temp store, once deleted,
# would be remade when a debate round is added and rerun the rounds and explanations already done.
# Its templates do not depend on n_rounds or drift_sample (Study.prefix_templates), so adding a
# round keeps it.


rule item_prefixes:
    input:
        unpack(STUDY.item_prefix_inputs),
    output:
        store=PATHS["prefix_store"],
    log:
        "results/logs/item_prefixes/{dataset}_seed{seed}_{strong}.log",
    benchmark:
        "results/benchmarks/item_prefixes/{dataset}_seed{seed}_{strong}.tsv"
    conda:
        "../../envs/generation.yaml"
    threads: 4  # torch's intra-op threads; capped at --cores locally
    resources:
        mem_mb=6000,
    params:
        templates=lambda wildcards: STUDY.prefix_templates(wildcards.dataset),
        generation=config["generation"],
        device=config["device"],
        splits=split_paths(),
        model_dir=model_dir("strong"),
    script:
        "../scripts/item_prefixes.py"
