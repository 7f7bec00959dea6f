"""One verdict per policy document: what `validate`, `enable`'s pre-flight and the webhook share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubectl_audit.policy.lint import lint_policy
from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import Finding, Policy


@dataclass(frozen=True)
class PolicyReport:
    """The verdict on one policy document: errors make it invalid, warnings never do."""

    file: str
    location: str | None
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    policy: Policy | None

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "location": self.location,
            "valid": self.valid,
            "errors": [finding.to_dict() for finding in self.errors],
            "warnings": [finding.to_dict() for finding in self.warnings],
        }


def check_policy(
    data: bytes | str, *, file: str, location: str | None = None, lint: bool = True
) -> PolicyReport:
    """Load `data` as kube-apiserver would, then add lint warnings if it loaded."""
    result = load_policy(data)
    warnings = result.warnings
    if lint and result.policy is not None:
        warnings = warnings + lint_policy(result.policy)
    return PolicyReport(file, location, result.errors, warnings, result.policy)
