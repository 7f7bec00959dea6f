"""`kubectl audit validate`: would kube-apiserver 1.36 load these audit policies?"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence

import click

from kubectl_audit.cli.options import output_option, verbosity_option
from kubectl_audit.errors import InputError
from kubectl_audit.policy.documents import FileContents, PolicySource, find_policies
from kubectl_audit.policy.model import Finding
from kubectl_audit.policy.report import PolicyReport, check_policy
from kubectl_audit.policy.yamlsafe import DEFAULT_MAX_BYTES

STDIN = "-"
STDIN_NAME = "<stdin>"
NO_POLICY_ERROR = "NoPolicyError"
CONFIGMAP_ERROR = "ConfigMapError"


def read_input(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of FILE (or stdin for `-`), refusing anything over `max_bytes`."""
    name = STDIN_NAME if path == STDIN else path
    try:
        if path == STDIN:
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(
            f"cannot read {name}: {reason}", hint="pass a readable policy file, or - for stdin"
        ) from None
    if len(data) > max_bytes:
        raise InputError(
            f"{name} is larger than {max_bytes} bytes; an audit policy is a few KiB",
            hint="check that this is the right file",
        )
    return data


def _shift(findings: Iterable[Finding], source: PolicySource) -> tuple[Finding, ...]:
    return tuple(
        dataclasses.replace(finding, line=source.file_line(finding.line)) for finding in findings
    )


def reports_for(name: str, data: bytes) -> list[PolicyReport]:
    """One report per policy found in the file (a ConfigMap file may hold several)."""
    contents: FileContents = find_policies(data, source=name)
    reports = []
    for source in contents.policies:
        report = check_policy(source.data, file=name, location=source.location)
        if source.location is not None:
            report = dataclasses.replace(
                report,
                errors=_shift(report.errors, source),
                warnings=_shift(report.warnings, source),
            )
        reports.append(report)
    for problem in contents.problems:
        error = Finding(CONFIGMAP_ERROR, problem.message, None, problem.line)
        reports.append(PolicyReport(name, problem.location, (error,), (), None))
    if not reports:
        message = (
            f"no audit policy found in {contents.configmaps} ConfigMap(s): no data key "
            "named policy.yaml (or audit-policy.yaml), nor a .yaml/.json key declaring "
            "apiVersion audit.k8s.io/..."
        )
        reports.append(
            PolicyReport(name, None, (Finding(NO_POLICY_ERROR, message, None, None),), (), None)
        )
    return reports


# --- output ------------------------------------------------------------------------------------

_LEVELS = "None, Metadata, Request or RequestResponse"


def hint_for(finding: Finding) -> str | None:
    """How to fix a finding (the finding itself keeps the apiserver's exact words)."""
    message, field = finding.message, finding.field or ""
    if finding.type == "GroupVersionError":
        return "start the policy with `apiVersion: audit.k8s.io/v1` and `kind: Policy`"
    if finding.type == "NoRulesError":
        return "add at least one rule, e.g. `rules: [{level: Metadata}]`"
    if finding.type == "DecodeError":
        if "audit.k8s.io/v1beta1" in message or "audit.k8s.io/v1alpha1" in message:
            return "v1alpha1/v1beta1 were removed in Kubernetes 1.24: use audit.k8s.io/v1"
        if "cannot unmarshal bool" in message or "cannot unmarshal number" in message:
            return "quote the value: YAML reads bare yes/no/on/off/y/n and numbers as non-text"
        if "converting YAML to JSON" in message:
            return "fix the YAML syntax at this line"
        return None
    if field.endswith(".level"):
        return f"each rule needs a level: {_LEVELS} (case-sensitive)"
    if "omitStages" in field:
        return (
            "stages are RequestReceived, ResponseStarted, ResponseComplete, Panic (case-sensitive)"
        )
    if field.endswith(".resources.group"):
        return 'give the API group alone (`apps`, not `apps/v1`); "" is the core group'
    if field.endswith(".resources.resourceNames"):
        return "list the resources those names belong to in the same entry"
    if field.endswith(".nonResourceURLs"):
        return "split it into two rules: one for resources/namespaces, one for nonResourceURLs"
    if ".nonResourceURLs[" in field:
        return "non-resource URLs are paths like /healthz, with '*' only at the end (/api*)"
    return None


def _where(report: PolicyReport) -> str:
    return f"{report.file} ({report.location})" if report.location else report.file


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _position(report: PolicyReport, finding: Finding) -> str:
    return f"{report.file}:{finding.line}" if finding.line is not None else report.file


def render_text(reports: Sequence[PolicyReport]) -> str:
    out: list[str] = []
    for report in reports:
        counts = []
        if report.errors:
            counts.append(_plural(len(report.errors), "error"))
        if report.warnings:
            counts.append(_plural(len(report.warnings), "warning"))
        verdict = "valid" if report.valid else "INVALID"
        suffix = f" ({', '.join(counts)})" if counts else ""
        out.append(f"{_where(report)}: {verdict}{suffix}")
        context = f" [{report.location}]" if report.location else ""
        for finding in report.errors:
            out.append(f"  {_position(report, finding)}: {finding.message}{context}")
            hint = hint_for(finding)
            if hint:
                out.append(f"    hint: {hint}")
        for finding in report.warnings:
            out.append(f"  {_position(report, finding)}: warning: {finding.message}{context}")
    invalid = sum(not report.valid for report in reports)
    warnings = sum(len(report.warnings) for report in reports)
    out.append(
        f"{_plural(len(reports), 'policy') if len(reports) == 1 else f'{len(reports)} policies'}"
        f" checked: {len(reports) - invalid} valid, {invalid} invalid, "
        f"{_plural(warnings, 'warning')}"
    )
    return "\n".join(out)


def render_json(reports: Sequence[PolicyReport]) -> str:
    return json.dumps({"results": [report.to_dict() for report in reports]}, indent=2)


def _escape_data(text: str) -> str:
    """GitHub workflow-command message escaping."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(reports: Sequence[PolicyReport]) -> str:
    """GitHub Actions annotations: one `::error`/`::warning` line per finding."""
    out: list[str] = []
    for report in reports:
        context = f"{report.location}: " if report.location else ""
        for level, findings in (("error", report.errors), ("warning", report.warnings)):
            for finding in findings:
                properties = [f"file={_escape_property(report.file)}"]
                if finding.line is not None:
                    properties.append(f"line={finding.line}")
                title = f"audit policy {finding.type}"
                properties.append(f"title={_escape_property(title)}")
                hint = hint_for(finding) if level == "error" else None
                text = context + finding.message + (f"\nhint: {hint}" if hint else "")
                message = _escape_data(text)
                out.append(f"::{level} {','.join(properties)}::{message}")
    invalid = sum(not report.valid for report in reports)
    out.append(f"{len(reports)} audit policies checked, {invalid} invalid")
    return "\n".join(out)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}


def exit_code(reports: Sequence[PolicyReport], strict: bool) -> int:
    if any(not report.valid for report in reports):
        return 1
    if strict and any(report.warnings for report in reports):
        return 1
    return 0


@click.command()
@click.argument("files", nargs=-1, metavar="FILE|-...")
@output_option("text", "json", "github", default="text")
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too, not only errors.")
@verbosity_option
@click.pass_context
def validate(ctx: click.Context, files: tuple[str, ...], output: str, strict: bool) -> None:
    """Check audit policy files exactly as kube-apiserver 1.36 would load them.

    A FILE may hold a Policy, or ConfigMaps (one, several `---`-separated, or a List) whose
    data keys carry policies. `-` reads standard input. Unknown, mis-cased and repeated
    fields are warnings (the apiserver ignores them), as are security lint findings.

    Exit status: 0 all valid, 1 a policy is invalid (with --strict: or has warnings),
    2 a file cannot be read or the command line is wrong.
    """
    if not files:
        raise click.UsageError("give at least one FILE, or - to read standard input")
    inputs = [(STDIN_NAME if path == STDIN else path, read_input(path)) for path in files]
    reports = [report for name, data in inputs for report in reports_for(name, data)]
    click.echo(RENDERERS[output](reports))
    ctx.exit(exit_code(reports, strict))
