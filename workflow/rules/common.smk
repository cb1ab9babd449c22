# Helpers only: config validation, the experimental design, and input functions.
import json
import re
import sys

from nmrnn.config import ConfigError
from nmrnn.config import scaled_experiments, seed_blocks
from nmrnn.experiments import data_settings
from nmrnn.config import validate as validate_config
from nmrnn.figures import REGISTRY
from nmrnn.tasks import get_task
from nmrnn.steps import run_steps
from nmrnn import invocations

try:
    _checked = validate_config(
        config, workflow.source_path("../schemas/config.schema.yaml")
    )
except ConfigError as error:
    sys.exit(f"Config error: {error}")
config.clear()
config.update(_checked)

EXPERIMENTS = scaled_experiments(config)
RESULTS = config["results_dir"].rstrip("/")


# Each real invocation (never a dry run) records its start, cores and end in the results
# folder: the run's wall time and idle core time in PROVENANCE.json (nmrnn.invocations).
INVOCATIONS = f"{RESULTS}/invocations.jsonl"


onstart:
    invocations.record(
        INVOCATIONS, "start", workflow.cores, figures=config["figures_dir"]
    )
    # Locally, Snakemake's job-rate limiter only adds scheduler passes that multiply over a run
    invocations.drop_local_rate_limiter(workflow)


onsuccess:
    invocations.record(INVOCATIONS, "end", ok=True)


onerror:
    invocations.record(INVOCATIONS, "end", ok=False)


FIGURES = config["figures_dir"].rstrip("/")
# A figure's analysis belongs to its figures folder. The run that owns a results folder (figures
# in <results>/figures, or results[/X] with figures[/X]) keeps <results>/analysis; a profile that
# trains in another run's results folder but draws its own figures (profiles/extension and
# profiles/seeds beside the paper run) gets a subfolder, so neither overwrites the other's.
if FIGURES in (f"{RESULTS}/figures", RESULTS.replace("results", "figures", 1)):
    ANALYSIS = f"{RESULTS}/analysis"
else:
    # figures/extension -> figures-extension
    FIGURES_SLUG = re.sub(r"[^\w.]+", "-", FIGURES)
    ANALYSIS = f"{RESULTS}/analysis/{FIGURES_SLUG}"
# The figures, the experiments each draws and the metrics table each feeds: from the package's
# registry (nmrnn.figures.REGISTRY), the one place they are written.
FIGURE_NAMES = tuple(REGISTRY)
FIGURE_EXPERIMENTS = {name: figure.experiments for name, figure in REGISTRY.items()}
METRICS_OF = {name: figure.table for name, figure in REGISTRY.items()}
# Tables made from the per-seed metrics of a figure's experiments, and tables its analysis writes.
SEED_TABLES = tuple(METRICS_OF[fig] for fig in FIGURE_NAMES if FIGURE_EXPERIMENTS[fig])
ANALYSIS_TABLES = tuple(
    METRICS_OF[fig] for fig in FIGURE_NAMES if REGISTRY[fig].write_table
)
# The per-seed outputs of export_seed an analysis can ask for (Figure.run_files).
RUN_FILES = {"params": "params.npz", "losses": "losses.csv", "meta": "meta.json"}
ENVS = "../../envs"
TRAINING_ENV = f"{ENVS}/{config['training_env']}.yaml"


def _alternatives(names):
    """A wildcard constraint matching exactly these names (escaped: a name is never a pattern)."""
    return "|".join(re.escape(name) for name in sorted(names)) or "__none__"


ALL_ARCHS = {arch for exp in EXPERIMENTS.values() for arch in exp["archs"]}
# Seeds and seed blocks that some experiment has: a path with another ("seed99") is "no rule
# to produce", like a typo in a name, not a traceback from an input function.
MAX_SEEDS = max((exp["seeds"] for exp in EXPERIMENTS.values()), default=0)
ALL_SEEDS = {str(s) for s in range(MAX_SEEDS)}
ALL_BLOCKS = {
    str(b) for b in range(len(seed_blocks(MAX_SEEDS, config["seeds_per_job"])))
}


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    arch=_alternatives(ALL_ARCHS),
    seed=_alternatives(ALL_SEEDS),
    block=_alternatives(ALL_BLOCKS),
    figure=_alternatives(FIGURE_NAMES),
    table=_alternatives(SEED_TABLES + ANALYSIS_TABLES),


def seeds_of(experiment):
    return list(range(EXPERIMENTS[experiment]["seeds"]))


def blocks_of(experiment):
    return seed_blocks(EXPERIMENTS[experiment]["seeds"], config["seeds_per_job"])


# Training jobs whose parameters another experiment starts from (multitask stage 1) head the
# longest chain of the run; the transfers that follow end it.
SOURCES = {exp["pretrained"] for exp in EXPERIMENTS.values() if "pretrained" in exp}


# Task data before any training: a few seconds per seed, and it gates the training with the
# highest priority (the multitask stage 1 that the transfer starts from, the longest chain), which
# otherwise waits behind shorter training whose data happened to be generated first.
DATA_PRIORITY = 3 * 10**9
# A finished block's exports and evaluations next, before more training: seconds each, they
# write the per-seed metrics, so a run that is cut (or a table of one claim) keeps every seed
# trained so far, and a transfer's stage-1 parameters are exported as soon as they exist.
SCORE_PRIORITY = DATA_PRIORITY


def batch_factor(exp, arch):
    """How many of the experiment's batches one training step of ``arch`` runs: 1, except for
    an architecture whose data settings give it another batch (the authors' LR-RNN transfer on
    its whole pool, ``batch: full``: 10 batches of 100), which costs that much more a step.
    """
    task = get_task(exp["task"])
    trials = task.trials_per_step(exp, arch)
    return 1 if trials is None else max(1, round(trials / task.trials_per_step(exp)))


def train_priority(wildcards):
    """Longest chain first, so both cores stay busy to the end: a block another experiment
    starts from, then a block that starts from one, then the rest; within each, the costliest
    first (steps x seeds in the block x batches per step)."""
    exp = EXPERIMENTS[wildcards.experiment]
    tier = 2 if wildcards.experiment in SOURCES else 1 if "pretrained" in exp else 0
    seeds = len(block_seeds(wildcards))
    cost = run_steps(exp, wildcards.arch) * seeds * batch_factor(exp, wildcards.arch)
    return tier * 10**9 + cost


def block_seeds(wildcards):
    blocks = blocks_of(wildcards.experiment)
    b = int(wildcards.block)
    if b >= len(blocks):
        raise ValueError(f"{wildcards.experiment} has no seed block {b}")
    return blocks[b]


def block_of_seed(wildcards):
    per = config["seeds_per_job"]
    return int(wildcards.seed) // per


def train_inputs(wildcards):
    """Task data of the block's seeds, plus the pretrained parameters for transfer."""
    exp = EXPERIMENTS[wildcards.experiment]
    seeds = block_seeds(wildcards)
    inputs = {
        "data": [f"{RESULTS}/{wildcards.experiment}/data/seed{s}.npz" for s in seeds]
    }
    if "pretrained" in exp:
        inputs["pretrained"] = [
            f"{RESULTS}/{exp['pretrained']}/{wildcards.arch}/seed{s}/params.npz"
            for s in seeds
        ]
    return inputs


def _trimmed(name, arch):
    """An experiment's settings reduced to what one architecture's run depends on: no seed count,
    no other architecture than itself and its size-matching reference."""
    exp = EXPERIMENTS[name]
    keep = {arch, exp.get("match_reference")}
    trimmed = {k: v for k, v in exp.items() if k not in ("archs", "seeds")}
    trimmed["archs"] = {a: spec for a, spec in exp["archs"].items() if a in keep}
    return trimmed


def canonical(settings):
    """Settings with every mapping's keys sorted: Snakemake compares params by their text, so
    the order in which config files were merged must not make a job look changed."""
    return json.loads(json.dumps(settings, sort_keys=True))


def experiments_used(wildcards):
    """The settings one training or evaluation job depends on (its experiment and the one it
    starts from, trimmed), so adding seeds or editing another architecture does not rerun it.
    """
    exp = EXPERIMENTS[wildcards.experiment]
    used = {wildcards.experiment: _trimmed(wildcards.experiment, wildcards.arch)}
    if "pretrained" in exp:
        used[exp["pretrained"]] = _trimmed(exp["pretrained"], wildcards.arch)
    return canonical(used)


def figure_experiments(wildcards):
    """The settings of the experiments a figure draws; a figure whose experiments this config
    turns off (a profile with `multitask: null`, say) is named with them."""
    names = FIGURE_EXPERIMENTS[wildcards.figure]
    off = [name for name in names if name not in EXPERIMENTS]
    if off:
        raise WorkflowError(
            f"{wildcards.figure} draws {', '.join(off)}, which this config turns off "
            f"(drawable here: {', '.join(figures_available()) or 'none'})"
        )
    return canonical({name: EXPERIMENTS[name] for name in names})


def trained_block(wildcards):
    return f"{RESULTS}/{wildcards.experiment}/{wildcards.arch}/train/block{block_of_seed(wildcards)}.npz"


def seed_files(experiment, name):
    exp = EXPERIMENTS[experiment]
    return [
        f"{RESULTS}/{experiment}/{arch}/seed{s}/{name}"
        for arch in exp["archs"]
        for s in seeds_of(experiment)
    ]


TABLE_FIGURE = {table: fig for fig, table in METRICS_OF.items()}


def figure_metrics_inputs(wildcards):
    return [
        f
        for experiment in FIGURE_EXPERIMENTS[TABLE_FIGURE[wildcards.table]]
        if experiment in EXPERIMENTS
        for f in seed_files(experiment, "metrics.csv")
    ]


def figure_runs(wildcards):
    """(experiment, arch, seed) of every trained network a figure's analysis reads, in the order
    of its per-seed inputs (nmrnn.figures.common.RunFiles pairs them up)."""
    return [
        (experiment, arch, s)
        for experiment in FIGURE_EXPERIMENTS[wildcards.figure]
        if experiment in EXPERIMENTS
        for arch in EXPERIMENTS[experiment]["archs"]
        for s in seeds_of(experiment)
    ]


def figure_data_runs(wildcards):
    """(experiment, seed) of every task data file a figure's analysis reads, in input order."""
    return [
        (experiment, s)
        for experiment in FIGURE_EXPERIMENTS[wildcards.figure]
        if experiment in EXPERIMENTS
        for s in seeds_of(experiment)
    ]


def analysis_inputs(wildcards):
    """A figure's analysis inputs: per kind of its registry's run_files, that file of every run of
    figure_runs; ``data``: the task data of figure_data_runs."""
    runs = figure_runs(wildcards)
    inputs = {
        kind: [f"{RESULTS}/{e}/{a}/seed{s}/{RUN_FILES[kind]}" for e, a, s in runs]
        for kind in REGISTRY[wildcards.figure].run_files
    }
    inputs["data"] = [
        f"{RESULTS}/{e}/data/seed{s}.npz" for e, s in figure_data_runs(wildcards)
    ]
    return inputs


def figures_available():
    """Figures whose experiments are all configured (fig2 needs none)."""
    return [
        fig
        for fig in FIGURE_NAMES
        if all(exp in EXPERIMENTS for exp in FIGURE_EXPERIMENTS[fig])
    ]


def all_figures():
    return [
        f"{FIGURES}/{fig}.{ext}"
        for fig in figures_available()
        for ext in ("png", "pdf")
    ]


def all_metrics():
    return [f"{FIGURES}/metrics/{METRICS_OF[fig]}.csv" for fig in figures_available()]


CURVE_TABLES = SEED_TABLES


def all_curves():
    return [
        f"{FIGURES}/metrics/{METRICS_OF[fig]}_curves.csv"
        for fig in figures_available()
        if METRICS_OF[fig] in CURVE_TABLES
    ]


def curve_runs(wildcards):
    """(experiment, arch, seed) of every run drawn in a curves table, in input order."""
    return [
        (experiment, arch, s)
        for experiment in FIGURE_EXPERIMENTS[TABLE_FIGURE[wildcards.table]]
        if experiment in EXPERIMENTS
        for arch in EXPERIMENTS[experiment]["archs"]
        for s in seeds_of(experiment)
    ]


def curve_inputs(wildcards):
    return [
        f"{RESULTS}/{e}/{a}/seed{s}/losses.csv" for e, a, s in curve_runs(wildcards)
    ]


def task_data_settings(wildcards):
    """What an experiment's task data depends on (not its seeds or architectures), so adding
    seeds or editing an architecture never regenerates the data every trained seed uses.
    """
    return canonical(data_settings(EXPERIMENTS[wildcards.experiment]))


def figure_table(wildcards):
    return f"{FIGURES}/metrics/{METRICS_OF[wildcards.figure]}.csv"


def table_analysis(wildcards):
    """The analysis a table of ANALYSIS_TABLES is written from."""
    return f"{ANALYSIS}/{TABLE_FIGURE[wildcards.table]}.npz"


def all_training_blocks():
    return [
        f"{RESULTS}/{experiment}/{arch}/train/block{b}.npz"
        for experiment in EXPERIMENTS
        for arch in EXPERIMENTS[experiment]["archs"]
        for b in range(len(blocks_of(experiment)))
    ]


PROTOCOLS = config["protocols"]
PROTOCOLS_DIR = PROTOCOLS["output_dir"].rstrip("/")


# Only a profile names protocol comparisons (config.yaml names none); without them the protocols
# rule would write an empty table into the committed figures/.
NO_COMPARISONS = (
    "target 'protocols' needs a profile that names the comparisons, e.g. snakemake --profile "
    "profiles/protocols/eft protocols (or profiles/protocols/mwg, /multitask, /multitask-data, "
    "profiles/seeds, profiles/seeds-authors, profiles/extension); "
    "this config names none"
)


def protocols_configured(wildcards):
    """No input: the protocols rule's check that this config names comparisons (the target's
    input functions run before any job starts, so nothing is overwritten)."""
    if not PROTOCOLS["comparisons"]:
        raise WorkflowError(NO_COMPARISONS)
    return []


def protocol_runs(name, with_sources=False):
    """This run's per-seed files ``name`` (metrics.csv, meta.json) behind the protocol
    comparisons (every seed of each side); ``with_sources``: also those of the experiment a
    transfer side starts from (its stage 1)."""
    files = set()
    for comparison in PROTOCOLS["comparisons"]:
        for side in (comparison["nm"], comparison["baseline"]):
            if "table" not in side:
                experiment = side.get("experiment", "mwg")
                archs = (
                    EXPERIMENTS[experiment]["archs"]
                    if side["arch"] == "best"
                    else [side["arch"]]
                )
                source = EXPERIMENTS[experiment].get("pretrained")
                for e in [experiment] + ([source] if with_sources and source else []):
                    files.update(
                        f"{RESULTS}/{e}/{arch}/seed{s}/{name}"
                        for arch in archs
                        for s in seeds_of(experiment)
                    )
    return sorted(files)
