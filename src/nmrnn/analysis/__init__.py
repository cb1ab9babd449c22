"""Analyses behind each figure: ``figN.analyse(experiments, results_dir) -> dict of arrays`` and
``figN.claims(metrics) -> list of claim rows`` (see :mod:`nmrnn.claims`)."""
