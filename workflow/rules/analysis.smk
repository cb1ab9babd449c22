rule theory:
    """Figure 2: the theory checked numerically (mode decay, NM-RNN ↔ LSTM construction)."""
    output:
        png=report(f"{FIGURES}/fig2.png", caption="../report/fig2.rst", category="Figures"),
        pdf=f"{FIGURES}/fig2.pdf",
        metrics=f"{FIGURES}/metrics/theory.csv",
    log:
        f"{RESULTS}/logs/theory.log",
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/theory.py"


rule analyse:
    """Analyses of one figure's trained networks (theory curves, ablations, PCA, dynamics)."""
    input:
        params=figure_params,
        data=figure_data,
        metrics=figure_table,
    output:
        f"{RESULTS}/analysis/{{figure}}.npz",
    params:
        experiments=figure_experiments,
        results_dir=results_root,
    wildcard_constraints:
        figure="fig3|fig4|fig5",
    log:
        f"{RESULTS}/logs/analyse/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse/{{figure}}.tsv"
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/analyse.py"
