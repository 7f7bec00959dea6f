"""`kubectl audit explain`: which rule and level a request gets under a policy."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import click

from kubectl_audit.cli.options import output_option, verbosity_option
from kubectl_audit.errors import InputError, PolicyError, UsageError
from kubectl_audit.policy.model import Decision, Finding, Policy, RequestAttributes
from kubectl_audit.policy.presets import list_presets


@dataclass(frozen=True)
class LoadedPolicy:
    source: str  # the file name, `-` or `preset:NAME`, as messages name it
    policy: Policy


class PolicyLoadError(PolicyError):
    """The policy does not load; the message lists every error as `file:line: problem`."""


def format_finding(source: str, finding: Finding) -> str:
    where = f"{source}:{finding.line}" if finding.line is not None else source
    message = finding.message
    if finding.field and not message.startswith(finding.field):
        message = f"{finding.field}: {message}"
    return f"{where}: {message}"


def read_policy_bytes(path: str) -> bytes:
    """The bytes of `path` (`-` = stdin); InputError (exit 2) when it cannot be read."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise InputError(f"cannot read policy {path}: {error.strerror or error}") from None


def load_cli_policy(path: str | None, preset: str | None) -> LoadedPolicy:
    """The policy of `-f PATH` or `--preset NAME`, loaded exactly as kube-apiserver would."""
    from kubectl_audit.policy.loader import load_policy
    from kubectl_audit.policy.presets import preset_source, read_preset

    if (path is None) == (preset is None):
        raise UsageError("give the policy as exactly one of -f FILE or --preset NAME")
    if preset is not None:
        source, data = preset_source(preset), read_preset(preset).encode()
    else:
        assert path is not None
        source, data = path, read_policy_bytes(path)
    result = load_policy(data, source=source)
    if result.errors or result.policy is None:
        lines = [format_finding(source, finding) for finding in result.errors]
        raise PolicyLoadError(
            f"{source} does not load as an audit policy:\n  " + "\n  ".join(lines),
            hint=f"`kubectl audit validate {source}` explains each error"
            if preset is None
            else None,
        )
    return LoadedPolicy(source, result.policy)


def describe_request(attrs: RequestAttributes) -> str:
    """`get pods/busybox in default by alice (groups: dev)` - one line, for humans."""
    if attrs.resource_request:
        target = attrs.resource if not attrs.api_group else f"{attrs.resource}.{attrs.api_group}"
        if attrs.name:
            target += f"/{attrs.name}"
        if attrs.subresource:
            target += f" ({attrs.subresource})"
        where = f" in namespace {attrs.namespace}" if attrs.namespace else " (no namespace)"
    else:
        target, where = attrs.path, " (non-resource URL)"
    if attrs.user is None:
        who = "no user information"
    else:
        groups = ", ".join(attrs.user.groups) or "none"
        who = f"user {attrs.user.name} (groups: {groups})"
    return f"{attrs.verb} {target}{where}, {who}"


def render_decision(
    loaded: LoadedPolicy, attrs: RequestAttributes, decision: Decision, notes: Sequence[str]
) -> str:
    from kubectl_audit.render import to_yaml

    lines = [
        f"Policy:             {loaded.source}",
        f"Request:            {describe_request(attrs)}",
        f"Level:              {decision.level}",
    ]
    if decision.rule_index is None:
        lines.append("Rule:               none matched: the request is not logged at all")
    else:
        rule = loaded.policy.rules[decision.rule_index]
        line = (
            rule.line
            if rule.line is not None
            else loaded.policy.line_of(f"rules[{decision.rule_index}]")
        )
        at = f" (line {line})" if line is not None else ""
        lines.append(f"Rule:               rules[{decision.rule_index}]{at}")
        lines += ["    " + text for text in to_yaml([rule.to_dict()]).splitlines()]
    stages = decision.to_dict()["omitStages"]
    lines.append(f"Omitted stages:     {', '.join(stages) if stages else 'none'}")
    lines.append(f"Omit managedFields: {'true' if decision.omit_managed_fields else 'false'}")
    lines += [f"Note: {note}" for note in notes]
    return "\n".join(lines)


@click.command(
    "explain",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  kubectl audit explain -f policy.yaml get secrets -n prod
  kubectl audit explain -f policy.yaml create pods --subresource exec -n prod --as alice
  kubectl audit explain --preset recommended patch deployments.apps/web --as-group dev --as bob
  kubectl audit explain -f policy.yaml get /healthz -o json""",
)
@click.argument("verb")
@click.argument("target", metavar="(RESOURCE[.GROUP][/NAME] | /NON/RESOURCE/URL)")
@click.option(
    "-f", "--filename", "path", metavar="POLICY", help="The audit policy file (- for stdin)."
)
@click.option(
    "--preset",
    metavar="NAME",
    help=f"Use a shipped preset policy instead of -f ({', '.join(list_presets())}).",
)
@click.option("--subresource", default="", help="The subresource, e.g. log, exec, status.")
@click.option("-n", "--namespace", default=None, help="The request's namespace.")
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="A request across all namespaces (a namespaced list or watch carries no namespace).",
)
@click.option("--as", "as_user", default=None, metavar="USER", help="The authenticated user.")
@click.option(
    "--as-group", "as_groups", multiple=True, metavar="GROUP", help="A group of the user (repeat)."
)
@output_option("text", "json", default="text")
@verbosity_option
def explain(
    verb: str,
    target: str,
    path: str | None,
    preset: str | None,
    subresource: str,
    namespace: str | None,
    all_namespaces: bool,
    as_user: str | None,
    as_groups: tuple[str, ...],
    output: str,
) -> None:
    """Show the audit level, rule and omitted stages a request gets under a policy.

    The request is written like `kubectl auth can-i`: a VERB and either a resource
    (`pods`, `po`, `deployments.apps/web`, `foos.example.com`; built-in short names and
    kinds are resolved offline, unknown resources are taken literally) or a non-resource
    URL path (`/healthz`).

    Namespace: -n NS; -A for none; otherwise namespaced built-in resources use `default`
    (as kubectl would) and everything else none. A Namespace object is "in" itself.

    User: without --as the request carries no user information (as an unauthenticated
    request would). --as adds `system:authenticated` (anonymous: `system:unauthenticated`)
    and, for service accounts, their `system:serviceaccounts[:NS]` groups, as the API
    server does. The policy sees the authenticated user, not an impersonated one.

    -o json prints {"level", "omitStages", "omitManagedFields", "rule"} where rule is the
    index of the first matching rule or null.
    """
    from kubectl_audit.policy.attributes import from_can_i
    from kubectl_audit.policy.checker import decide

    request = from_can_i(
        verb,
        target,
        subresource=subresource,
        namespace=namespace,
        all_namespaces=all_namespaces,
        user=as_user,
        groups=as_groups,
    )
    loaded = load_cli_policy(path, preset)
    decision = decide(loaded.policy, request.attrs)
    notes = list(request.notes)
    if as_user is None and any(r.users or r.user_groups for r in loaded.policy.rules):
        notes.append(
            "without --as the request carries no user information, so rules that name users "
            "or userGroups cannot match it"
        )
    if output == "json":
        from kubectl_audit.render import to_json

        click.echo(to_json(decision.to_dict()))
        for note in notes:
            click.echo(f"note: {note}", err=True)
    else:
        click.echo(render_decision(loaded, request.attrs, decision, notes))


__all__ = [
    "LoadedPolicy",
    "PolicyLoadError",
    "describe_request",
    "explain",
    "format_finding",
    "load_cli_policy",
    "read_policy_bytes",
]
