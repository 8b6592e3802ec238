# Each item's prompt prefix (the chat header, the item's text and question), which the prompt of
# every strong-model stage opens with, prefilled once: explain, zero-shot, the debate rounds and
# side drift load its keys and values (generation.reuse_prefixes). The file is temporary and read
# as `ancient` (common.smk, ancient_store), so it is remade only when a stage reading it runs, and
# remaking it reruns nothing that is done.


rule item_prefixes:
    input:
        unpack(STUDY.item_prefix_inputs),
    output:
        store=temp(PATHS["prefix_store"]),
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
