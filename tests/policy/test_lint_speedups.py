"""The fast paths of lint, the loader and validation give exactly the slow paths' results.

Each fast path is a cheap test that rules work out, or a shortcut taken when there is
nothing to report. The oracles here are the straightforward forms they replaced: the
pairwise `covers` loop, the per-value selector loop, the regular expressions over every
path of `Policy.lines`, the careful decoder with its shortcuts switched off, the model
built with the public constructors. They are compared on random policies and on every
policy in shared testdata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubectl_audit.policy import loader
from kubectl_audit.policy.checker import group_resources_match
from kubectl_audit.policy.lint import (
    ENTRY_FIELDS,
    RULE_FIELDS,
    SENSITIVE,
    _dropped_paths,
    _may_see_sensitive,
    _never_matching,
    _no_star_or_case,
    _probe,
    _selecting_entries,
    _short,
    _size,
    _stopped,
    _wrong_group,
    covers,
    dropped_key_catch_alls,
    lint_policy,
    rule_line,
    selector_mistakes,
    shadowed_rules,
)
from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import (
    LEVELS,
    Finding,
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
    assembled,
)
from kubectl_audit.policy.validation import _is_dns1123_subdomain, dns1123_subdomain_errors
from tests.conftest import TESTDATA
from tests.policy.test_engine_properties import JSONISH, POLICY_SHAPED

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TESTDATA_POLICIES = sorted((TESTDATA / "policies").rglob("*.yaml"))

# Small alphabets, so that rules often share values and cover one another; with the
# spellings the selector checks look for (`*`, upper case, final sigma).
USERS = ["alice", "bob", "*", "system:node:*"]
GROUPS = ["dev", "ops", "system:authenticated"]
VERBS = ["get", "list", "create", "update", "deletecollection", "GET", "ΣIGN", "gεt"]
NAMESPACES = ["", "default", "prod", "team-*"]
API_GROUPS = ["", "apps", "authentication.k8s.io", "*", "extensions"]
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
    "deployments",
    "tokenreviews",
    "*/*",
    "Pods",
    "pods/log/*",
    "a/",
]
URL_SPECS = ["*", "/healthz", "/healthz*", "/api*", "/apis*", "/metrics", "/a*"]


def some(values: list[str], min_size: int = 0) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=3).map(tuple)


entries = st.builds(
    GroupResources,
    group=st.sampled_from(API_GROUPS),
    resources=some(RESOURCE_STRINGS),
    resource_names=some(["a", "b"]),
)


@st.composite
def rules(draw: st.DrawFn) -> PolicyRule:
    kind = draw(st.sampled_from(["resource", "url", "plain"]))
    return PolicyRule(
        level=draw(st.sampled_from(LEVELS)),
        users=draw(some(USERS)),
        user_groups=draw(some(GROUPS)),
        verbs=draw(some(VERBS)),
        resources=draw(st.lists(entries, max_size=2).map(tuple)) if kind == "resource" else (),
        namespaces=draw(some(NAMESPACES)) if kind == "resource" else (),
        non_resource_urls=draw(some(URL_SPECS, min_size=1)) if kind == "url" else (),
        line=draw(st.none() | st.integers(1, 500)),
    )


policies = st.lists(rules(), max_size=12).map(lambda found: Policy(rules=tuple(found)))


# -- lint oracles ---------------------------------------------------------------------------


def shadowed_reference(policy: Policy, budget: int) -> list[Finding]:
    """Every earlier rule compared with `covers`, in order; the same budget."""
    left = budget
    findings = []
    seen_size = 0
    for later, rule in enumerate(policy.rules):
        size = _size(rule)
        left -= later * (1 + size) + seen_size
        if left < 0:
            return [*findings, _stopped(policy, later, "unreachable-rule")]
        seen_size += size
        for earlier in range(later):
            if covers(policy.rules[earlier], rule):
                where = rule_line(policy, earlier)
                at = f" (line {where})" if where is not None else ""
                message = (
                    f"rules[{later}]: never matches: rules[{earlier}]{at} already matches all "
                    "its requests; reorder or remove it"
                )
                findings.append(
                    Finding("Lint", message, f"rules[{later}]", rule_line(policy, later))
                )
                break
    return findings


def selector_reference(policy: Policy) -> list[Finding]:
    """Each value of each selector, and each resource string, judged one by one."""
    findings = []
    for index, rule in enumerate(policy.rules):
        messages = []
        for field, values in (
            ("users", rule.users),
            ("userGroups", rule.user_groups),
            ("verbs", rule.verbs),
            ("namespaces", rule.namespaces),
        ):
            for value in values:
                if "*" in value:
                    messages.append(
                        f"{field} entry '{_short(value, 48)}' is literal: `*` is no wildcard there"
                    )
                    break
                if field == "verbs" and value != value.lower():
                    messages.append(f"verb {value!r} never matches: verbs are lower-case")
                    break
        for position, entry in enumerate(rule.resources):
            for resource in entry.resources:
                if reason := _never_matching(resource):
                    messages.append(f"resources[{position}] {resource!r} never matches: {reason}")
                elif (wrong := _wrong_group(entry.group, resource)) is not None:
                    where = f"group {wrong}" if wrong else "the core group"
                    named = f"group {entry.group}" if entry.group else "the core group"
                    messages.append(
                        f"{resource!r} is in {where}, not {named}: resources[{position}] misses it"
                    )
        for message in messages:
            findings.append(
                Finding(
                    "Lint",
                    f"rules[{index}]: {message}",
                    f"rules[{index}]",
                    rule_line(policy, index),
                )
            )
    return findings


def contributes(path: str) -> bool:
    """What dropped_key_catch_alls looks for in a path, asked as it used to be."""
    from kubectl_audit.policy.lint import _ENTRY_PATH, _RULE_PATH

    if (match := _RULE_PATH.match(path)) and match.group(2) not in RULE_FIELDS:
        return True
    return bool((match := _ENTRY_PATH.match(path)) and match.group(3) not in ENTRY_FIELDS)


@SETTINGS
@given(policy=policies, budget=st.sampled_from([0, 5, 40, 300, 10**6]))
def test_shadowed_rules_match_the_pairwise_loop(policy: Policy, budget: int) -> None:
    assert shadowed_rules(policy, budget=budget) == shadowed_reference(policy, budget)


@SETTINGS
@given(policy=policies)
def test_selector_mistakes_match_the_value_by_value_loop(policy: Policy) -> None:
    assert selector_mistakes(policy) == selector_reference(policy)


@SETTINGS
@given(rule=rules())
def test_no_star_or_case_is_never_wrong(rule: PolicyRule) -> None:
    values = rule.users + rule.user_groups + rule.verbs + rule.namespaces
    plain = not any("*" in value for value in values) and all(
        verb == verb.lower() for verb in rule.verbs
    )
    assert _no_star_or_case(rule) == plain


@SETTINGS
@given(verbs=st.lists(st.text(max_size=4), max_size=3).map(tuple))
def test_no_star_or_case_for_any_text(verbs: tuple[str, ...]) -> None:
    plain = not any("*" in verb for verb in verbs) and all(v == v.lower() for v in verbs)
    assert _no_star_or_case(PolicyRule(verbs=verbs)) == plain


@SETTINGS
@given(rule=rules())
def test_sensitive_prefilters_agree_with_asking_every_entry(rule: PolicyRule) -> None:
    for sensitive in SENSITIVE:
        if not rule.is_resource_rule:
            expected = None if rule.non_resource_urls else []
        elif not rule.resources:
            expected = []
        else:
            expected = [
                entry
                for entry in rule.resources
                if group_resources_match(
                    entry,
                    RequestAttributes(
                        verb="",
                        api_group=sensitive.group,
                        resource=sensitive.resource,
                        subresource=sensitive.subresource,
                        name=entry.resource_names[0] if entry.resource_names else "",
                    ),
                )
            ] or None
        assert _selecting_entries(rule, sensitive, _probe(sensitive)) == expected
        if not _may_see_sensitive(rule):
            assert expected is None


PATH_PARTS = st.sampled_from(
    [
        "rules",
        "rules[0]",
        "rules[12]",
        "resources[1]",
        "resources",
        "level",
        "group",
        "resourceNames",
        "verbs[3]",
        "levle",
        "foo]",
        "a\nb",
        "x[",
        "",
        "metadata",
    ]
)
paths = st.lists(PATH_PARTS, min_size=1, max_size=4).map(".".join) | st.text(max_size=20)


@SETTINGS
@given(path=paths)
def test_dropped_paths_keep_every_path_that_names_an_unknown_key(path: str) -> None:
    kept = _dropped_paths(Policy(lines={path: 1}), ())
    assert (path in kept) or not contributes(path)


@pytest.mark.parametrize("parent", ["rules[0]", "rules[3].resources[1]", "rules", "metadata", ""])
def test_dropped_paths_keep_every_key_that_is_unknown_where_it_is(parent: str) -> None:
    for key in [*RULE_FIELDS, *ENTRY_FIELDS, "levle", "foo]", "x[1]", "a\nb"]:
        path = f"{parent}.{key}" if parent else key
        kept = _dropped_paths(Policy(lines={path: 1}), ())
        assert (path in kept) or not contributes(path), path


@SETTINGS
@given(policy=policies, lines=st.dictionaries(paths, st.integers(1, 99), max_size=8))
def test_dropped_key_catch_alls_match_scanning_every_path(
    policy: Policy, lines: dict[str, int]
) -> None:
    with_lines = Policy(rules=policy.rules, lines=lines)
    # The same check, handed every path as a load warning too: those are all scanned.
    every_path = [Finding("UnknownField", "", path) for path in lines]
    assert dropped_key_catch_alls(with_lines) == dropped_key_catch_alls(with_lines, every_path)


# -- the loader's quick path ------------------------------------------------------------------


def careful_load(text: str) -> loader.LoadResult:
    """load_policy with every shortcut off: the full decoder, item by item, always."""
    with pytest.MonkeyPatch.context() as patched:

        def careful(decoder: Any, body: dict[str, Any], lines: Any) -> Policy:
            return loader._policy(decoder.decode(body, loader._POLICY, "", (), ""), lines)

        patched.setattr(loader, "_decoded_policy", careful)
        patched.setattr(loader, "_struct_conforms", lambda *_args: False)
        patched.setattr(loader, "_all_strings", lambda *_args: False)
        return load_policy(text)


def model_reference(data: dict[str, Any]) -> tuple[tuple[PolicyRule, ...], tuple[str, ...], bool]:
    """The model from decoded data, built with the public constructors."""

    def strings(values: list[Any] | None) -> tuple[str, ...]:
        return tuple("" if value is None else value for value in values or ())

    def entry(item: dict[str, Any] | None) -> GroupResources:
        item = item or {}
        return GroupResources(
            item.get("group") or "",
            strings(item.get("resources")),
            strings(item.get("resourceNames")),
        )

    rules = tuple(
        PolicyRule(
            level=(item or {}).get("level") or "",
            users=strings((item or {}).get("users")),
            user_groups=strings((item or {}).get("userGroups")),
            verbs=strings((item or {}).get("verbs")),
            resources=tuple(entry(e) for e in (item or {}).get("resources") or ()),
            namespaces=strings((item or {}).get("namespaces")),
            non_resource_urls=strings((item or {}).get("nonResourceURLs")),
            omit_stages=strings((item or {}).get("omitStages")),
            omit_managed_fields=(item or {}).get("omitManagedFields"),
        )
        for item in data.get("rules") or ()
    )
    return rules, strings(data.get("omitStages")), bool(data.get("omitManagedFields"))


def same_load(text: str) -> None:
    fast = load_policy(text)
    slow = careful_load(text)
    assert (fast.errors, fast.warnings, fast.policy) == (slow.errors, slow.warnings, slow.policy)
    if fast.policy is not None:
        assert dict(fast.policy.lines) == dict(slow.policy.lines)  # type: ignore[union-attr]
        assert [rule.line for rule in fast.policy.rules] == [
            rule.line
            for rule in slow.policy.rules  # type: ignore[union-attr]
        ]


VALUES = st.one_of(
    st.sampled_from(["get", "pods", "", "apps", "Metadata", "Request", "/healthz*", "Bad_Group"]),
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.lists(st.sampled_from(["get", "", "pods", "*"]) | st.none() | st.integers(0, 2), max_size=3),
)
RULE_KEYS = st.sampled_from([*loader._RULE_FIELDS, "level", "Level", "verb", "group", "extra"])
ENTRY_KEYS = st.sampled_from([*loader._ENTRY_FIELDS, "level", "resource"])
rule_data = st.dictionaries(
    RULE_KEYS,
    VALUES | st.lists(st.dictionaries(ENTRY_KEYS, VALUES, max_size=3) | st.none(), max_size=2),
    max_size=5,
)
documents = st.fixed_dictionaries(
    {"apiVersion": st.just("audit.k8s.io/v1"), "kind": st.just("Policy")},
    optional={
        "rules": st.lists(rule_data | st.none() | JSONISH, max_size=5) | JSONISH,
        "omitStages": st.lists(st.sampled_from(["RequestReceived", "Nope"]) | st.none(), max_size=2)
        | JSONISH,
        "omitManagedFields": st.booleans() | JSONISH,
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "name": JSONISH,
                "labels": JSONISH,
                "generation": st.sampled_from([0, 2**63 - 1, 2**63, -(2**63) - 1, 1.5, True]),
                "creationTimestamp": st.sampled_from(["2024-01-02T03:04:05Z", "yesterday"]),
            },
        ),
        "extra": JSONISH,
    },
)


def document_with(**fields: Any) -> dict[str, Any]:
    rules = [{"level": "Metadata", "verbs": ["get", None]}, None]
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **fields}


@SETTINGS
@given(document=documents, as_json=st.booleans())
@example(document=document_with(metadata={"generation": 2**63}), as_json=True)
@example(document=document_with(metadata={"generation": -(2**63)}), as_json=True)
@example(document=document_with(metadata={"creationTimestamp": "today"}), as_json=True)
@example(document=document_with(metadata={"labels": {"a": 1}}), as_json=False)
@example(document=document_with(omitManagedFields="yes"), as_json=True)
@example(document=document_with(omitStages=["Panic", 3]), as_json=True)
def test_quick_load_matches_the_careful_decoder(document: dict[str, Any], as_json: bool) -> None:
    text = json.dumps(document) if as_json else yaml.safe_dump(document, sort_keys=False)
    same_load(text)


@SETTINGS
@given(document=POLICY_SHAPED)
def test_quick_load_matches_the_careful_decoder_on_policy_shapes(document: dict[str, Any]) -> None:
    same_load(json.dumps(document))
    same_load(yaml.safe_dump(document))


@SETTINGS
@given(document=documents)
def test_the_model_matches_the_public_constructors(document: dict[str, Any]) -> None:
    result = load_policy(json.dumps(document))
    if result.policy is not None:
        rules, omit_stages, omit_managed_fields = model_reference(document)
        assert [rule.to_dict() for rule in result.policy.rules] == [r.to_dict() for r in rules]
        assert (
            tuple(PolicyRule(**{**vars(rule), "line": None}) for rule in result.policy.rules)
            == rules
        )
        assert (result.policy.omit_stages, result.policy.omit_managed_fields) == (
            omit_stages,
            omit_managed_fields,
        )


def test_assembled_is_the_constructor() -> None:
    values = {
        "level": "Request",
        "users": ("alice",),
        "user_groups": (),
        "verbs": ("get",),
        "resources": (GroupResources("apps", ("deployments",)),),
        "namespaces": (),
        "non_resource_urls": (),
        "omit_stages": ("RequestReceived",),
        "omit_managed_fields": True,
        "line": 7,
    }
    built = assembled(PolicyRule, values)
    assert built == PolicyRule(**values)
    assert hash(built) == hash(PolicyRule(**values))
    assert repr(built) == repr(PolicyRule(**values))
    with pytest.raises(TypeError):
        assembled(PolicyRule, {**values, "extra": 1})
    with pytest.raises(TypeError):
        assembled(GroupResources, {"group": ""})


@SETTINGS
@given(value=st.text(max_size=12) | st.sampled_from(["apps", "a.b-c", "x" * 254, "A", "-a"]))
def test_dns1123_shortcut_is_the_full_check(value: str) -> None:
    assert _is_dns1123_subdomain(value) == (dns1123_subdomain_errors(value) == [])


# -- every policy in testdata, and a large generated one ---------------------------------------


def webhook_bench_policy(rules: int = 51) -> str:
    """A never-seen policy like bench/webhook_bench.sh makes: teams, users, health URLs."""
    groups = ["apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "", "policy"]
    resources = ["deployments", "jobs", "roles", "ingresses", "pods", "poddisruptionbudgets"]
    lines = ["apiVersion: audit.k8s.io/v1", "kind: Policy", "rules:"]
    for index in range(rules - 1):
        if index % 7 == 0:
            lines += ["- level: None", f'  nonResourceURLs: ["/healthz{index}*", "/version"]']
        elif index % 5 == 0:
            lines += [
                "- level: Metadata",
                f'  users: ["system:serviceaccount:ns{index}:sa"]',
                '  verbs: ["get", "list", "watch"]',
            ]
        else:
            group, resource = groups[index % 6], resources[index % 6]
            lines += [
                f"- level: {'Request' if index % 2 else 'RequestResponse'}",
                '  verbs: ["create", "update", "patch", "delete"]',
                f'  namespaces: ["team-{index}"]',
                "  resources:",
                f'  - group: "{group}"',
                f'    resources: ["{resource}", "{resource}/status"]',
            ]
    lines += [
        # Advice to record: a repeated rule, secrets logged, a verb that never matches.
        "- level: None",
        '  nonResourceURLs: ["/healthz0*"]',
        "- level: RequestResponse",
        '  verbs: ["GET", "create"]',
        "  resources:",
        '  - group: ""',
        '    resources: ["secrets", "deployments"]',
        "- level: Metadata",
    ]
    return "\n".join(lines) + "\n"


def corpus() -> Iterator[tuple[str, str]]:
    for path in TESTDATA_POLICIES:
        yield path.name, path.read_text(encoding="utf-8")
    yield "webhook-bench", webhook_bench_policy()
    yield "webhook-bench-typo", webhook_bench_policy().replace("  verbs:", "  verb:", 1)


CORPUS = dict(corpus())


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_policy_loads_and_lints_as_with_the_slow_paths(name: str) -> None:
    text = CORPUS[name]
    same_load(text)
    result = load_policy(text)
    if result.policy is None:
        return
    policy = result.policy
    assert shadowed_rules(policy) == shadowed_reference(policy, 10**6)
    assert shadowed_rules(policy, budget=500) == shadowed_reference(policy, 500)
    assert selector_mistakes(policy) == selector_reference(policy)
    every_path = [Finding("UnknownField", "", path) for path in policy.lines]
    assert dropped_key_catch_alls(policy, result.warnings) == dropped_key_catch_alls(
        Policy(rules=policy.rules, lines=policy.lines), [*result.warnings, *every_path]
    )


# Recorded from the lint and loader before they had fast paths.
RECORDED = [
    (
        "rules[51]",
        250,
        "rules[51]: logs secrets at RequestResponse (create by any user); "
        "put a Metadata rule first",
    ),
    (
        "rules[50]",
        248,
        "rules[50]: never matches: rules[0] (line 4) already matches all its requests; "
        "reorder or remove it",
    ),
    ("rules[51]", 250, "rules[51]: verb 'GET' never matches: verbs are lower-case"),
    (
        "rules[51]",
        250,
        "rules[51]: 'deployments' is in group apps, not the core group: resources[0] misses it",
    ),
    (
        "omitStages",
        6,
        "rules[1], rules[2] and 42 more keep RequestReceived: each request is logged twice; "
        "omit it in the top-level omitStages",
    ),
]


def test_the_generated_policy_gets_exactly_its_recorded_findings() -> None:
    result = load_policy(webhook_bench_policy())
    assert result.ok and result.warnings == ()
    assert result.policy is not None
    found = [(f.field, f.line, f.message) for f in lint_policy(result.policy)]
    assert found == RECORDED
    typo = load_policy(webhook_bench_policy().replace("  verbs:", "  verb:", 1))
    assert typo.policy is not None
    assert [f.message for f in typo.warnings] == [
        'unknown field "rules[1].verb" (did you mean "verbs"?); kube-apiserver ignores it'
    ]
    linted = lint_policy(typo.policy, load_warnings=typo.warnings)
    assert [(f.field, f.line, f.message) for f in linted] == RECORDED
