"""AdmissionReview in, AdmissionReview out: the contract with kube-apiserver.

`parse_review` turns request bytes into a `Review` or raises `ReviewError` (answered with
HTTP 4xx: there is no review to answer). `judge` decides on the request with the project's
policy engine. `review_response` builds the reply in the version that was sent, echoing
the uid: any other shape is a *call failure* for the API server, not a denial
(reference/webhook-and-performance.md §1.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kubectl_audit.errors import AuditError
from kubectl_audit.policy.model import Finding
from kubectl_audit.policy.report import check_policy
from webhook.cache import Findings, FindingsCache
from webhook.config import WebhookConfig
from webhook.configmaps import PolicyDocument, is_opted_in, policy_documents

API_GROUP = "admission.k8s.io"
VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
JUDGED_OPERATIONS = frozenset(("CREATE", "UPDATE"))

_WHITESPACE = re.compile(r"\s+")


class ReviewError(Exception):
    """The body is not an AdmissionReview we can answer; `status` is the HTTP code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Review:
    api_version: str
    uid: str
    request: Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    """The webhook's answer. `outcome` is allowed, denied, skipped or error."""

    allowed: bool
    outcome: str
    message: str | None = None
    warnings: tuple[str, ...] = ()
    valid_documents: int = 0
    invalid_documents: int = 0
    code: int = 422
    reason: str = "Invalid"


SKIPPED = Verdict(allowed=True, outcome="skipped")


def parse_review(body: bytes) -> Review:
    """The AdmissionReview in `body`, or ReviewError naming what is wrong with it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        # orjson rejects invalid UTF-8 and nesting deeper than 1024 here, without recursing.
        raise ReviewError(f"request body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ReviewError("request body is not a JSON object (expected an AdmissionReview)")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if kind != "AdmissionReview" or api_version not in VERSIONS:
        raise ReviewError(
            f"expected kind AdmissionReview of {' or '.join(VERSIONS)}, "
            f"got kind {_short(kind)} of {_short(api_version)}"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request has no uid")
    return Review(api_version, uid, request)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_configmap(request: Mapping[str, Any]) -> bool:
    """True for core/v1 ConfigMaps, judged by kind and, failing that, by resource."""
    kind = request.get("kind")
    if isinstance(kind, Mapping):
        return kind.get("group") == "" and kind.get("kind") == "ConfigMap"
    resource = request.get("resource")
    return isinstance(resource, Mapping) and (
        resource.get("group") == "" and resource.get("resource") == "configmaps"
    )


def judge(
    request: Mapping[str, Any], config: WebhookConfig, cache: FindingsCache | None = None
) -> Verdict:
    """Allow anything that is not an opted-in ConfigMap write; else check every policy in it."""
    if request.get("operation") not in JUDGED_OPERATIONS or not is_configmap(request):
        return SKIPPED
    if request.get("subResource"):
        return SKIPPED
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        raise ReviewError(f"{request.get('operation')} request has no object")
    if not is_opted_in(obj, config):
        return SKIPPED
    where = _configmap_name(request, obj)
    errors: list[str] = []
    warnings: list[str] = []
    valid = invalid = 0
    for document in policy_documents(obj, config):
        doc_errors, doc_warnings = check_document(document, config, cache)
        errors.extend(doc_errors)
        warnings.extend(doc_warnings)
        if doc_errors:
            invalid += 1
        else:
            valid += 1
    bounded_warnings = bound_warnings(warnings, config)
    if not errors:
        return Verdict(True, "allowed", None, bounded_warnings, valid, invalid)
    return Verdict(
        False,
        "denied",
        denial_message(where, errors, config),
        bounded_warnings,
        valid,
        invalid,
    )


def _configmap_name(request: Mapping[str, Any], obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    name = request.get("name") or metadata.get("name") or metadata.get("generateName") or "?"
    namespace = request.get("namespace") or metadata.get("namespace") or ""
    return f"{namespace}/{name}" if namespace else str(name)


def check_document(
    document: PolicyDocument, config: WebhookConfig, cache: FindingsCache | None = None
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for one value, each already phrased with its key."""
    label = f"{document.source}[{document.key}]"
    if document.problem:
        return [f"{label}: {document.problem}"], []
    if len(document.content) > config.max_policy_bytes:
        return [
            f"{label}: policy is {len(document.content)} bytes, over the webhook's limit of "
            f"{config.max_policy_bytes} bytes"
        ], []
    key = FindingsCache.key(document.content) if cache is not None else b""
    findings = cache.get(key) if cache is not None else None
    if findings is None:
        findings = engine_findings(document)
        if cache is not None:
            cache.put(key, findings)
    errors, warnings = findings
    return (
        [_phrase(label, finding) for finding in errors],
        # Warnings must fit 120 characters, so they name the place compiler-style.
        [_phrase(label, finding, compact=True) for finding in warnings],
    )


def engine_findings(document: PolicyDocument) -> Findings:
    """The policy engine's errors and warnings for one document (its lint budgets itself)."""
    try:
        report = check_policy(document.content, file=document.key)
    except AuditError as error:
        # The loader reports bad content as findings; should a budget or input refusal
        # escape as an exception all the same, it is still the engine's verdict.
        return (Finding("Invalid", error.message, None, getattr(error, "line", None)),), ()
    return report.errors, report.warnings


def _phrase(label: str, finding: Finding, *, compact: bool = False) -> str:
    """One line: `data[policy.yaml] line 12: rules[3].level: <the engine's message>`.

    Compact (warnings): `policy.yaml:12: rules[3].level: <the engine's message>`.
    """
    if compact:
        place = label.split("[", 1)[-1].rstrip("]")
        place += f":{finding.line}" if finding.line is not None else ""
    else:
        place = label + (f" line {finding.line}" if finding.line is not None else "")
    message = finding.message
    if finding.field and finding.field not in message:
        message = f"{finding.field}: {message}"
    return _WHITESPACE.sub(" ", f"{place}: {message}").strip()


def denial_message(where: str, errors: Sequence[str], config: WebhookConfig) -> str:
    listed = list(errors[: config.max_errors_listed])
    more = len(errors) - len(listed)
    if more:
        listed.append(f"and {more} more (run `kubectl audit validate` on the policy)")
    noun = "error" if len(errors) == 1 else "errors"
    return f"ConfigMap {where} holds an invalid audit policy ({len(errors)} {noun}): " + "; ".join(
        listed
    )


def bound_warnings(warnings: Sequence[str], config: WebhookConfig) -> tuple[str, ...]:
    """Short, single-line, de-duplicated, at most `max_warnings` (the last may summarise)."""
    unique: list[str] = []
    for text in warnings:
        short = _truncate(_WHITESPACE.sub(" ", text).strip(), config.max_warning_chars)
        if short and short not in unique:
            unique.append(short)
    if len(unique) <= config.max_warnings:
        return tuple(unique)
    kept = unique[: config.max_warnings - 1]
    summary = f"{len(unique) - len(kept)} more warnings: run `kubectl audit validate`"
    return (*kept, _truncate(summary, config.max_warning_chars))


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def review_response(review: Review, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview to send back: same apiVersion and kind, the request's uid."""
    response: dict[str, Any] = {"uid": review.uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {
            "code": verdict.code,
            "reason": verdict.reason,
            "message": verdict.message or "denied",
        }
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def internal_error_verdict() -> Verdict:
    """Fail closed with a readable message when the engine itself broke."""
    return Verdict(
        False,
        "error",
        "the audit-policy webhook could not check this ConfigMap (internal error; "
        "see the webhook's log)",
        code=500,
        reason="InternalError",
    )
