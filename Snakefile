# nmrnn-repro: one command reproduces every figure of Costacurta et al. (NeurIPS 2024).
#   snakemake --cores all            the full paper run (config.yaml)
#   snakemake fig3 --cores all       one figure
#   snakemake --profile profiles/smoke   the whole DAG at tiny sizes, in minutes


from snakemake.utils import min_version

min_version("9.0")


# config.yaml and every --configfile are read here with the project's strict reader before
# anything else (profiles/default did so already, before Snakemake read them with YTE: see
# docs/safety.md); a broken, empty or code-holding file is reported in one line naming it.
from nmrnn.overlays import refuse_unsafe_files

refuse_unsafe_files(["config.yaml", *workflow.overwrite_configfiles])


configfile: "config.yaml"


include: "workflow/rules/common.smk"


report: "workflow/report/workflow.rst"


# Only training goes to a cluster; every other step is light and runs where snakemake runs.
localrules:
    all,
    task_data,
    export_seed,
    evaluate,
    metrics_table,
    curves_table,
    analyse,
    analysis_table,
    plot,
    claims_table,
    provenance,
    fig2,
    fig3,
    fig4,
    fig5,
    claims,
    protocols,


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/protocols.smk"


rule all:
    default_target: True
    input:
        all_figures(),
        all_curves(),
        claims=f"{FIGURES}/claims.csv",
        provenance=f"{FIGURES}/PROVENANCE.json",
