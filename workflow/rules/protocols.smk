PROTOCOLS = config["protocols"]
PROTOCOLS_DIR = PROTOCOLS["output_dir"].rstrip("/")


def protocol_metrics():
    """This run's per-seed metrics behind the protocol comparisons (every seed of each side)."""
    files = set()
    for comparison in PROTOCOLS["comparisons"]:
        for side in (comparison["nm"], comparison["baseline"]):
            if "table" not in side:
                experiment = side.get("experiment", "mwg")
                files.update(
                    f"{RESULTS}/{experiment}/{side['arch']}/seed{s}/metrics.csv"
                    for s in seeds_of(experiment)
                )
    return sorted(files)


rule protocols:
    """The claim tests under each protocol variant: figures/protocols.csv and .png."""
    input:
        metrics=protocol_metrics(),
        tables=list(PROTOCOLS["tables"].values()),
    output:
        csv=f"{PROTOCOLS_DIR}/protocols.csv",
        png=f"{PROTOCOLS_DIR}/protocols.png",
    params:
        tables=PROTOCOLS["tables"],
        comparisons=PROTOCOLS["comparisons"],
    log:
        f"{RESULTS}/logs/protocols.log",
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/protocols.py"
