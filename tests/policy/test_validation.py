"""Validation rules, order, paths and texts of reference/audit-policy-spec.md §4."""

from __future__ import annotations

import pytest

from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import GroupResources, Policy, PolicyRule
from kubectl_audit.policy.validation import (
    aggregate_message,
    dns1123_subdomain_errors,
    go_json,
    go_quote,
    validate_policy,
)

DNS_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LEVELS = '"None", "Metadata", "Request", "RequestResponse"'
STAGES = "RequestReceived,ResponseStarted,ResponseComplete,Panic"


def messages(*rules: PolicyRule, omit_stages: tuple[str, ...] = ()) -> list[str]:
    return [f.message for f in validate_policy(Policy(rules=rules, omit_stages=omit_stages))]


def rule(**fields: object) -> PolicyRule:
    fields.setdefault("level", "None")
    return PolicyRule(**fields)  # type: ignore[arg-type]


# --- levels -----------------------------------------------------------------


@pytest.mark.parametrize("level", ["None", "Metadata", "Request", "RequestResponse"])
def test_the_four_levels_are_valid(level: str) -> None:
    assert messages(rule(level=level)) == []


def test_empty_level_is_required() -> None:
    (finding,) = validate_policy(Policy(rules=(PolicyRule(),)))
    assert (finding.type, finding.field, finding.message) == (
        "Required",
        "rules[0].level",
        "rules[0].level: Required value",
    )


@pytest.mark.parametrize("level", ["metadata", "NONE", "All", "Metadata "])
def test_unknown_level_is_not_supported(level: str) -> None:
    (finding,) = validate_policy(Policy(rules=(rule(level=level),)))
    assert finding.type == "NotSupported"
    assert finding.message == (
        f"rules[0].level: Unsupported value: {go_quote(level)}: supported values: {LEVELS}"
    )


# --- stages -----------------------------------------------------------------


@pytest.mark.parametrize(
    "stage", ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]
)
def test_all_four_stages_are_legal(stage: str) -> None:
    assert messages(rule(omit_stages=(stage, stage)), omit_stages=(stage,)) == []


def test_bad_stages_policy_wide_then_per_rule() -> None:
    assert messages(rule(omit_stages=("", "Panic", "requestreceived")), omit_stages=("Foo",)) == [
        f'omitStages[0]: Invalid value: "Foo": allowed stages are {STAGES}',
        f'rules[0].omitStages[0]: Invalid value: "": allowed stages are {STAGES}',
        f'rules[0].omitStages[2]: Invalid value: "requestreceived": allowed stages are {STAGES}',
    ]


# --- nonResourceURLs -----------------------------------------------------------------

SLASH = "non-resource URL rules must begin with a '/' character"
WILDCARD = "non-resource URL wildcards '*' must be the final character of the rule"


@pytest.mark.parametrize(
    ("url", "problems"),
    [
        ("*", []),
        ("/x*", []),
        ("/*", []),
        ("/healthz", []),
        ("//a b?q=1", []),
        ("", [SLASH]),
        ("logs", [SLASH]),
        ("*logs", [SLASH, WILDCARD]),
        ("**", [SLASH, WILDCARD]),
        ("/a/*/b", [WILDCARD]),
        ("/logs/*/*", [WILDCARD]),
        ("/x**", [WILDCARD]),
    ],
)
def test_non_resource_urls(url: str, problems: list[str]) -> None:
    expected = [
        f"rules[0].nonResourceURLs[0]: Invalid value: {go_quote(url)}: {p}" for p in problems
    ]
    assert messages(rule(non_resource_urls=(url,))) == expected


# --- resources -----------------------------------------------------------------


@pytest.mark.parametrize(
    "group", ["", "*", "apps", "x.y.z", "core", "v1", "rbac.authorization.k8s.io"]
)
def test_legal_groups(group: str) -> None:
    assert messages(rule(resources=(GroupResources(group),))) == []


@pytest.mark.parametrize(
    "group",
    [
        "apps/v1",
        "rbac.authorization.k8s.io/v1beta1",
        "Apps",
        "*.k8s.io",
        "-apps",
        "apps.",
        "my_group",
    ],
)
def test_illegal_groups_have_no_index_in_the_path(group: str) -> None:
    assert messages(rule(resources=(GroupResources(group),))) == [
        f"rules[0].resources.group: Invalid value: {go_quote(group)}: {DNS_MESSAGE}"
    ]


def test_long_group_reports_both_messages_joined_by_a_comma() -> None:
    group = "A" * 254
    assert dns1123_subdomain_errors(group) == ["must be no more than 253 characters", DNS_MESSAGE]
    assert messages(rule(resources=(GroupResources(group),))) == [
        f'rules[0].resources.group: Invalid value: "{group}": must be no more than 253 '
        f"characters,{DNS_MESSAGE}"
    ]
    assert dns1123_subdomain_errors("a" * 253) == []


def test_resource_strings_are_never_validated() -> None:
    resources = ("Pods", "pods/*/*", "*/*", "")
    assert messages(rule(resources=(GroupResources("", resources),))) == []


def test_resource_names_need_resources() -> None:
    entry = GroupResources("", (), ("a", "b"))
    assert messages(rule(resources=(entry,))) == [
        'rules[0].resources.resourceNames: Invalid value: ["a","b"]: '
        "using resourceNames requires at least one resource"
    ]
    assert messages(rule(resources=(GroupResources("", ("pods",), ("a",)),))) == []


def test_identical_texts_are_reported_once_different_ones_twice() -> None:
    same = (GroupResources("Apps"), GroupResources("Apps"))
    assert len(messages(rule(resources=same))) == 1
    different = (GroupResources("Apps"), GroupResources("Batch"))
    found = validate_policy(Policy(rules=(rule(resources=different),)))
    assert [f.field for f in found] == ["rules[0].resources.group"] * 2


# --- mixing resources and URLs -----------------------------------------------------------------

MIX = "rules cannot apply to both regular resources and non-resource URLs"


@pytest.mark.parametrize(
    "other",
    [{"resources": (GroupResources(),)}, {"namespaces": ("",)}, {"namespaces": ("kube-system",)}],
    ids=["resources-with-an-empty-entry", "namespace-empty-string", "namespace"],
)
def test_mixing_resources_and_urls(other: dict[str, object]) -> None:
    assert messages(rule(non_resource_urls=("/x", "/y"), **other)) == [
        f'rules[0].nonResourceURLs: Invalid value: ["/x","/y"]: {MIX}'
    ]


def test_empty_lists_do_not_count_as_mixing() -> None:
    assert messages(rule(non_resource_urls=("/x",), resources=(), namespaces=())) == []


# --- order, aggregation, quoting -----------------------------------------------------------------


def test_errors_come_in_upstream_order() -> None:
    bad = rule(
        level="bogus",
        non_resource_urls=("x",),
        resources=(GroupResources("Bad", (), ("n",)),),
        omit_stages=("Nope",),
    )
    found = validate_policy(Policy(rules=(bad, PolicyRule()), omit_stages=("Zip",)))
    assert [f.field for f in found] == [
        "omitStages[0]",
        "rules[0].level",
        "rules[0].nonResourceURLs[0]",
        "rules[0].resources.group",
        "rules[0].resources.resourceNames",
        "rules[0].omitStages[0]",
        "rules[0].nonResourceURLs",
        "rules[1].level",
    ]
    assert [f.type for f in found][:3] == ["Invalid", "NotSupported", "Invalid"]
    assert aggregate_message(found).startswith('[omitStages[0]: Invalid value: "Zip"')
    assert aggregate_message(found[:1]) == found[0].message


def test_nothing_else_is_validated() -> None:
    odd = rule(
        users=("*", ""),
        user_groups=("system:*",),
        verbs=("GET", "*"),
        namespaces=("Not A Namespace",),
        resources=(GroupResources("", ("pods",)), GroupResources("", ("pods",))),
        omit_managed_fields=True,
    )
    assert messages(odd, odd) == []
    assert validate_policy(Policy()) == ()  # the loader, not validation, rejects 0 rules


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("tab\there\n", '"tab\\there\\n"'),
        ("\x00\x7f", '"\\x00\\x7f"'),
        ("é☃", '"é☃"'),
        ("\u200b", '"\\u200b"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\U000e0001", '"\\U000e0001"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_go_json_escapes_html_like_go() -> None:
    assert go_json(["<a>&", 'q"']) == '["\\u003ca\\u003e\\u0026","q\\""]'


def test_lines_point_at_the_indexed_entry() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\n"
        "rules:\n"
        "- level: None\n"
        "  resources:\n"
        "  - group: ''\n"
        "  - group: Apps\n"  # 6
        "    resourceNames: [x]\n"  # 7
        "  omitStages: [A]\n"  # 8
    )
    result = load_policy(text)
    assert [(f.field, f.line) for f in result.errors] == [
        ("rules[0].resources.group", 6),
        ("rules[0].resources.resourceNames", 7),
        ("rules[0].omitStages[0]", 8),
    ]
