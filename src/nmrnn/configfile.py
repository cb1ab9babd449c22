"""Reading one YAML config file strictly: a mapping, no key given twice, no YTE templating.

Light on purpose (YAML only, no JAX): Snakemake's default profile runs it on every config file
before Snakemake reads them (:mod:`nmrnn.overlays`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from nmrnn.errors import ConfigError


def read_yaml(path: str | Path, allow_yte: bool = False) -> dict:
    """A YAML config file as a dict; a missing, unparsable, empty or non-mapping file, a key
    given twice in one mapping, or (unless ``allow_yte``: a Snakemake profile, which is code
    anyway) a ``__use_yte__`` key is a ConfigError naming the file."""
    path = Path(path)
    try:
        config = yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 - safe subclass
    except DuplicateKey as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config file {path}: not a text file in UTF-8 (byte {error.start} cannot be read)"
        ) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(f"config file {path}: not valid YAML{at} ({problem})") from None
    if config is None:
        raise ConfigError(f"config file {path}: empty (expected a mapping such as 'experiments:')")
    if not isinstance(config, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of keys, got a {type(config).__name__}"
        )
    if "__use_yte__" in config and not allow_yte:
        raise ConfigError(
            f"config file {path}: holds '__use_yte__', which makes Snakemake run its values as "
            f"Python code (YTE templating); a config file here holds settings only, remove the key"
        )
    return config


class DuplicateKey(ValueError):
    """A key given twice in one mapping of a YAML file (YAML keeps the last without a word)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping. Keys merged in from
    an anchor (``<<: *stage``) may be overridden: that is what a merge is for."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                mark = key_node.start_mark
                line = f"{mark.line + 1}, column {mark.column + 1}"
                try:
                    first = seen.get(key)
                    seen.setdefault(key, line)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first is not None:
                    raise DuplicateKey(f"key {key!r} is given twice (line {first} and line {line})")
        return super().construct_mapping(node, deep=deep)
