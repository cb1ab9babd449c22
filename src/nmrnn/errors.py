"""The package's error for a setting that cannot be used, at the bottom of the import layers so
every module can raise it (``nmrnn.config`` re-exports it)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A model or experiment setting that cannot be used; the message names the setting."""
