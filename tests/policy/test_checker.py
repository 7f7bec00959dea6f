"""The matcher against reference/audit-policy-spec.md §5 and §7 items 7-12.

The second half replays the cases of upstream's `pkg/audit/policy/checker_test.go`
(kubernetes/kubernetes, read for its facts: the requests, rules and expected levels).
"""

from __future__ import annotations

import pytest

from kubectl_audit.policy.checker import (
    PolicyChecker,
    decide,
    group_resources_match,
    non_resource_url_matches,
    rule_matches,
)
from kubectl_audit.policy.model import (
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
    UserInfo,
)

ALICE = UserInfo("alice", ("dev", "system:authenticated"))


def res(
    verb: str = "get",
    resource: str = "pods",
    *,
    group: str = "",
    sub: str = "",
    ns: str = "default",
    name: str = "",
    user: UserInfo | None = ALICE,
) -> RequestAttributes:
    return RequestAttributes(
        verb=verb,
        user=user,
        resource_request=True,
        namespace=ns,
        api_group=group,
        resource=resource,
        subresource=sub,
        name=name,
    )


def url(path: str, verb: str = "get", user: UserInfo | None = ALICE) -> RequestAttributes:
    return RequestAttributes(verb=verb, user=user, resource_request=False, path=path)


def gr(group: str = "", *resources: str, names: tuple[str, ...] = ()) -> GroupResources:
    return GroupResources(group=group, resources=resources, resource_names=names)


def rule(level: str = "Metadata", **selectors: object) -> PolicyRule:
    return PolicyRule(level=level, **selectors)  # type: ignore[arg-type]


# -- 5.3: one selector at a time --------------------------------------------------------

SELECTOR_CASES = [
    # (id, rule, request, matches)
    ("users exact", rule(users=("alice",)), res(), True),
    ("users other", rule(users=("bob",)), res(), False),
    ("users case-sensitive", rule(users=("Alice",)), res(), False),
    ("users star is literal", rule(users=("*",)), res(), False),
    ("users need user info", rule(users=("alice",)), res(user=None), False),
    ("groups any of", rule(user_groups=("ops", "dev")), res(), True),
    ("groups none shared", rule(user_groups=("ops",)), res(), False),
    ("groups need user info", rule(user_groups=("dev",)), res(user=None), False),
    ("groups star is literal", rule(user_groups=("*",)), res(), False),
    ("no user selector matches no user", rule(), res(user=None), True),
    ("verbs exact", rule(verbs=("get", "list")), res("list"), True),
    ("verbs other", rule(verbs=("get",)), res("watch"), False),
    ("verbs star is literal", rule(verbs=("*",)), res("get"), False),
    ("namespaces exact", rule(namespaces=("default",)), res(), True),
    ("namespaces other", rule(namespaces=("kube-system",)), res(), False),
    ("namespaces star is literal", rule(namespaces=("*",)), res(), False),
    ("namespaces empty string = cluster", rule(namespaces=("",)), res("get", "nodes", ns=""), True),
    ("namespaces empty string not ns", rule(namespaces=("",)), res(), False),
    ("namespaces alone: resource-only", rule(namespaces=("default",)), url("/healthz"), False),
    ("namespace object is in itself", rule(namespaces=("kube-system",)),
     res("get", "namespaces", ns="kube-system", name="kube-system"), True),
    ("no selectors: resource", rule(), res(), True),
    ("no selectors: non-resource", rule(), url("/metrics"), True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("the_rule", "request_", "expected"),
    [case[1:] for case in SELECTOR_CASES],
    ids=[case[0] for case in SELECTOR_CASES],
)
def test_rule_selectors(the_rule: PolicyRule, request_: RequestAttributes, expected: bool) -> None:
    assert rule_matches(the_rule, request_) is expected


# -- 5.3 4d, §7 items 7-8: groups and resources ----------------------------------------

RESOURCE_CASES = [
    ("core default group", gr("", "pods"), res(), True),
    ("core does not match apps", gr("", "deployments"), res(resource="deployments", group="apps"),
     False),
    ("'core' is not an alias", gr("core", "pods"), res(), False),
    ("apps group", gr("apps", "deployments"), res(resource="deployments", group="apps"), True),
    ("star group any group", gr("*", "deployments"), res(resource="deployments", group="apps"),
     True),
    ("star group also core", gr("*", "pods"), res(), True),
    ("group only: every resource", gr("apps"), res(resource="deployments", group="apps"), True),
    ("group only: every subresource", gr(""), res(sub="log"), True),
    ("group only ignores names", GroupResources("", (), ("x",)), res(name="y"), True),
    ("pods not pods/log", gr("", "pods"), res(sub="log"), False),
    ("pods/log not pods", gr("", "pods/log"), res(), False),
    ("pods/log exact", gr("", "pods/log"), res(sub="log"), True),
    ("star every resource", gr("", "*"), res(resource="secrets"), True),
    ("star every subresource", gr("", "*"), res(sub="exec"), True),
    ("star/sub", gr("", "*/log"), res(sub="log"), True),
    ("star/sub other sub", gr("", "*/log"), res(sub="exec"), False),
    ("star/sub not bare", gr("", "*/log"), res(), False),
    ("pods/* subresource", gr("", "pods/*"), res(sub="exec"), True),
    ("pods/* bare resource too", gr("", "pods/*"), res(), True),
    ("pods/* not services", gr("", "pods/*"), res(resource="services"), False),
    ("*/* matches nothing real", gr("", "*/*"), res(sub="log"), False),
    ("*/* not bare", gr("", "*/*"), res(), False),
    ("pods/log/* matches nothing", gr("", "pods/log/*"), res(sub="log"), False),
    ("case-sensitive resource", gr("", "Pods"), res(), False),
    ("resourceNames exact", gr("", "secrets", names=("db",)), res(resource="secrets", name="db"),
     True),
    ("resourceNames other", gr("", "secrets", names=("db",)), res(resource="secrets", name="x"),
     False),
    ("resourceNames never list", gr("", "secrets", names=("db",)), res("list", "secrets"), False),
    ("resourceNames empty string lists", gr("", "secrets", names=("",)), res("list", "secrets"),
     True),
    ("resourceNames with subresource", gr("", "pods/log", names=("web",)),
     res(sub="log", name="web"), True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "request_", "expected"),
    [case[1:] for case in RESOURCE_CASES],
    ids=[case[0] for case in RESOURCE_CASES],
)
def test_group_resources(
    entry: GroupResources, request_: RequestAttributes, expected: bool
) -> None:
    assert group_resources_match(entry, request_) is expected
    assert rule_matches(rule(resources=(entry,)), request_) is expected


def test_any_resources_entry_may_match() -> None:
    the_rule = rule(resources=(gr("apps", "deployments"), gr("", "secrets")))
    assert rule_matches(the_rule, res(resource="secrets"))
    assert not rule_matches(the_rule, res(resource="configmaps"))


def test_resource_rule_needs_namespace_and_resource() -> None:
    the_rule = rule(namespaces=("prod",), resources=(gr("", "secrets"),))
    assert rule_matches(the_rule, res(resource="secrets", ns="prod"))
    assert not rule_matches(the_rule, res(resource="secrets", ns="dev"))
    assert not rule_matches(the_rule, res(resource="pods", ns="prod"))


def test_resource_rule_never_matches_non_resource_requests() -> None:
    assert not rule_matches(rule(resources=(gr("*", "*"),)), url("/api"))
    assert not rule_matches(rule(resources=(gr("*"),)), url("/api"))


# -- 5.3 item 5, §7 item 11: non-resource URLs -----------------------------------------

URL_CASES = [
    ("*", "/anything", True),
    ("/healthz", "/healthz", True),
    ("/healthz", "/healthz/etcd", False),
    ("/healthz*", "/healthz", True),
    ("/healthz*", "/healthz/etcd", True),
    ("/healthz*", "/healthzfoo", True),
    ("/api*", "/apis", True),
    ("/api*", "/api/v1", True),
    ("/api*", "/ap", False),
    ("/x**", "/xy", True),
    ("/logs/*", "/logs", False),
    ("/Healthz", "/healthz", False),
]


@pytest.mark.parametrize(("spec", "path", "expected"), URL_CASES)
def test_non_resource_urls(spec: str, path: str, expected: bool) -> None:
    assert non_resource_url_matches(spec, path) is expected
    assert rule_matches(rule(non_resource_urls=(spec,)), url(path)) is expected


def test_non_resource_star_never_matches_resource_requests() -> None:
    assert not rule_matches(rule(non_resource_urls=("*",)), res())


def test_rule_with_both_kinds_is_a_resource_rule() -> None:
    # Only reachable for policies that bypassed validation: nonResourceURLs are ignored.
    both = rule(namespaces=("default",), non_resource_urls=("/healthz",))
    assert rule_matches(both, res())
    assert not rule_matches(both, url("/healthz"))


# -- 5.1, 5.2, 5.5, §7 item 12: evaluation ---------------------------------------------


def test_first_match_wins() -> None:
    policy = Policy(
        rules=(
            rule("None", resources=(gr("", "events"),)),
            rule("Metadata", resources=(gr("", "secrets"),)),
            rule("RequestResponse"),
        )
    )
    checker = PolicyChecker(policy)
    assert (
        checker.decide(res(resource="events")).level,
        checker.first_match(res("get", "events")),
    ) == ("None", 0)
    assert checker.decide(res(resource="secrets")).rule_index == 1
    assert checker.decide(res(resource="pods")).level == "RequestResponse"


def test_nothing_matched_is_none_with_policy_defaults() -> None:
    policy = Policy(
        rules=(rule("Request", verbs=("create",), omit_stages=("Panic",)),),
        omit_stages=("RequestReceived",),
        omit_managed_fields=True,
    )
    decision = decide(policy, res("get"))
    assert decision.level == "None"
    assert decision.rule_index is None
    assert decision.omit_stages == {"RequestReceived"}
    assert decision.omit_managed_fields is True
    assert decision.to_dict() == {
        "level": "None",
        "omitStages": ["RequestReceived"],
        "omitManagedFields": True,
        "rule": None,
    }


@pytest.mark.parametrize(
    ("policy_stages", "rule_stages", "expected"),
    [
        ((), (), set()),
        (("RequestReceived",), (), {"RequestReceived"}),
        ((), ("RequestReceived",), {"RequestReceived"}),
        (("RequestReceived",), ("RequestReceived",), {"RequestReceived"}),
        (("RequestReceived", "ResponseStarted"), ("Panic", "RequestReceived"),
         {"RequestReceived", "ResponseStarted", "Panic"}),
        (("RequestReceived", "RequestReceived"), (), {"RequestReceived"}),
    ],
)  # fmt: skip
def test_omit_stages_union(
    policy_stages: tuple[str, ...], rule_stages: tuple[str, ...], expected: set[str]
) -> None:
    policy = Policy(rules=(rule(omit_stages=rule_stages),), omit_stages=policy_stages)
    assert decide(policy, res()).omit_stages == expected


def test_to_dict_orders_stages_by_lifecycle() -> None:
    stages = ("Panic", "ResponseComplete", "RequestReceived", "ResponseStarted")
    decision = decide(Policy(rules=(rule(omit_stages=stages),)), res())
    assert decision.to_dict()["omitStages"] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
        "Panic",
    ]


@pytest.mark.parametrize(
    ("policy_value", "rule_value", "expected"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_omit_managed_fields(policy_value: bool, rule_value: bool | None, expected: bool) -> None:
    # Upstream TestOmitManagedFields: an explicit rule value overrides the policy's.
    policy = Policy(
        rules=(rule("RequestResponse", verbs=("get",), omit_managed_fields=rule_value),),
        omit_managed_fields=policy_value,
    )
    assert decide(policy, RequestAttributes(verb="get")).omit_managed_fields is expected


def test_checker_does_not_change_the_policy() -> None:
    policy = Policy(rules=(rule(omit_stages=("Panic",)),), omit_stages=("RequestReceived",))
    PolicyChecker(policy).decide(res())
    assert policy.rules[0].omit_stages == ("Panic",)


# -- upstream checker_test.go -----------------------------------------------------------

TIM = UserInfo("tim@k8s.io", ("humans", "developers"))
UPSTREAM_REQUESTS = {
    "namespaced": res("get", "pods", ns="default", name="busybox", user=TIM),
    "cluster": res(
        "get", "clusterroles", group="rbac.authorization.k8s.io", ns="", name="edit", user=TIM
    ),
    "nonResource": url("/logs/kubelet.log", user=TIM),
    "subresource": res("get", "pods", sub="log", ns="default", name="busybox", user=TIM),
    "Unauthorized": res("get", "pods", ns="default", name="busybox", user=None),
}
UPSTREAM_RULES = {
    "default": rule("Metadata"),
    "create": rule("Request", verbs=("create",)),
    "tims": rule("Metadata", users=("tim@k8s.io",)),
    "humans": rule("Metadata", user_groups=("humans",)),
    "serviceAccounts": rule("Request", user_groups=("system:serviceaccounts",)),
    "getPods": rule("RequestResponse", verbs=("get",), resources=(gr("", "pods"),)),
    "getPodLogs": rule("Request", verbs=("get",), resources=(gr("", "pods/log"),)),
    "getPodWildcardMatching": rule("Request", verbs=("get",), resources=(gr("", "*"),)),
    "getPodResourceWildcardMatching": rule("Request", verbs=("get",), resources=(gr("", "*/log"),)),
    "getPodSubResourceWildcardMatching": rule(
        "Request", verbs=("get",), resources=(gr("", "pods/*"),)
    ),
    "getClusterRoles": rule(
        "RequestResponse",
        verbs=("get",),
        resources=(gr("rbac.authorization.k8s.io", "clusterroles"),),
        namespaces=("",),
    ),
    "getLogs": rule("RequestResponse", verbs=("get",), non_resource_urls=("/logs*",)),
    "getMetrics": rule("Request", verbs=("get",), non_resource_urls=("/metrics",)),
    "clusterRoleEdit": rule(
        "Request", resources=(gr("rbac.authorization.k8s.io", "clusterroles", names=("edit",)),)
    ),
    "omit RequestReceived": rule("Request", omit_stages=("RequestReceived",)),
    "only audit panic": rule(
        "Request", omit_stages=("RequestReceived", "ResponseStarted", "ResponseComplete")
    ),
}
UPSTREAM_LEVELS = [
    ("namespaced", "Metadata", "default"),
    ("namespaced", "None", "create"),
    ("namespaced", "Metadata", "tims"),
    ("namespaced", "Metadata", "humans"),
    ("namespaced", "None", "serviceAccounts"),
    ("namespaced", "RequestResponse", "getPods"),
    ("namespaced", "None", "getClusterRoles"),
    ("namespaced", "None", "getLogs"),
    ("namespaced", "None", "getMetrics"),
    ("namespaced", "Metadata", "getMetrics,serviceAccounts,default"),
    ("namespaced", "RequestResponse", "getMetrics,getPods,default"),
    ("namespaced", "RequestResponse", "getPodLogs,getPods"),
    ("cluster", "Metadata", "default"),
    ("cluster", "None", "create"),
    ("cluster", "Metadata", "tims"),
    ("cluster", "Metadata", "humans"),
    ("cluster", "None", "serviceAccounts"),
    ("cluster", "None", "getPods"),
    ("cluster", "RequestResponse", "getClusterRoles"),
    ("cluster", "Request", "clusterRoleEdit,getClusterRoles"),
    ("cluster", "None", "getLogs"),
    ("cluster", "None", "getMetrics"),
    ("cluster", "Metadata", "getMetrics,serviceAccounts,default"),
    ("cluster", "RequestResponse", "getMetrics,getClusterRoles,default"),
    ("cluster", "None", "getPodLogs,getPods"),
    ("nonResource", "Metadata", "default"),
    ("nonResource", "None", "create"),
    ("nonResource", "Metadata", "tims"),
    ("nonResource", "Metadata", "humans"),
    ("nonResource", "None", "serviceAccounts"),
    ("nonResource", "None", "getPods"),
    ("nonResource", "None", "getClusterRoles"),
    ("nonResource", "RequestResponse", "getLogs"),
    ("nonResource", "None", "getMetrics"),
    ("nonResource", "Metadata", "getMetrics,serviceAccounts,default"),
    ("nonResource", "RequestResponse", "getLogs,getClusterRoles,default"),
    ("nonResource", "None", "getPodLogs,getPods"),
    ("subresource", "Request", "getPodLogs,getPods"),
    ("subresource", "Request", "getPodWildcardMatching"),
    ("subresource", "Request", "getPodResourceWildcardMatching"),
    ("subresource", "Request", "getPodSubResourceWildcardMatching"),
    ("Unauthorized", "None", "tims"),
    ("Unauthorized", "Metadata", "tims,default"),
    ("Unauthorized", "None", "humans"),
    ("Unauthorized", "Metadata", "humans,default"),
]
POLICY_STAGES = [(), ("RequestReceived", "ResponseStarted")]


def _upstream_policy(rule_names: str, stages: tuple[str, ...]) -> Policy:
    return Policy(
        rules=tuple(UPSTREAM_RULES[name] for name in rule_names.split(",")), omit_stages=stages
    )


@pytest.mark.parametrize("stages", POLICY_STAGES, ids=["no-policy-stages", "policy-stages"])
@pytest.mark.parametrize(("request_name", "level", "rule_names"), UPSTREAM_LEVELS)
def test_upstream_levels(
    request_name: str, level: str, rule_names: str, stages: tuple[str, ...]
) -> None:
    decision = decide(_upstream_policy(rule_names, stages), UPSTREAM_REQUESTS[request_name])
    assert decision.level == level
    assert decision.omit_stages == set(stages)


UPSTREAM_STAGES = [
    # (request, policy stages, expected level, expected stages, rules)
    ("namespaced", (), "Request", {"RequestReceived"}, "omit RequestReceived,getPods,default"),
    ("namespaced", (), "Request", {"RequestReceived", "ResponseStarted", "ResponseComplete"},
     "only audit panic,getPods,default"),
    ("cluster", (), "Request", {"RequestReceived"}, "omit RequestReceived,getPods,default"),
    ("nonResource", (), "Request", {"RequestReceived"}, "omit RequestReceived,getPods,default"),
    ("namespaced", ("RequestReceived", "ResponseStarted"), "Request",
     {"RequestReceived", "ResponseStarted"}, "omit RequestReceived,getPods,default"),
    ("cluster", ("RequestReceived", "ResponseStarted"), "Request",
     {"RequestReceived", "ResponseStarted", "ResponseComplete"},
     "only audit panic,getPods,default"),
    ("nonResource", ("RequestReceived", "ResponseStarted"), "Metadata",
     {"RequestReceived", "ResponseStarted"}, "default,omit RequestReceived,getPods"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_name", "stages", "level", "expected_stages", "rule_names"), UPSTREAM_STAGES
)
def test_upstream_omit_stages(
    request_name: str,
    stages: tuple[str, ...],
    level: str,
    expected_stages: set[str],
    rule_names: str,
) -> None:
    decision = decide(_upstream_policy(rule_names, stages), UPSTREAM_REQUESTS[request_name])
    assert (decision.level, decision.omit_stages) == (level, expected_stages)
