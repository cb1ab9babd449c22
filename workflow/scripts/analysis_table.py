"""Write a metrics table from its figure's analysis (Figure 2: the theory checks)."""

from nmrnn.figures import REGISTRY
from nmrnn.io import atomic_paths, load_tree
from nmrnn.runtime import log_to

sm = snakemake  # noqa: F821
with log_to(sm.log[0]):
    with atomic_paths(sm.output[0]) as (table,):
        REGISTRY[sm.params.figure].write_table(load_tree(sm.input[0]), str(table))
