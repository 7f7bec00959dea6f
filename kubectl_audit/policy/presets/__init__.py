"""Audit policies shipped with kubectl-audit, each with its own `kubectl audit test` file.

`<name>.yaml` is the policy, `<name>.tests.yaml` its unit tests.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from kubectl_audit.errors import UsageError

_SUFFIX = ".yaml"
_TESTS_SUFFIX = ".tests.yaml"


def _folder() -> Traversable:
    return resources.files(__name__)


def list_presets() -> tuple[str, ...]:
    """Names of the shipped presets, sorted."""
    names = (
        entry.name[: -len(_SUFFIX)]
        for entry in _folder().iterdir()
        if entry.name.endswith(_SUFFIX) and not entry.name.endswith(_TESTS_SUFFIX)
    )
    return tuple(sorted(names))


def _entry(name: str, suffix: str) -> Traversable:
    if name not in list_presets():
        raise UsageError(f"unknown preset {name!r}", hint="presets: " + ", ".join(list_presets()))
    return _folder().joinpath(name + suffix)


def read_preset(name: str) -> str:
    """The policy text of preset `name`; UsageError naming the presets if there is none."""
    return _entry(name, _SUFFIX).read_text(encoding="utf-8")


def read_preset_tests(name: str) -> str:
    """The `kubectl audit test` file that ships with preset `name`."""
    return _entry(name, _TESTS_SUFFIX).read_text(encoding="utf-8")


def preset_source(name: str) -> str:
    """How messages name the preset's file (`preset:recommended`)."""
    return f"preset:{name}"


__all__ = ["list_presets", "preset_source", "read_preset", "read_preset_tests"]
