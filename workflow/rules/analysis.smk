rule analyse:
    """One figure's analysis (nmrnn.figures.<figure>.analyse, named in the registry): theory
    curves, ablations, PCA, dynamics, from the per-seed files declared here."""
    input:
        unpack(analysis_inputs),
    output:
        f"{ANALYSIS}/{{figure}}.npz",
    log:
        f"{RESULTS}/logs/analyse/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse/{{figure}}.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        experiments=figure_experiments,
        runs=figure_runs,
        data_runs=figure_data_runs,
    script:
        "../scripts/analyse.py"


rule analysis_table:
    """A metrics table written by its figure's analysis (Figure 2: the theory checks)."""
    input:
        table_analysis,
    output:
        f"{FIGURES}/metrics/{{table}}.csv",
    log:
        f"{RESULTS}/logs/analysis_table/{{table}}.log",
    wildcard_constraints:
        table=_alternatives(ANALYSIS_TABLES),
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        figure=lambda wc: TABLE_FIGURE[wc.table],
    script:
        "../scripts/analysis_table.py"
