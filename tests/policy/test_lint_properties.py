"""Properties of lint against the matcher, over random policies from small alphabets.

* `covers(a, b)` is sound: whenever it says yes, every request `b` matches, `a` matches.
* the sensitive-data probe is complete: any request for a sensitive resource whose
  decision writes its content to the log is reported against the deciding rule.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_audit.policy.checker import PolicyChecker, rule_matches
from kubectl_audit.policy.lint import SENSITIVE, covers, sensitive_exposure
from kubectl_audit.policy.model import (
    LEVELS,
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
    UserInfo,
)

USERS = ["alice", "bob"]
GROUPS = ["dev", "ops", "system:authenticated"]
VERBS = ["get", "list", "create", "update", "deletecollection"]
NAMESPACES = ["", "default", "prod"]
API_GROUPS = ["", "apps", "authentication.k8s.io"]
RESOURCES = ["pods", "secrets", "configmaps", "serviceaccounts", "tokenreviews", "deployments"]
SUBRESOURCES = ["", "log", "token", "status"]
NAMES = ["", "a", "b"]
RESOURCE_STRINGS = [
    "*",
    "pods",
    "secrets",
    "configmaps",
    "pods/log",
    "pods/*",
    "*/log",
    "*/token",
    "serviceaccounts/token",
    "serviceaccounts/*",
    "deployments",
    "tokenreviews",
    "*/*",
]
PATHS = ["/healthz", "/healthz/etcd", "/api", "/apis/apps", "/metrics"]
URL_SPECS = ["*", "/healthz", "/healthz*", "/api*", "/apis*", "/metrics", "/a*"]


def subset(values: list[str], min_size: int = 0) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=2, unique=True).map(tuple)


group_resources = st.builds(
    GroupResources,
    group=st.sampled_from([*API_GROUPS, "*"]),
    resources=subset(RESOURCE_STRINGS),
    resource_names=subset(NAMES),
).filter(lambda gr: gr.resources or not gr.resource_names)  # validation forbids the rest


@st.composite
def rules(draw: st.DrawFn) -> PolicyRule:
    kind = draw(st.sampled_from(["resource", "url", "plain"]))
    return PolicyRule(
        level=draw(st.sampled_from(LEVELS)),
        users=draw(subset(USERS)),
        user_groups=draw(subset(GROUPS)),
        verbs=draw(subset(VERBS)),
        resources=draw(st.lists(group_resources, max_size=2).map(tuple))
        if kind == "resource"
        else (),
        namespaces=draw(subset(NAMESPACES)) if kind == "resource" else (),
        non_resource_urls=draw(subset(URL_SPECS, min_size=1)) if kind == "url" else (),
    )


users = st.one_of(
    st.none(),
    st.builds(UserInfo, st.sampled_from([*USERS, "carol"]), subset(GROUPS)),
)


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


# Every request over the alphabets above (users: none, a named one, an unnamed one).
ALL_REQUESTS = [
    RequestAttributes(verb, user, True, ns, api_group, resource, sub, name)
    for user in (None, UserInfo("alice", ("dev",)), UserInfo("carol", ("system:authenticated",)))
    for verb in ("get", "create")
    for ns in NAMESPACES
    for api_group in API_GROUPS
    for resource in RESOURCES
    for sub in SUBRESOURCES
    for name in NAMES
] + [
    RequestAttributes("get", user, False, path=path)
    for user in (None, UserInfo("bob", ("ops",)))
    for path in PATHS
]


@SETTINGS
@given(outer=rules(), inner=rules())
def test_covers_is_sound(outer: PolicyRule, inner: PolicyRule) -> None:
    assert covers(inner, inner)
    if covers(outer, inner):
        for request_ in ALL_REQUESTS:
            if rule_matches(inner, request_):
                assert rule_matches(outer, request_), request_


@SETTINGS
@given(
    policy_rules=st.lists(rules(), min_size=1, max_size=5),
    user=users,
    verb=st.sampled_from(["get", "list", "watch", "create", "update", "patch", "delete"]),
    namespace=st.sampled_from([*NAMESPACES, "elsewhere"]),
    name=st.sampled_from([*NAMES, "zzz"]),
    which=st.sampled_from(SENSITIVE),
)
def test_sensitive_probe_is_complete(
    policy_rules: list[PolicyRule],
    user: UserInfo | None,
    verb: str,
    namespace: str,
    name: str,
    which: object,
) -> None:
    policy = Policy(rules=tuple(policy_rules))
    sensitive = which
    attrs = RequestAttributes(
        verb=verb,
        user=user,
        namespace=namespace if sensitive.namespaced else "",  # type: ignore[attr-defined]
        api_group=sensitive.group,  # type: ignore[attr-defined]
        resource=sensitive.resource,  # type: ignore[attr-defined]
        subresource=sensitive.subresource,  # type: ignore[attr-defined]
        name=name,
    )
    decision = PolicyChecker(policy).decide(attrs)
    exposed = (decision.level == "RequestResponse" and verb in sensitive.response_verbs) or (  # type: ignore[attr-defined]
        decision.level == "Request" and verb in sensitive.request_verbs  # type: ignore[attr-defined]
    )
    if exposed:
        reported = {
            f.field
            for f in sensitive_exposure(policy)
            if f" {sensitive.label} at " in f.message  # type: ignore[attr-defined]
        }
        assert f"rules[{decision.rule_index}]" in reported
