rule plot:
    """Render one figure from its analysis and metrics (nmrnn.figures.<figure>.plot)."""
    input:
        analysis=f"{ANALYSIS}/{{figure}}.npz",
        metrics=figure_table,
    output:
        png=report(
            f"{FIGURES}/{{figure}}.png",
            caption="../report/plot.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/{{figure}}.pdf",
    log:
        f"{RESULTS}/logs/plot/{{figure}}.log",
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/plot.py"


rule claims_table:
    """Every claim of the paper checked on this run's metrics (SPEC §6)."""
    input:
        all_metrics(),
    output:
        csv=report(
            f"{FIGURES}/claims.csv", caption="../report/claims.rst", category="Claims"
        ),
        md=f"{FIGURES}/claims.md",
    log:
        f"{RESULTS}/logs/claims.log",
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/claims.py"


rule provenance:
    """Config, commit, machine and training time of the run that made figures/."""
    input:
        all_figures(),
        claims=f"{FIGURES}/claims.csv",
        blocks=all_training_blocks(),
    output:
        f"{FIGURES}/PROVENANCE.json",
    log:
        f"{RESULTS}/logs/provenance.log",
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        config=canonical(config),
        invocations=INVOCATIONS,
    script:
        "../scripts/provenance.py"


rule fig2:
    input:
        f"{FIGURES}/fig2.png",
        f"{FIGURES}/fig2.pdf",


rule fig3:
    input:
        f"{FIGURES}/fig3.png",
        f"{FIGURES}/fig3.pdf",
        f"{FIGURES}/metrics/mwg_curves.csv",


rule fig4:
    input:
        f"{FIGURES}/fig4.png",
        f"{FIGURES}/fig4.pdf",
        f"{FIGURES}/metrics/multitask_curves.csv",


rule fig5:
    input:
        f"{FIGURES}/fig5.png",
        f"{FIGURES}/fig5.pdf",
        f"{FIGURES}/metrics/eft_curves.csv",


rule claims:
    input:
        f"{FIGURES}/claims.csv",
        f"{FIGURES}/claims.md",
