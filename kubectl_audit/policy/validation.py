"""kube-apiserver's audit policy validation (reference/audit-policy-spec.md §4), as Findings.

Errors come out in the apiserver's order, with its field paths (note: no index for
`rules[i].resources.group`, `.resourceNames` and the `rules[i].nonResourceURLs` mix error)
and its exact texts, `%q`-quoted like Go. Identical texts are reported once (§4.3).
Each Finding's `message` is the full upstream line (`rules[0].level: Required value`),
`field` the upstream path, `line` where that field starts in the file (using the indexed
path the upstream one leaves out, when known).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from kubectl_audit.policy.model import LEVELS, STAGES, Finding, Policy, PolicyRule

REQUIRED = "Required"
NOT_SUPPORTED = "NotSupported"
INVALID = "Invalid"

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_STAGES_TEXT = ",".join(STAGES)

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (`%q`): printable runes as-is, the rest escaped."""
    out = ['"']
    for char in text:
        escaped = _GO_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char.isprintable():
            out.append(char)
        elif 0xD800 <= ord(char) <= 0xDFFF:
            out.append("\\ufffd")
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def go_json(values: Sequence[str]) -> str:
    """Go's json.Marshal of a []string: compact, with <, > and & escaped for HTML."""
    text = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_LEVELS_TEXT = ", ".join(go_quote(level) for level in LEVELS)


class _Collector:
    """Field errors in order; the same text twice is kept once (the apiserver's aggregate)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.findings: list[Finding] = []
        self.seen: set[str] = set()
        self.valid_groups: set[str] = set()  # policies repeat their groups: check each once

    def add(self, kind: str, path: str, body: str, line_path: str | None = None) -> None:
        message = f"{path}: {body}"
        if message in self.seen:
            return
        self.seen.add(message)
        line = self.policy.line_of(line_path or path)
        self.findings.append(Finding(kind, message, path, line))


def _invalid_stages(stages: Iterable[str], path: str, out: _Collector) -> None:
    for index, stage in enumerate(stages):
        if stage not in STAGES:
            out.add(
                INVALID,
                f"{path}[{index}]",
                f"Invalid value: {go_quote(stage)}: allowed stages are {_STAGES_TEXT}",
            )


def _check_level(rule: PolicyRule, path: str, out: _Collector) -> None:
    if not rule.level:
        out.add(REQUIRED, f"{path}.level", "Required value")
    elif rule.level not in LEVELS:
        out.add(
            NOT_SUPPORTED,
            f"{path}.level",
            f"Unsupported value: {go_quote(rule.level)}: supported values: {_LEVELS_TEXT}",
        )


def _check_non_resource_urls(rule: PolicyRule, path: str, out: _Collector) -> None:
    for index, url in enumerate(rule.non_resource_urls):
        if url == "*" or (url.startswith("/") and "*" not in url[:-1]):
            continue  # the usual case: nothing to report, no path to build
        url_path = f"{path}.nonResourceURLs[{index}]"
        if not url.startswith("/"):
            out.add(
                INVALID,
                url_path,
                f"Invalid value: {go_quote(url)}: "
                "non-resource URL rules must begin with a '/' character",
            )
        if url and "*" in url[:-1]:
            out.add(
                INVALID,
                url_path,
                f"Invalid value: {go_quote(url)}: "
                "non-resource URL wildcards '*' must be the final character of the rule",
            )


def dns1123_subdomain_errors(value: str) -> list[str]:
    """apimachinery's IsDNS1123Subdomain: the length and pattern complaints, in order."""
    errors = []
    if len(value.encode("utf-8", "surrogatepass")) > _DNS1123_SUBDOMAIN_MAX:
        errors.append(f"must be no more than {_DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errors.append(_DNS1123_SUBDOMAIN_MESSAGE)
    return errors


def _is_dns1123_subdomain(value: str) -> bool:
    """`dns1123_subdomain_errors(value)` is empty: a match is ASCII, so chars are bytes."""
    return len(value) <= _DNS1123_SUBDOMAIN_MAX and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def _valid_group(group: str, out: _Collector) -> bool:
    """Empty, `*` or a DNS-1123 subdomain. Policies repeat their groups: each is checked once."""
    if group in out.valid_groups:
        return True
    if group and group != "*" and not _is_dns1123_subdomain(group):
        return False
    out.valid_groups.add(group)
    return True


def _check_resources(rule: PolicyRule, path: str, out: _Collector) -> None:
    for index, entry in enumerate(rule.resources):
        if not _valid_group(entry.group, out):
            problems = dns1123_subdomain_errors(entry.group)
            out.add(
                INVALID,
                f"{path}.resources.group",
                f"Invalid value: {go_quote(entry.group)}: {','.join(problems)}",
                f"{path}.resources[{index}].group",
            )
        if entry.resource_names and not entry.resources:
            out.add(
                INVALID,
                f"{path}.resources.resourceNames",
                f"Invalid value: {go_json(entry.resource_names)}: "
                "using resourceNames requires at least one resource",
                f"{path}.resources[{index}].resourceNames",
            )


def _check_mix(rule: PolicyRule, path: str, out: _Collector) -> None:
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        out.add(
            INVALID,
            f"{path}.nonResourceURLs",
            f"Invalid value: {go_json(rule.non_resource_urls)}: "
            "rules cannot apply to both regular resources and non-resource URLs",
        )


def validate_policy(policy: Policy) -> tuple[Finding, ...]:
    """Every validation error kube-apiserver 1.36 reports for `policy`, in its order."""
    out = _Collector(policy)
    _invalid_stages(policy.omit_stages, "omitStages", out)
    for index, rule in enumerate(policy.rules):
        # Each check runs only where it can find something: most rules have few fields.
        path = f"rules[{index}]"
        if rule.level not in LEVELS:
            _check_level(rule, path, out)
        if rule.non_resource_urls:
            _check_non_resource_urls(rule, path, out)
        if rule.resources:
            _check_resources(rule, path, out)
        if rule.omit_stages:
            _invalid_stages(rule.omit_stages, f"{path}.omitStages", out)
        if rule.non_resource_urls:
            _check_mix(rule, path, out)
    return tuple(out.findings)


def aggregate_message(findings: Sequence[Finding]) -> str:
    """The apiserver's one-line error: one text alone, several as `[e1, e2]`."""
    if len(findings) == 1:
        return findings[0].message
    return "[" + ", ".join(finding.message for finding in findings) + "]"


__all__ = [
    "INVALID",
    "NOT_SUPPORTED",
    "REQUIRED",
    "aggregate_message",
    "dns1123_subdomain_errors",
    "go_json",
    "go_quote",
    "validate_policy",
]
