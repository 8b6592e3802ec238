# Models: each configured model becomes a loadable local safetensors folder, once.


rule prepare_model:
    output:
        manifest="resources/models/{model}/w2s_model.json",
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/generation.yaml"
    resources:
        mem_mb=8000,
    params:
        spec=model_spec,
        offline=config["offline"],
    script:
        "../scripts/prepare_model.py"
