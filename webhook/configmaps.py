"""Which ConfigMaps the webhook judges, and which of their values are audit policies.

A ConfigMap is ours only if it carries the opt-in label. Inside it, a value is a policy
document when its key is one of the configured policy keys (`policy.yaml` by default) or
when its text declares `apiVersion: audit.k8s.io/...` (YAML or JSON spelling). This is a
byte-level scan, not a parse: deciding *what* to check must stay cheap for every key.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.config import WebhookConfig

# `apiVersion: audit.k8s.io/v1`, `"apiVersion": "audit.k8s.io/v1"`, `{"apiVersion":"audit...`
# at any indentation (OpenShift indents whole documents) and in flow/JSON style.
_DECLARES_AUDIT_API = re.compile(
    rb"""(?:^|[{,])[ \t]*["']?apiVersion["']?[ \t]*:[ \t]*["']?audit\.k8s\.io/""",
    re.MULTILINE,
)


@dataclass(frozen=True)
class PolicyDocument:
    """One value to check. `problem` is set when the value cannot even be handed over."""

    key: str
    source: str  # "data" or "binaryData"
    content: bytes
    problem: str | None = None


def is_opted_in(obj: Mapping[str, Any], config: WebhookConfig) -> bool:
    """True when the object's labels carry the opt-in label with the opt-in value."""
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return isinstance(labels, Mapping) and labels.get(config.label) == config.label_value


def declares_audit_policy(content: bytes) -> bool:
    return _DECLARES_AUDIT_API.search(content) is not None


def policy_documents(obj: Mapping[str, Any], config: WebhookConfig) -> tuple[PolicyDocument, ...]:
    """Every data/binaryData value of the ConfigMap that is an audit policy, in key order."""
    found: list[PolicyDocument] = []
    for source in ("data", "binaryData"):
        values = obj.get(source)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            found.append(PolicyDocument(source, source, b"", f"{source} is not a map"))
            continue
        for key in sorted(values):
            document = _document(str(key), source, values[key], config)
            if document is not None:
                found.append(document)
    return tuple(found)


def _document(key: str, source: str, value: object, config: WebhookConfig) -> PolicyDocument | None:
    named = key in config.policy_keys
    if not isinstance(value, str):
        # The API server would never send this; only a named key is worth a complaint.
        return (
            PolicyDocument(key, source, b"", f"{source} value is not a string") if named else None
        )
    if source == "binaryData":
        try:
            content = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problem = "binaryData value is not valid base64"
            return PolicyDocument(key, source, b"", problem) if named else None
    else:
        content = value.encode("utf-8", "surrogatepass")
    if named or declares_audit_policy(content):
        return PolicyDocument(key, source, content)
    return None
