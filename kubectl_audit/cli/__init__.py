"""`kubectl audit`: the root command.

Each subcommand lives in its own module under `kubectl_audit.cli` and is imported only
when it runs, so `kubectl audit validate` never pays for importing the Kubernetes client.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

import click

from kubectl_audit.cli.options import state, verbosity_option
from kubectl_audit.errors import AuditError

PROG_NAME = "kubectl audit"

# name -> "module:attribute", in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "enable": "kubectl_audit.cli.enable:enable",
    "disable": "kubectl_audit.cli.enable:disable",
    "status": "kubectl_audit.cli.status:status",
    "logs": "kubectl_audit.cli.logs:logs",
    "validate": "kubectl_audit.cli.validate:validate",
    "explain": "kubectl_audit.cli.explain:explain",
    "test": "kubectl_audit.cli.policytest:test",
    "cleanup": "kubectl_audit.cli.enable:cleanup",
    "version": "kubectl_audit.cli.version:version",
}


def _module_exists(target: str) -> bool:
    module = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@verbosity_option
def cli() -> None:
    """Turn on, check and query Kubernetes API-server audit logging, safely.

    Cluster commands honour --kubeconfig, --context and $KUBECONFIG like kubectl.
    Policy commands (validate, explain, test) need no cluster.
    """


def _report(error: AuditError) -> None:
    click.echo(f"error: {error.message}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the command, turn our errors into messages."""
    state.verbosity = 0
    try:
        result = cli.main(args=argv, prog_name=PROG_NAME, standalone_mode=False)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except AuditError as error:
        if state.verbosity:
            traceback.print_exc()
        _report(error)
        sys.exit(error.exit_code)
    except BrokenPipeError:
        # `kubectl audit logs | head`: the reader went away; that is not an error.
        sys.stderr.close()
        sys.exit(0)
    except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback by default
        if state.verbosity:
            traceback.print_exc()
        click.echo(f"error: internal error: {type(error).__name__}: {error}", err=True)
        click.echo("hint: re-run with -v to see the traceback, and please report it", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["COMMANDS", "PROG_NAME", "cli", "main"]
