rule task_data:
    """Each seed's fixed task data: training pool and test set(s)."""
    output:
        f"{RESULTS}/{{experiment}}/data/seed{{seed}}.npz",
    log:
        f"{RESULTS}/logs/task_data/{{experiment}}/seed{{seed}}.log",
    priority: DATA_PRIORITY
    conda:
        f"{ENVS}/cpu.yaml"
    params:
        experiment=task_data_settings,
    script:
        "../scripts/task_data.py"
