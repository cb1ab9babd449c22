rule protocols:
    """The claim tests under each protocol variant: figures/protocols.csv and .png, and the
    provenance of the runs behind them."""
    input:
        protocols_configured,
        metrics=protocol_runs("metrics.csv"),
        metas=protocol_runs("meta.json", with_sources=True),
        tables=list(PROTOCOLS["tables"].values()),
    output:
        csv=f"{PROTOCOLS_DIR}/protocols.csv",
        png=f"{PROTOCOLS_DIR}/protocols.png",
        provenance=f"{PROTOCOLS_DIR}/protocols_provenance.json",
        seeds=f"{PROTOCOLS_DIR}/protocols_seeds.csv",
    log:
        f"{RESULTS}/logs/{PROTOCOLS_DIR}/protocols.log",
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        tables=PROTOCOLS["tables"],
        comparisons=PROTOCOLS["comparisons"],
    script:
        "../scripts/protocols.py"
