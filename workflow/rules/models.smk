# Models: each configured model becomes a loadable local safetensors folder, once.


rule prepare_model:
    output:
        manifest=PATHS["model"],
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=8000,
    params:
        spec=lambda wildcards: STUDY.weights_spec(wildcards.model),
        offline=config["offline"],
        model_dir=model_dir("model"),
    script:
        "../scripts/prepare_model.py"
