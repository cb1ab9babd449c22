rule train:
    """Train one block of seeds of one architecture (seeds vmapped together in one program).

    Resumes from its checkpoint when the job restarts."""
    input:
        unpack(train_inputs),
    output:
        f"{RESULTS}/{{experiment}}/{{arch}}/train/block{{block}}.npz",
    log:
        f"{RESULTS}/logs/train/{{experiment}}/{{arch}}/block{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}/{{arch}}/block{{block}}.tsv"
    priority: train_priority
    conda:
        TRAINING_ENV
    resources:
        training=1,
    params:
        experiments=experiments_used,
        seeds=block_seeds,
        chunk_size=config["chunk_size"],
        reset_optimizer_every=config["reset_optimizer_every"],
        compilation_cache=f"{RESULTS}/jax_cache",
        checkpoint=f"{RESULTS}/{{experiment}}/{{arch}}/train/block{{block}}.checkpoint.npz",
    script:
        "../scripts/train.py"


rule export_seed:
    """Write one seed's parameters, losses and metadata from its training block."""
    input:
        trained_block,
    output:
        params=f"{RESULTS}/{{experiment}}/{{arch}}/seed{{seed}}/params.npz",
        meta=f"{RESULTS}/{{experiment}}/{{arch}}/seed{{seed}}/meta.json",
        losses=f"{RESULTS}/{{experiment}}/{{arch}}/seed{{seed}}/losses.csv",
    log:
        f"{RESULTS}/logs/export/{{experiment}}/{{arch}}/seed{{seed}}.log",
    priority: SCORE_PRIORITY
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/export_seed.py"
