"""The config files a Snakemake run of this workflow is about to read, checked before Snakemake
reads them.

Snakemake reads every ``--configfile`` (and the ``configfile(s):`` of a profile) with YTE
templating: a file whose top level holds ``__use_yte__: true`` has its ``?``-prefixed values run as
Python, even on a dry run, before the Snakefile starts. Snakemake 9 has no setting that turns this
off, so the workflow's default profile (``profiles/default``, which Snakemake reads before it loads
any config file) calls :func:`refuse_unsafe_config_files`: each config file is read here with the
project's strict reader (:func:`nmrnn.config.read_yaml`: no YTE key, no duplicate key, a mapping)
and the run stops with one line naming the file if one fails.

This module alone in the package imports Snakemake (lazily, to read its command line the way
Snakemake does); nothing else of the package needs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nmrnn.configfile import read_yaml
from nmrnn.errors import ConfigError


def config_files_of(argv: Sequence[str]) -> list[Path]:
    """The config files a ``snakemake`` command line ``argv`` (without the program name) makes
    Snakemake read: its ``--configfile(s)`` (with any abbreviation Snakemake's parser accepts)
    and the ``configfile(s)`` of each ``--profile``, in the order Snakemake reads them."""
    from snakemake.cli import get_argument_parser, get_profile_dir

    args, _ = get_argument_parser().parse_known_args(list(argv))
    files: list[Path] = []
    for profile in args.profile or []:
        if profile == "none":
            continue
        found = get_profile_dir(profile)
        if found is None:
            continue  # Snakemake itself reports a missing profile
        profile_dir, profile_file = found
        files.extend(_profile_config_files(Path(profile_dir), Path(profile_file)))
    files.extend(Path(f) for f in args.configfile or [])
    return files


def _profile_config_files(profile_dir: Path, profile_file: Path) -> list[Path]:
    """The ``configfile``/``configfiles`` a profile names, resolved as Snakemake resolves them
    (snakemake.profiles.ProfileConfigFileParser): a list as written; a single name with ``~`` and
    variables expanded, inside the profile's folder when that file exists there."""
    profile = read_yaml(profile_file, allow_yte=True)
    files: list[Path] = []
    for key in ("configfile", "configfiles"):
        value = profile.get(key)
        if isinstance(value, list):
            files.extend(Path(str(v)) for v in value)
        elif value is not None:
            name = os.path.expanduser(os.path.expandvars(str(value)))
            inside = profile_dir / name
            files.append(inside if inside.exists() else Path(name))
    return files


def refuse_unsafe_config_files(argv: Sequence[str] | None = None) -> None:
    """Stop the process with one line (exit status 1) if a config file Snakemake is about to read
    for ``argv`` (default: this process's command line) holds YTE code, a key given twice, or is
    not a readable YAML mapping; called from ``profiles/default/config.yaml``."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        files = config_files_of(argv)
    except SystemExit:
        return  # a command line Snakemake's parser refuses: Snakemake says why itself
    refuse_unsafe_files(files, "nothing was run")


def refuse_unsafe_files(paths: Sequence[str | Path], note: str = "") -> None:
    """Stop the process with one line (exit status 1) naming the first of ``paths`` that
    :func:`nmrnn.configfile.read_yaml` refuses; ``note`` is added in parentheses."""
    for path in paths:
        try:
            read_yaml(path)
        except ConfigError as error:
            sys.exit(f"Config error: {error}" + (f" ({note})" if note else ""))
