"""Generate one seed's fixed task data."""

import sys

from nmrnn.experiments import make_task_data
from nmrnn.io import save_tree, taskdata_tree

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

data = make_task_data(
    snakemake.params.experiment,
    snakemake.wildcards.experiment,  # noqa: F821
    int(snakemake.wildcards.seed),
)  # noqa: F821
save_tree(snakemake.output[0], {k: taskdata_tree(v) for k, v in data.items()})  # noqa: F821
