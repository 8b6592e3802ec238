# Analysis: PGR with paired-bootstrap CIs, arm-vs-baseline tests, deception regions, plots, for
# every study cell at once; each table and plot is part of `snakemake --report`.


rule analysis:
    input:
        unpack(analysis_inputs),
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="1. Results",
            labels={"table": "summary (CSV)"},
        ),
        md="results/summary.md",
        html=report(
            "results/pgr_table.html",
            caption="../report/pgr_table.rst",
            category="1. Results",
            labels={"table": "PGR table"},
        ),
        pgr="results/pgr.json",
        deception="results/deception.json",
        ladder=report(
            "results/plots/accuracy_ladder.png",
            caption="../report/accuracy_ladder.rst",
            category="2. Plots",
            labels={"figure": "accuracy ladder"},
        ),
        pgr_plot=report(
            "results/plots/pgr.png",
            caption="../report/pgr.rst",
            category="2. Plots",
            labels={"figure": "PGR per arm"},
        ),
        deception_plot=report(
            "results/plots/deception.png",
            caption="../report/deception.rst",
            category="2. Plots",
            labels={"figure": "deception regions"},
        ),
        debate_plot=report(
            "results/plots/debate_rounds.png",
            caption="../report/debate_rounds.rst",
            category="2. Plots",
            labels={"figure": "debate rounds"},
        ),
    log:
        "results/logs/analysis/study.log",
    benchmark:
        "results/benchmarks/analysis/study.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        cells=analysis_cells,
        n_resamples=config["analysis"]["n_bootstrap"],
    script:
        "../scripts/analysis.py"
