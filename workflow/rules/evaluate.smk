from nmrnn.steps import metrics_expectations, trained_steps


rule evaluate:
    """Score one trained seed on its test set(s) (and the authors' frozen set for multitask)."""
    input:
        params=f"{RESULTS}/{{experiment}}/{{arch}}/seed{{seed}}/params.npz",
        data=f"{RESULTS}/{{experiment}}/data/seed{{seed}}.npz",
    output:
        f"{RESULTS}/{{experiment}}/{{arch}}/seed{{seed}}/metrics.csv",
    log:
        f"{RESULTS}/logs/evaluate/{{experiment}}/{{arch}}/seed{{seed}}.log",
    priority: SCORE_PRIORITY
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        experiments=experiments_used,
        reference_testset=config["reference_testset"],
        compilation_cache=f"{RESULTS}/jax_cache",
    script:
        "../scripts/evaluate.py"


rule metrics_table:
    """One tidy table per figure: a row per (experiment, arch, seed, condition)."""
    input:
        figure_metrics_inputs,
    output:
        f"{FIGURES}/metrics/{{table}}.csv",
    log:
        f"{RESULTS}/logs/metrics_table/{{table}}.log",
    wildcard_constraints:
        table=_alternatives(SEED_TABLES),
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        expected=lambda wc: metrics_expectations(EXPERIMENTS, figure_metrics_inputs(wc)),
    script:
        "../scripts/metrics_table.py"


rule curves_table:
    """Training (and validation) loss curves of every run of a figure, in bins of steps."""
    input:
        curve_inputs,
    output:
        f"{FIGURES}/metrics/{{table}}_curves.csv",
    log:
        f"{RESULTS}/logs/curves_table/{{table}}.log",
    wildcard_constraints:
        table=_alternatives(CURVE_TABLES),
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        runs=curve_runs,
        bins=config["curve_bins"],
        steps=lambda wc: trained_steps(EXPERIMENTS, curve_runs(wc)),
    script:
        "../scripts/curves_table.py"
