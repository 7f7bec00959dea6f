"""Options shared by several commands, spelled the way kubectl spells them."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class _State:
    verbosity: int = 0


state = _State()


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value:
        state.verbosity = max(state.verbosity, value)
        level = logging.DEBUG if state.verbosity >= 4 else logging.INFO
        logging.basicConfig(
            level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
        )
    return value


def verbosity_option(func: F) -> F:
    """`-v N` as in kubectl: 1-3 progress details, 4+ debug; any -v shows tracebacks."""
    return click.option(
        "-v",
        "--v",
        "verbosity",
        type=click.IntRange(0, 10),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_verbosity,
        help="Log level for diagnostics (kubectl style, e.g. -v 4); also shows tracebacks.",
    )(func)


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the cluster: kubectl's --kubeconfig, --context, --request-timeout."""

    kubeconfig: str | None
    context: str | None
    request_timeout: float | None


def _parse_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value in (None, "", "0"):
        return None
    from kubectl_audit.durations import parse_duration

    try:
        return parse_duration(value, default_unit="s").total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def kube_options(func: F) -> F:
    """Adds --kubeconfig/--context/--request-timeout and passes `kube: KubeOptions`."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        kubeconfig: str | None,
        context: str | None,
        request_timeout: float | None,
        **kwargs: Any,
    ) -> Any:
        return func(*args, kube=KubeOptions(kubeconfig, context, request_timeout), **kwargs)

    options = (
        click.option(
            "--kubeconfig",
            default=None,
            type=click.Path(dir_okay=False),
            help="Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
        ),
        click.option("--context", default=None, help="The kubeconfig context to use."),
        click.option(
            "--request-timeout",
            callback=_parse_timeout,
            default=None,
            metavar="DURATION",
            help="Timeout for a single API request (e.g. 30s, 1m); 0 means none.",
        ),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def output_option(*choices: str, default: str) -> Callable[[F], F]:
    """`-o/--output FORMAT` restricted to `choices`."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(choices),
        default=default,
        show_default=True,
        help="Output format.",
    )
