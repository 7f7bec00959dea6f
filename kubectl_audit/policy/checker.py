"""Request attributes -> audit level, omitted stages and the rule that decided.

Mirrors kube-apiserver 1.36 `pkg/audit/policy/checker.go` (reference/audit-policy-spec.md
§5): rules are walked in order and the first match wins; a rule's omitStages are the
union of the policy-wide and the rule's own; an explicit rule omitManagedFields (true or
false) overrides the policy-wide value.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_audit.policy.model import (
    Decision,
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
)


def rule_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    """Whether `rule` selects the request: every selector present must match (§5.3)."""
    if rule.users and (attrs.user is None or attrs.user.name not in rule.users):
        return False
    if rule.user_groups and (
        attrs.user is None or not any(group in rule.user_groups for group in attrs.user.groups)
    ):
        return False
    if rule.verbs and attrs.verb not in rule.verbs:
        return False
    if rule.is_resource_rule:
        return _resource_rule_matches(rule, attrs)
    if rule.non_resource_urls:
        return not attrs.resource_request and any(
            non_resource_url_matches(spec, attrs.path) for spec in rule.non_resource_urls
        )
    return True


def _resource_rule_matches(rule: PolicyRule, attrs: RequestAttributes) -> bool:
    if not attrs.resource_request:
        return False
    if rule.namespaces and attrs.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    return any(group_resources_match(gr, attrs) for gr in rule.resources)


def group_resources_match(gr: GroupResources, attrs: RequestAttributes) -> bool:
    """Whether one `resources` entry selects the request's group/resource/name (§5.3 4d)."""
    if gr.group != attrs.api_group and gr.group != "*":
        return False
    if not gr.resources:
        return True
    if gr.resource_names and attrs.name not in gr.resource_names:
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return any(_resource_matches(res, attrs, combined) for res in gr.resources)


def _resource_matches(res: str, attrs: RequestAttributes, combined: str) -> bool:
    if res == combined or res == "*":
        return True
    if attrs.subresource and res == "*/" + attrs.subresource:
        return True
    # `pods/*` selects every subresource of pods and, upstream, the bare resource too.
    return res.endswith("/*") and res[:-2] == attrs.resource


def non_resource_url_matches(spec: str, path: str) -> bool:
    """`*` matches everything; `/x*` is a raw string prefix; anything else is exact."""
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True)
class _PreparedRule:
    rule: PolicyRule
    omit_stages: frozenset[str]


class PolicyChecker:
    """Evaluates requests against one policy; prepared once, used for many requests."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        policy_stages = frozenset(policy.omit_stages)
        self._rules = tuple(
            _PreparedRule(rule, policy_stages | frozenset(rule.omit_stages))
            for rule in policy.rules
        )
        self._default = Decision(
            level="None",
            omit_stages=policy_stages,
            omit_managed_fields=policy.omit_managed_fields,
            rule_index=None,
        )

    def decide(self, attrs: RequestAttributes) -> Decision:
        for index, prepared in enumerate(self._rules):
            rule = prepared.rule
            if rule_matches(rule, attrs):
                managed = (
                    self.policy.omit_managed_fields
                    if rule.omit_managed_fields is None
                    else rule.omit_managed_fields
                )
                return Decision(rule.level, prepared.omit_stages, managed, index)
        return self._default

    def first_match(self, attrs: RequestAttributes) -> int | None:
        return self.decide(attrs).rule_index


def decide(policy: Policy, attrs: RequestAttributes) -> Decision:
    """One-off evaluation; build a PolicyChecker to evaluate many requests."""
    return PolicyChecker(policy).decide(attrs)
