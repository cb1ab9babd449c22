"""Validate a pipeline configuration against its JSON schema, fill in defaults, and explain any
problem in one line that names the key."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nmrnn.configfile import read_yaml  # noqa: F401 - part of this module's interface
from nmrnn.errors import ConfigError
from nmrnn.experiments import check_memory, parse
from nmrnn.models import MODELS
from nmrnn.tasks import TASKS, get_task

# The schema ships with the package (workflow/schemas/config.schema.yaml links to it).
SCHEMA = Path(__file__).with_name("config.schema.yaml")


def _with_defaults(validator_class):
    """A validator that also writes each property's default into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


# A number YAML 1.1 reads as text: an exponent without a dot ('1e-2'), which YAML 1.2 and
# Python read as a number; Snakemake (and PyYAML) read config files as YAML 1.1.
_EXPONENT_WITHOUT_DOT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")


def _describe(error: jsonschema.ValidationError) -> str:
    if (
        error.validator == "type"
        and isinstance(error.instance, str)
        and _EXPONENT_WITHOUT_DOT.fullmatch(error.instance.strip())
    ):
        mantissa, exponent = re.split("[eE]", error.instance.strip())
        return (
            f"{_key(error.absolute_path)}: {error.instance!r} is read as text by YAML (a number "
            f"in exponent form needs a dot); write {mantissa}.0e{exponent}"
        )
    if error.validator == "pattern" and "propertyNames" in error.schema_path:
        return (
            f"{_key(error.absolute_path)}: name {error.instance!r} may hold only letters, digits "
            f"and underscores (it names a results folder)"
        )
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = sorted(error.schema.get("properties", {}))
        where = _key(error.absolute_path)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{extra[0]}' in {where}{hint}"
    if error.validator == "enum":
        return (
            f"{_key(error.absolute_path)}: {error.instance!r} is not one of "
            f"{', '.join(map(str, error.validator_value))}"
        )
    if error.validator == "required":
        return f"{_key(error.absolute_path)}: {error.message}"
    return f"{_key(error.absolute_path)}: {error.message}"


def validate(config: Mapping[str, Any], schema_path: str | Path = SCHEMA) -> dict:
    """A validated copy of ``config`` with defaults filled in.

    Raises ConfigError with a one-line message naming the offending key.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    # The task names come from the registry (nmrnn.tasks.TASKS), not from the schema file.
    schema["$defs"]["experiment"]["properties"]["task"]["enum"] = list(TASKS)
    # The model names likewise, from nmrnn.models.MODELS.
    schema["$defs"]["arch"]["properties"]["model"]["enum"] = list(MODELS)
    config = _without_removed(copy.deepcopy(dict(config)))
    _check_finite(config)
    testset_given = "reference_testset" in config
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: len(list(e.absolute_path)))
    if errors:
        # A bad name first (it would otherwise hide behind errors inside its own entry), then
        # the most specific error.
        names = [e for e in errors if "propertyNames" in e.schema_path]
        deepest = max(errors, key=lambda e: len(list(e.absolute_path)))
        raise ConfigError(_describe(names[0] if names else deepest))
    _check_semantics(config)
    if testset_given:
        _check_reference_testset(config["reference_testset"])
    return config


def _check_reference_testset(folder: str) -> None:
    """A reference_testset the config names must hold the test set's files: a folder that does
    not would be skipped without a word (and claim 3-frozen-testset lose its rows)."""
    from nmrnn.tasks.multitask import REFERENCE_FILES

    if not Path(folder).is_dir():
        raise ConfigError(
            f"reference_testset: {folder!r} is not a folder here (it would be skipped without a "
            f"word); give the folder of the authors' test set, or remove the key"
        )
    missing = [f for f in REFERENCE_FILES if not (Path(folder) / f).is_file()]
    if missing:
        raise ConfigError(
            f"reference_testset: {folder!r} has no {', '.join(missing)} (the authors' test set "
            f"is {', '.join(REFERENCE_FILES)}); give its folder, or remove the key"
        )


def _check_finite(node: Any, path: tuple = ()) -> None:
    """Every number of the config is finite: JSON Schema's bounds let NaN through (every
    comparison with NaN is false) and infinity through an upper-bound-free ``minimum``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            _check_finite(value, (*path, key))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            _check_finite(value, (*path, i))
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{_key(path)}: {node} is not a finite number; write a finite value")


def _without_removed(config: dict) -> dict:
    """An overlay removes an experiment, or an architecture of one, by setting it to null
    (``experiments: {multitask: null}``): config files merge, so nothing else can delete a key
    of an earlier file."""
    exps = config.get("experiments")
    if isinstance(exps, dict):
        exps = {name: exp for name, exp in exps.items() if exp is not None}
        for exp in exps.values():
            if isinstance(exp, dict) and isinstance(exp.get("archs"), dict):
                exp["archs"] = {a: spec for a, spec in exp["archs"].items() if spec is not None}
        config["experiments"] = exps
    return config


# Folders of the project itself (code, settings, git): never a place for generated files.
PROJECT_FOLDERS = (".git", ".snakemake", "src", "workflow", "tests", "profiles", "envs", "docs")


def _check_semantics(config: dict) -> None:
    folders = {key: config[key] for key in ("results_dir", "figures_dir")}
    folders["protocols.output_dir"] = config.get("protocols", {}).get("output_dir", "figures")
    for key, folder in folders.items():
        _check_written_out(key, str(folder))
        folder = str(folder).strip()
        resolved = Path(folder).resolve()
        if resolved.exists() and not resolved.is_dir():
            raise ConfigError(f"{key}: {folder!r} is a file, not a folder; name a folder")
        if folder.rstrip("/") in ("", ".") or resolved in (Path.cwd(), *Path.cwd().parents):
            raise ConfigError(
                f"{key}: {folder!r} would write into the filesystem root, the working directory "
                f"or a folder holding it; name a folder such as 'results'"
            )
        for own in PROJECT_FOLDERS:
            if resolved == Path(own).resolve() or Path(own).resolve() in resolved.parents:
                raise ConfigError(
                    f"{key}: {folder!r} is inside the project's own folder {own!r} (code, "
                    f"settings or git); name a folder such as 'results'"
                )
    results, figures = (Path(str(config[k]).strip()).resolve() for k in folders if k[0] != "p")
    if results == figures or figures in results.parents:
        raise ConfigError(
            f"results_dir: {config['results_dir']!r} is {'' if results == figures else 'inside '}"
            f"figures_dir {config['figures_dir']!r}: parameters, checkpoints and logs would land "
            f"among the figures (committed to git); give results_dir a folder of its own"
        )
    _check_written_out("reference_testset", str(config["reference_testset"]))
    for name, table in config.get("protocols", {}).get("tables", {}).items():
        _check_written_out(f"protocols.tables.{name}", str(table))
    exps = config["experiments"]
    for name, exp in exps.items():
        where = f"experiments.{name}"
        for arch, spec in exp["archs"].items():
            if "pretrained" not in exp and "model" not in spec:
                raise ConfigError(f"{where}.archs.{arch}: missing key 'model'")
            if spec.get("settings", {}).get("N") == "match":
                ref = exp.get("match_reference")
                if ref not in exp["archs"]:
                    raise ConfigError(
                        f"{where}.match_reference: {ref!r} is not an architecture of {name}"
                    )
        get_task(exp["task"]).check(exps, name)  # pretrained, select_best, data, ...
    # Each experiment read once (models built, sizes matched, stages checked: ConfigError names
    # the key), as its training steps will (after step scaling).
    scaled, parsed = scaled_experiments(config), {}
    for name in exps:
        check_memory(parse(scaled, name, parsed), config["seeds_per_job"])
    _check_protocols(config)


# Characters a shell would expand or read otherwise (home, variables, globs, braces, command
# substitution) or that Snakemake reads as wildcards, and a leading '-' (an option to rm, ls).
_SHELL_SPECIAL = set("~$`*?[]{}!;&|<>\\\"'") | {chr(c) for c in range(32)}


def _check_written_out(key: str, folder: str) -> None:
    """A folder the pipeline writes is a path written out: Snakemake takes it literally (a
    folder named '~' inside the project), while a later ``rm -rf ~`` in a shell would not."""
    bad = sorted({c for c in folder if c in _SHELL_SPECIAL})
    if folder.startswith("~") or folder.startswith("-") or bad:
        shown = ", ".join(repr(c) for c in bad) or repr(folder[0])
        raise ConfigError(
            f"{key}: {folder!r} holds {shown}, which a shell would expand or read otherwise "
            f"(the pipeline would not); write the path out, e.g. 'results' or '/home/me/results'"
        )


def _check_protocols(config: dict) -> None:
    """Every side of a protocol comparison names a configured experiment and architecture (or
    a named table), and asks for selected parameters only where a selection is configured."""
    protocols = config.get("protocols", {})
    exps = config["experiments"]
    for i, comp in enumerate(protocols.get("comparisons", [])):
        for key in ("nm", "baseline"):
            side = comp[key]
            where = f"protocols.comparisons.{i}.{key}"
            if "table" in side:
                if side["table"] not in protocols.get("tables", {}):
                    raise ConfigError(
                        f"{where}.table: {side['table']!r} is not in protocols.tables"
                    )
                continue
            exp = side.get("experiment", "mwg")
            if exp not in exps:
                raise ConfigError(f"{where}.experiment: {exp!r} is not an experiment of this run")
            if not get_task(exps[exp]["task"]).comparable:
                labels = " or ".join(t.label for t in TASKS.values() if t.comparable)
                raise ConfigError(f"{where}.experiment: {exp!r} is not an {labels} experiment")
            if side["arch"] == "best" and get_task(exps[exp]["task"]).best_arch:
                pass  # the best NM-RNN configuration of the experiment
            elif side["arch"] not in exps[exp]["archs"]:
                raise ConfigError(f"{where}.arch: {side['arch']!r} is not an architecture of {exp}")
            if side.get("checkpoint") == "selected" and "select_best" not in exps[exp]:
                raise ConfigError(f"{where}.checkpoint: {exp} has no select_best")


def scaled_experiments(config: Mapping[str, Any]) -> dict:
    """The experiments with ``step_scale`` applied to every stage (rounded up, at least 1).

    An experiment's own ``step_scale`` replaces the global one."""
    exps = copy.deepcopy(dict(config["experiments"]))
    for exp in exps.values():
        scale = float(exp.get("step_scale", config.get("step_scale", 1.0)))
        for spec in exp["archs"].values():
            # New dicts: YAML anchors make several architectures share one stages list.
            spec["stages"] = [
                {**st, "steps": max(1, math.ceil(st["steps"] * scale))} for st in spec["stages"]
            ]
    return exps


def load(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict:
    """Read a YAML config file, apply nested overrides, validate."""
    config = read_yaml(path)
    if overrides:
        config = merge(config, overrides)
    return validate(config)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """Recursive dict merge (as Snakemake merges config files): mappings merge, others replace."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def seed_blocks(n_seeds: int, seeds_per_job: int) -> list[list[int]]:
    """Seeds 0..n-1 cut into consecutive blocks; block b always holds the same seeds, so raising
    the seed count only adds blocks (when n was a multiple of the block size)."""
    return [
        list(range(b, min(b + seeds_per_job, n_seeds))) for b in range(0, n_seeds, seeds_per_job)
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m nmrnn.config FILE [FILE ...]``: merge the YAML files in order (as Snakemake's
    ``--configfile`` does) and validate them; one line says what is wrong, naming the key or
    file."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m nmrnn.config config.yaml [overlay.yaml ...]"
    if not paths:
        print(usage, file=sys.stderr)
        return 2
    if paths[0] in ("-h", "--help"):
        print(f"{usage}\nMerges the files in order (as Snakemake's --configfile does) and "
              "validates them; one line names what is wrong.")  # fmt: skip
        return 0
    try:
        merged: dict = {}
        for path in paths:
            merged = merge(merged, read_yaml(path))
        checked = validate(merged)
    except ConfigError as error:
        print(f"Config error: {error}", file=sys.stderr)
        return 1
    exps = checked["experiments"]
    print(f"config OK: {len(exps)} experiments ({', '.join(exps)})")
    return 0


if __name__ == "__main__":
    # Run as a script this file is a second module (__main__) with its own ConfigError class;
    # the package's module raises the one every other module imports, so its main is used.
    from nmrnn.config import main as _package_main

    raise SystemExit(_package_main())
