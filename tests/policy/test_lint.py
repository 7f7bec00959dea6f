"""Lint: each check on hand-made policies, then on the real policies in shared testdata."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_audit.policy.lint import (
    covers,
    dropped_key_catch_alls,
    is_catch_all,
    lint_policy,
    missing_catch_all,
    request_received_kept,
    selector_mistakes,
    sensitive_exposure,
    shadowed_rules,
)
from kubectl_audit.policy.model import Finding, GroupResources, Policy, PolicyRule
from tests.conftest import TESTDATA

POLICIES = TESTDATA / "policies"
RR = ("RequestReceived",)


def gr(group: str = "", *resources: str, names: tuple[str, ...] = ()) -> GroupResources:
    return GroupResources(group, resources, names)


def rule(level: str = "Metadata", **selectors: object) -> PolicyRule:
    return PolicyRule(level=level, **selectors)  # type: ignore[arg-type]


def policy(*rules: PolicyRule, omit: tuple[str, ...] = RR) -> Policy:
    return Policy(rules=rules, omit_stages=omit)


def messages(findings: tuple[Finding, ...] | list[Finding]) -> list[str]:
    return [finding.message for finding in findings]


# -- sensitive bodies -------------------------------------------------------------------


def test_secrets_at_request_by_catch_all_are_flagged() -> None:
    findings = sensitive_exposure(policy(rule("Request")))
    assert {f.field for f in findings} == {"rules[0]"}
    text = " ".join(messages(findings))
    assert "secrets at Request (create by any user)" in text
    assert "configmaps at Request" in text
    assert "tokenreviews at Request" in text
    # A TokenRequest's request body holds no token: only RequestResponse exposes it.
    assert "serviceaccounts/token" not in text


def test_request_response_exposes_reads_and_tokens() -> None:
    text = " ".join(messages(sensitive_exposure(policy(rule("RequestResponse")))))
    assert "secrets at RequestResponse (get by any user)" in text
    assert "serviceaccounts/token at RequestResponse (create by any user)" in text


def test_metadata_rule_first_protects() -> None:
    sensitive_first = policy(
        rule(
            "Metadata",
            resources=(
                gr("", "secrets", "configmaps", "serviceaccounts/token"),
                gr("authentication.k8s.io", "tokenreviews"),
            ),
        ),
        rule("RequestResponse"),
    )
    assert sensitive_exposure(sensitive_first) == []


def test_order_matters_first_match_wins() -> None:
    late = policy(rule("RequestResponse"), rule("Metadata", resources=(gr("", "secrets"),)))
    assert any("secrets" in m for m in messages(sensitive_exposure(late)))


def test_the_exposing_rule_is_named_not_the_last() -> None:
    exposing = policy(
        rule("None", resources=(gr("", "events"),)),
        rule("Request", verbs=("create",), namespaces=("prod",)),
        rule("Metadata"),
    )
    findings = sensitive_exposure(exposing)
    assert {f.field for f in findings} == {"rules[1]"}
    assert all(f.type == "Lint" for f in findings)


def test_narrow_user_rule_is_found_through_its_user() -> None:
    narrow = policy(rule("RequestResponse", users=("deployer",)), rule("Metadata"))
    assert any("(get by user deployer)" in m for m in messages(sensitive_exposure(narrow)))


def test_group_rule_is_found_through_its_group() -> None:
    narrow = policy(
        rule("Request", user_groups=("system:serviceaccounts",), resources=(gr("", "secrets"),))
    )
    assert any("by group system:serviceacc" in m for m in messages(sensitive_exposure(narrow)))


def test_resource_names_are_probed() -> None:
    named = policy(rule("RequestResponse", resources=(gr("", "secrets", names=("tls",)),)))
    assert messages(sensitive_exposure(named)) == [
        "rules[0]: logs secrets at RequestResponse (get by any user); put a Metadata rule first"
    ]


def test_deletecollection_at_request_exposes_nothing() -> None:
    # GKE's namespace-controller rule: the body of a deletecollection is DeleteOptions.
    cleanup = policy(rule("Request", verbs=("deletecollection",)), rule("Metadata"))
    assert sensitive_exposure(cleanup) == []


def test_non_resource_rules_never_expose() -> None:
    assert sensitive_exposure(policy(rule("RequestResponse", non_resource_urls=("*",)))) == []


def test_other_group_rules_do_not_expose() -> None:
    apps = policy(rule("RequestResponse", resources=(gr("apps"),)))
    assert sensitive_exposure(apps) == []
    star = policy(rule("RequestResponse", resources=(gr("*", "secrets"),)))
    assert "secrets" in " ".join(messages(sensitive_exposure(star)))


# -- covers / shadowing -----------------------------------------------------------------

COVERS = [
    ("catch-all covers all", rule(), rule(verbs=("get",), resources=(gr("", "pods"),)), True),
    ("narrow does not cover catch-all", rule(verbs=("get",)), rule(), False),
    ("users subset", rule(users=("a", "b")), rule(users=("a",)), True),
    ("users: no users not covered", rule(users=("a",)), rule(), False),
    ("groups subset", rule(user_groups=("g",)), rule(user_groups=("g",), users=("u",)), True),
    ("groups: user without groups", rule(user_groups=("g",)), rule(users=("u",)), False),
    ("verbs subset", rule(verbs=("get", "list")), rule(verbs=("get",)), True),
    ("verbs superset", rule(verbs=("get",)), rule(verbs=("get", "list")), False),
    ("namespaces", rule(namespaces=("a", "b")), rule(namespaces=("a",)), True),
    ("namespace vs all", rule(namespaces=("a",)), rule(resources=(gr("", "pods"),)), False),
    ("group-only covers resource", rule(resources=(gr(""),)), rule(resources=(gr("", "pods"),)),
     True),
    ("resource does not cover group", rule(resources=(gr("", "pods"),)),
     rule(resources=(gr(""),)), False),
    ("star covers sub", rule(resources=(gr("", "*"),)), rule(resources=(gr("", "pods/log"),)),
     True),
    ("pods/* covers pods", rule(resources=(gr("", "pods/*"),)), rule(resources=(gr("", "pods"),)),
     True),
    ("pods/* covers pods/log", rule(resources=(gr("", "pods/*"),)),
     rule(resources=(gr("", "pods/log"),)), True),
    ("pods does not cover pods/log", rule(resources=(gr("", "pods"),)),
     rule(resources=(gr("", "pods/log"),)), False),
    ("*/log covers pods/log", rule(resources=(gr("", "*/log"),)),
     rule(resources=(gr("", "pods/log"),)), True),
    ("*/log not pods", rule(resources=(gr("", "*/log"),)), rule(resources=(gr("", "pods"),)),
     False),
    ("group star covers apps", rule(resources=(gr("*", "deployments"),)),
     rule(resources=(gr("apps", "deployments"),)), True),
    ("apps does not cover star", rule(resources=(gr("apps", "deployments"),)),
     rule(resources=(gr("*", "deployments"),)), False),
    ("names subset", rule(resources=(gr("", "secrets", names=("a", "b")),)),
     rule(resources=(gr("", "secrets", names=("a",)),)), True),
    ("names vs any name", rule(resources=(gr("", "secrets", names=("a",)),)),
     rule(resources=(gr("", "secrets"),)), False),
    ("entries split over outer entries", rule(resources=(gr("", "pods"), gr("apps"))),
     rule(resources=(gr("", "pods"), gr("apps", "deployments"))), True),
    ("namespace-only inner needs star group",
     rule(resources=(gr("*"),)), rule(namespaces=("a",)), True),
    ("resource rule never covers url rule", rule(resources=(gr("*"),)),
     rule(non_resource_urls=("/healthz",)), False),
    ("url star covers url", rule(non_resource_urls=("*",)), rule(non_resource_urls=("/x*",)),
     True),
    ("url prefix covers longer prefix", rule(non_resource_urls=("/api*",)),
     rule(non_resource_urls=("/apis/*", "/api")), True),
    ("url prefix vs shorter", rule(non_resource_urls=("/apis*",)),
     rule(non_resource_urls=("/api*",)), False),
    ("url rule never covers catch-all", rule(non_resource_urls=("*",)), rule(), False),
    ("url exact", rule(non_resource_urls=("/a",)), rule(non_resource_urls=("/a/b",)), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("outer", "inner", "expected"), [c[1:] for c in COVERS], ids=[c[0] for c in COVERS]
)
def test_covers(outer: PolicyRule, inner: PolicyRule, expected: bool) -> None:
    assert covers(outer, inner) is expected


def test_shadowed_rule_names_both_rules_and_lines() -> None:
    shadowing = Policy(
        rules=(
            PolicyRule("None", resources=(gr(""),), line=4),
            PolicyRule("Metadata", resources=(gr("", "secrets"),), line=7),
            PolicyRule("Metadata", line=11),
        ),
        omit_stages=RR,
    )
    findings = shadowed_rules(shadowing)
    assert len(findings) == 1
    assert findings[0].field == "rules[1]"
    assert findings[0].line == 7
    assert "rules[0] (line 4) already matches all its requests" in findings[0].message


def test_partial_overlap_is_not_shadowing() -> None:
    overlap = policy(
        rule("None", verbs=("get",), resources=(gr("", "pods"),)),
        rule("Metadata", resources=(gr("", "pods"),)),
        rule("Metadata"),
    )
    assert shadowed_rules(overlap) == []


# -- catch-alls and stages ----------------------------------------------------------------


def test_is_catch_all() -> None:
    assert is_catch_all(rule("None", omit_stages=RR))
    assert not is_catch_all(rule(non_resource_urls=("*",)))


def test_missing_catch_all() -> None:
    findings = missing_catch_all(policy(rule(verbs=("get",))))
    assert messages(findings) == [
        "rules[0]: no catch-all rule at the end: requests no rule matches are not logged at "
        "all; end with `- level: Metadata`"
    ]
    assert missing_catch_all(policy(rule(verbs=("get",)), rule("None"))) == []


def test_dropped_key_made_a_catch_all() -> None:
    loader_warnings = (
        Finding("UnknownField", 'unknown field "nonResourceUrls"', "rules[1].nonResourceUrls", 6),
        Finding("UnknownField", 'unknown field "Verbs"', "rules[0].Verbs", 3),
        Finding("UnknownField", 'unknown field "extra"', "extra", 1),
    )
    dropped = policy(rule("Metadata", users=("a",)), rule("None"), rule("Metadata"))
    findings = dropped_key_catch_alls(dropped, loader_warnings)
    assert [(f.field, f.message) for f in findings] == [
        (
            "rules[1]",
            "rules[1]: matches every request because unknown field 'nonResourceUrls' was "
            "dropped; fix its spelling",
        )
    ]
    assert dropped_key_catch_alls(dropped, ()) == []


def test_request_received_policy_wide_or_per_rule() -> None:
    assert request_received_kept(policy(rule())) == []
    per_rule = policy(rule("Metadata", omit_stages=RR), rule("None"), omit=())
    assert request_received_kept(per_rule) == []
    kept = policy(*(rule("Metadata", verbs=(v,)) for v in "abcde"), rule("None"), omit=())
    assert messages(request_received_kept(kept)) == [
        "rules[0], rules[1] and 3 more keep RequestReceived: each request is logged twice; "
        "omit it in the top-level omitStages"
    ]


def test_clean_policy_has_no_findings() -> None:
    clean = policy(rule("Metadata", resources=(gr("", "secrets", "configmaps"),)), rule("Request"))
    findings = lint_policy(clean)
    # A catch-all at Request still exposes tokenreviews; everything else is clean.
    assert [f.message.split(" at ")[0] for f in findings] == ["rules[1]: logs tokenreviews"]


def test_messages_are_one_short_line() -> None:
    noisy = policy(
        rule("RequestResponse", user_groups=("system:serviceaccounts:some-long-namespace",)),
        rule("Request", verbs=("get",)),
        rule("Request", verbs=("get",)),
        omit=(),
    )
    for finding in lint_policy(noisy):
        assert "\n" not in finding.message
        assert len(finding.message) <= 120, finding.message


# -- real policies ----------------------------------------------------------------------


def _lint_file(path: Path) -> tuple[Finding, ...]:
    from kubectl_audit.policy.loader import load_policy

    result = load_policy(path.read_bytes())
    assert result.policy is not None, result.errors
    return lint_policy(result.policy, load_warnings=result.warnings)


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("falco-k8saudit-audit-policy.yaml", {"rules[6]": "configmaps", "rules[7]": "configmaps"}),
        ("kubernetes-docs-example-audit-policy.yaml", {"rules[5]": "configmaps"}),
        ("aks-engine-audit-policy.rendered-v1.yaml", {"rules[5]": "secrets"}),
        ("khi-docs-kind-audit-policy.yaml", {"rules[1]": "tokenreviews"}),
    ],
)
def test_real_policies_exposing_sensitive_bodies(name: str, flagged: dict[str, str]) -> None:
    findings = _lint_file(POLICIES / name)
    for field, label in flagged.items():
        assert any(f.field == field and f"logs {label} at" in f.message for f in findings), (
            field,
            messages(findings),
        )


@pytest.mark.parametrize(
    "name",
    [
        "gke-gce-configure-helper-audit-policy.yaml",
        "kubespray-default-audit-policy.rendered.yaml",
        "openshift/openshift-default-profile.yaml",
    ],
)
def test_real_policies_with_sensitive_data_at_metadata_first(name: str) -> None:
    findings = _lint_file(POLICIES / name)
    assert not [m for m in messages(findings) if ": logs " in m]


def test_gke_policy_is_clean() -> None:
    assert _lint_file(POLICIES / "gke-gce-configure-helper-audit-policy.yaml") == ()


def test_real_findings_carry_lines() -> None:
    findings = _lint_file(POLICIES / "falco-k8saudit-audit-policy.yaml")
    assert findings
    assert all(finding.line is not None and finding.line > 1 for finding in findings)


def test_audit2rbac_policy_has_no_catch_all() -> None:
    findings = _lint_file(POLICIES / "audit2rbac-demo-policy.yaml")
    assert any("no catch-all" in m for m in messages(findings))


def test_misspelled_selector_found_through_the_loaders_line_map() -> None:
    from kubectl_audit.policy.loader import load_policy

    result = load_policy(
        b"apiVersion: audit.k8s.io/v1\n"
        b"kind: Policy\n"
        b"omitStages: [RequestReceived]\n"
        b"rules:\n"
        b"- level: None\n"
        b"  nonResourceUrls: [/healthz*]\n"
        b"- level: Metadata\n"
    )
    assert result.policy is not None
    # Without the loader's warnings: Policy.lines still knows the dropped key.
    findings = [f for f in lint_policy(result.policy) if "unknown field" in f.message]
    assert [(f.field, f.line) for f in findings] == [("rules[0]", 6)]  # the key's line
    assert "'nonResourceUrls' was dropped" in findings[0].message
    # The catch-all at None now hides the last rule too.
    assert any(
        f.field == "rules[1]" and "never matches" in f.message
        for f in lint_policy(result.policy, load_warnings=result.warnings)
    )


def test_dropped_key_widened_a_resources_entry_in_a_real_profile() -> None:
    # OpenShift's AllRequestBodies profile spells `resource:` in its last entry, so the
    # entry (meant to keep two kinds at Metadata) covers the whole group.
    findings = _lint_file(POLICIES / "openshift" / "openshift-allrequestbodies-profile.yaml")
    widened = [f for f in findings if "was dropped" in f.message]
    assert [(f.field, f.line, f.message) for f in widened] == [
        (
            "rules[2]",
            38,
            "rules[2]: resources[4] matches all of group machineconfiguration.openshift.io: "
            "unknown field 'resource' was dropped",
        )
    ]


SELECTOR_MISTAKES = [
    (rule(users=("system:node:*",)),
     "users entry 'system:node:*' is literal: `*` is no wildcard there"),
    (rule(user_groups=("a", "ops-*")),
     "userGroups entry 'ops-*' is literal: `*` is no wildcard there"),
    (rule(verbs=("*",)),
     "verbs entry '*' is literal: `*` is no wildcard there"),
    (rule(verbs=("GET",)),
     "verb 'GET' never matches: verbs are lower-case"),
    (rule(namespaces=("kube-*",)),
     "namespaces entry 'kube-*' is literal: `*` is no wildcard there"),
    (rule(resources=(gr("", "*/*"),)),
     "resources[0] '*/*' never matches: no request has that shape"),
    (rule(resources=(gr("", "pods/log/*"),)),
     "resources[0] 'pods/log/*' never matches: no request has that shape"),
    (rule(resources=(gr("", "pods/"),)),
     "resources[0] 'pods/' never matches: no request has that shape"),
    (rule(resources=(gr("apps", "Deployments"),)),
     "resources[0] 'Deployments' never matches: resource names are lower-case"),
    (rule(resources=(gr(""), gr("", "deployments/scale"))),
     "'deployments/scale' is in group apps, not the core group: resources[1] misses it"),
    (rule(resources=(gr("apps", "pods"),)),
     "'pods' is in the core group, not group apps: resources[0] misses it"),
]  # fmt: skip


@pytest.mark.parametrize(("the_rule", "message"), SELECTOR_MISTAKES)
def test_selector_mistakes(the_rule: PolicyRule, message: str) -> None:
    assert messages(selector_mistakes(policy(the_rule))) == [f"rules[0]: {message}"]


@pytest.mark.parametrize(
    "fine",
    [
        rule(resources=(gr("", "*", "pods/*", "*/log", "pods/log", "serviceaccounts/token"),)),
        rule(resources=(gr("extensions", "deployments"), gr("metrics.k8s.io", "pods"))),
        rule(resources=(gr("example.com", "deployments"), gr("*", "deployments"))),
        rule(resources=(gr("", "events"), gr("events.k8s.io", "events"))),
        rule(non_resource_urls=("/healthz*",), users=("system:anonymous",)),
    ],
)
def test_selectors_that_mean_what_they_say(fine: PolicyRule) -> None:
    assert selector_mistakes(policy(fine)) == []


def test_falco_lists_deployments_in_the_core_group() -> None:
    findings = _lint_file(POLICIES / "falco-k8saudit-audit-policy.yaml")
    assert [(f.line, f.message) for f in findings if " is in " in f.message] == [
        (8, "rules[0]: 'deployments' is in group apps, not the core group: resources[0] misses it")
    ]


def test_osd_policy_globs_are_literal() -> None:
    # The OSD log-forwarder policy uses its own glob dialect; read by kube-apiserver (with
    # the apiVersion/kind it lacks), every `*` there is a literal character.
    from kubectl_audit.policy.loader import load_policy

    text = (POLICIES / "openshift-logging-osd-example-policy-nonstandard.yaml").read_bytes()
    result = load_policy(b"apiVersion: audit.k8s.io/v1\nkind: Policy\n" + text)
    assert result.policy is not None
    literal = [f for f in lint_policy(result.policy) if "is literal" in f.message]
    assert {f.field for f in literal} == {
        "rules[2]", "rules[6]", "rules[7]", "rules[8]", "rules[9]", "rules[13]"
    }  # fmt: skip
    assert "rules[9]: users entry 'system:node:*' is literal" in " ".join(messages(literal))


def test_huge_policies_are_linted_within_a_budget() -> None:
    # 3,000 rules that each name many users: the checks stop and say where, instead of
    # spending minutes (the webhook lints every policy ConfigMap it admits).
    many = Policy(
        rules=tuple(
            PolicyRule(
                "Request",
                users=tuple(f"user-{i}-{j}" for j in range(20)),
                namespaces=(f"ns-{i}",),
                resources=(gr("", "secrets"),),
            )
            for i in range(3000)
        )
    )
    stopped = [f.message for f in lint_policy(many) if "stopped" in f.message]
    assert len(stopped) == 2
    assert stopped[0].startswith("the sensitive-data check stopped at rules[")
    assert stopped[1].startswith("the unreachable-rule check stopped at rules[")
    # A realistic 306-rule policy (GKE's, 18 times over) is checked in full.
    from kubectl_audit.policy.loader import load_policy

    gke = load_policy((POLICIES / "gke-gce-configure-helper-audit-policy.yaml").read_bytes())
    assert gke.policy is not None
    findings = lint_policy(Policy(rules=gke.policy.rules * 18))
    assert not [f for f in findings if "stopped" in f.message]
    assert sum("never matches" in f.message for f in findings) == 17 * 17
