"""`kubectl audit version`."""

from __future__ import annotations

import platform
import sys

import click

from kubectl_audit import __version__
from kubectl_audit.cli.options import output_option, verbosity_option
from kubectl_audit.render import dump


def _yaml_backend() -> str:
    import yaml

    return "libyaml" if getattr(yaml, "__with_libyaml__", False) else "pure-python"


@click.command()
@output_option("text", "json", "yaml", default="text")
@verbosity_option
def version(output: str) -> None:
    """Print the plugin version (and the Python runtime it uses)."""
    info = {
        "version": __version__,
        "python": platform.python_version(),
        "yaml": _yaml_backend(),
    }
    if output == "text":
        click.echo(f"kubectl-audit v{__version__}")
        return
    dump(info, output, sys.stdout)
