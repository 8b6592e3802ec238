# Analysis: PGR with paired-bootstrap CIs, arm-vs-baseline tests, deception regions, plots, for
# every study cell at once; each table and plot is part of `snakemake --report`. The debate plot
# exists only when the study runs debates.

# The outputs shown in `snakemake --report`: caption file, category and label.
REPORTED = {
    "csv": ("summary.rst", "1. Results", {"table": "summary (CSV)"}),
    "html": ("pgr_table.rst", "1. Results", {"table": "PGR table"}),
    "ladder": ("accuracy_ladder.rst", "2. Plots", {"figure": "accuracy ladder"}),
    "pgr_plot": ("pgr.rst", "2. Plots", {"figure": "PGR per arm"}),
    "deception_plot": ("deception.rst", "2. Plots", {"figure": "deception regions"}),
    "debate_plot": ("debate_rounds.rst", "2. Plots", {"figure": "debate rounds"}),
}


def analysis_outputs():
    outputs = STUDY.analysis_outputs()
    for name, (caption, category, labels) in REPORTED.items():
        if name in outputs:
            outputs[name] = report(
                outputs[name],
                caption=f"../report/{caption}",
                category=category,
                labels=labels,
            )
    return outputs


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
    script:
        "../scripts/analysis.py"
