rule task_data:
    """Each seed's fixed task data: training pool and test set(s)."""
    output:
        f"{RESULTS}/{{experiment}}/data/seed{{seed}}.npz",
    params:
        experiment=task_data_settings,
    log:
        f"{RESULTS}/logs/task_data/{{experiment}}/seed{{seed}}.log",
    conda:
        f"{ENVS}/cpu.yaml"
    script:
        "../scripts/task_data.py"
