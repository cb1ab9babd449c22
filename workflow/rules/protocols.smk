rule protocols:
    """The claim tests under each protocol variant: figures/protocols.csv and .png."""
    input:
        metrics=protocol_metrics(),
        tables=list(PROTOCOLS["tables"].values()),
    output:
        csv=f"{PROTOCOLS_DIR}/protocols.csv",
        png=f"{PROTOCOLS_DIR}/protocols.png",
    log:
        f"{RESULTS}/logs/protocols.log",
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        tables=PROTOCOLS["tables"],
        comparisons=PROTOCOLS["comparisons"],
    script:
        "../scripts/protocols.py"
