"""THE audit policy engine, shared by the CLI, CI, `enable`'s pre-flight and the webhook."""

from kubectl_audit.policy.checker import PolicyChecker, decide, rule_matches
from kubectl_audit.policy.model import (
    LEVELS,
    STAGES,
    Decision,
    Finding,
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
    UserInfo,
)

__all__ = [
    "LEVELS",
    "STAGES",
    "Decision",
    "Finding",
    "GroupResources",
    "Policy",
    "PolicyChecker",
    "PolicyRule",
    "RequestAttributes",
    "UserInfo",
    "decide",
    "rule_matches",
]
