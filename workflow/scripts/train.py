"""Train one block of seeds of one architecture and write the stacked result."""

from nmrnn.runtime import log_to
from nmrnn.steps import train_block

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    train_block(
        experiments=sm.params.experiments,
        experiment=sm.wildcards.experiment,
        arch=sm.wildcards.arch,
        seeds=sm.params.seeds,
        data_files=sm.input.data,
        pretrained_files=sm.input.get("pretrained", []),
        output=sm.output[0],
        checkpoint=sm.params.checkpoint,
        chunk_size=sm.params.chunk_size,
        reset_optimizer_every=sm.params.reset_optimizer_every,
        compilation_cache=sm.params.compilation_cache,
        threads=sm.threads,
        log=log,
    )
