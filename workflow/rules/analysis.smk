# Analysis: PGR with paired-bootstrap CIs, arm-vs-baseline tests, deception regions, plots, for
# every study cell at once; each table and plot is part of `snakemake --report`. The debate plot
# exists only when the study runs debates.


rule analysis:
    input:
        analysis_inputs,
    output:
        **analysis_outputs(),
    log:
        "results/logs/analysis/study.log",
    benchmark:
        "results/benchmarks/analysis/study.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cells=STUDY.analysis_cells(),
        n_resamples=config["analysis"]["n_bootstrap"],
        notes=config["analysis"]["notes"],
    script:
        "../scripts/analysis.py"
