"""Generate one seed's fixed task data."""

from nmrnn.experiments import data_spec, make_task_data
from nmrnn.io import save_tree, taskdata_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    experiment, seed = sm.wildcards.experiment, int(sm.wildcards.seed)
    data = make_task_data(data_spec(experiment, sm.params.experiment), seed)
    tree = {k: taskdata_tree(v) for k, v in data.items()}
    save_tree(sm.output[0], tree, identity={"experiment": experiment, "seed": seed})
