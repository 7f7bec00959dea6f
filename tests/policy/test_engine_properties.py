"""Properties: the policy engine never fails with anything but our own errors.

Whatever text, bytes or JSON-ish structure arrives (from a file, stdin or an admission
request), `load_policy` and `check_policy` return a verdict and the YAML reader raises
only `InputError` subclasses.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_audit.errors import InputError
from kubectl_audit.policy.documents import find_policies
from kubectl_audit.policy.loader import LoadResult, load_policy
from kubectl_audit.policy.model import Policy
from kubectl_audit.policy.report import check_policy
from kubectl_audit.policy.validation import aggregate_message
from kubectl_audit.policy.yamlsafe import load_yaml, parse_document, parse_documents
from tests.kubesim import policyreader

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELD_NAMES = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "rules",
        "level",
        "Level",
        "users",
        "userGroups",
        "verbs",
        "resources",
        "group",
        "resourceNames",
        "namespaces",
        "nonResourceURLs",
        "omitStages",
        "omitManagedFields",
        "metadata",
        "name",
        "labels",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["None", "Metadata", "Request", "RequestResponse", "audit.k8s.io/v1", "Policy"]
    ),
    st.sampled_from(["RequestReceived", "Panic", "/healthz*", "*", "apps", "pods/*", "no", "y"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(FIELD_NAMES, st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=30,
)
POLICY_SHAPED = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["audit.k8s.io/v1", "audit.k8s.io/v1beta1", ""])},
    optional={
        "kind": st.sampled_from(["Policy", "policy", "Event"]),
        "rules": st.lists(st.one_of(JSONISH, st.dictionaries(FIELD_NAMES, JSONISH)), max_size=4),
        "omitStages": JSONISH,
        "omitManagedFields": JSONISH,
        "metadata": JSONISH,
    },
)


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump(value: Any) -> str:
    return yaml.dump(value, Dumper=DUMPER, allow_unicode=True)


def assert_verdict(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    if result.policy is not None:
        assert result.errors == ()
        assert isinstance(result.policy, Policy)
        for rule in result.policy.rules:
            assert isinstance(rule.level, str)
            assert all(isinstance(verb, str) for verb in rule.verbs)
            assert all(isinstance(group.group, str) for group in rule.resources)
    else:
        assert result.errors, "a refused policy always says why"
    for finding in (*result.errors, *result.warnings):
        assert finding.message
        assert finding.line is None or finding.line >= 1


@SETTINGS
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    assert_verdict(load_policy(text))


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    assert_verdict(load_policy(data))
    with contextlib.suppress(InputError):  # not UTF-8: a clear, expected refusal
        find_policies(data, source="x")


@SETTINGS
@given(JSONISH)
def test_any_structure_as_yaml(value: Any) -> None:
    text = dump(value)
    assert_verdict(load_policy(text))
    report = check_policy(text, file="f.yaml")
    assert report.valid is (report.policy is not None and not report.errors)


@SETTINGS
@given(POLICY_SHAPED)
def test_policy_shaped_structures_as_yaml_and_json(value: dict[str, Any]) -> None:
    assert_verdict(load_policy(dump(value)))
    assert_verdict(load_policy(json.dumps(value)))
    check_policy(dump(value), file="f.yaml")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    return True


@SETTINGS
@given(JSONISH)
def test_bounded_reader_agrees_with_safe_load(value: Any) -> None:
    text = dump(value)
    expected = yaml.load(text, Loader=LOADER)
    loaded = load_yaml(text)
    if _finite(expected):
        assert loaded == expected
    else:
        assert repr(loaded) == repr(expected)


@SETTINGS
@given(st.text(max_size=300))
def test_yaml_reader_raises_only_input_errors(text: str) -> None:
    for go_yaml in (True, False):
        try:
            parse_document(text, go_yaml=go_yaml)
            parse_documents(text, go_yaml=go_yaml)
        except InputError:
            pass


@SETTINGS
@given(st.lists(st.sampled_from(["- ", "[", "{a: ", "&x ", "*x ", "? ", ": ", "\n  ", "'", "!t "])))
def test_yaml_reader_on_structural_noise(parts: list[str]) -> None:
    with contextlib.suppress(InputError):
        parse_document("".join(parts) * 3, max_depth=20, max_nodes=500)


# --- agreement with the simulator's independent reader ------------------------------------------
# tests/kubesim carries its own small policy reader (it must not share ours, DESIGN.md §5).
# Two independent readings of the spec that agree on which policies load, and on the
# apiserver's exact validation texts, make a bug in either much less likely to hide.

RESOURCES = ["pods", "pods/*", "*/status"]
RULE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "level": st.sampled_from(
            ["None", "Metadata", "Request", "RequestResponse", "metadata", ""]
        ),
        "Level": st.just("None"),
        "verbs": st.lists(st.sampled_from(["get", "list", "watch", "create"]), max_size=2),
        "users": st.lists(st.sampled_from(["admin", "system:kube-proxy", "*"]), max_size=2),
        "namespaces": st.lists(st.sampled_from(["", "kube-system"]), max_size=2),
        "nonResourceURLs": st.lists(
            st.sampled_from(["/healthz*", "*", "/api", "logs", "*x", "/a/*/b", ""]), max_size=3
        ),
        "omitStages": st.lists(st.sampled_from(["RequestReceived", "Panic", "Bogus"]), max_size=2),
        "omitManagedFields": st.booleans(),
        "resources": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "group": st.sampled_from(["", "apps", "*", "Apps", "apps/v1", "x.y"]),
                    "resources": st.lists(
                        st.sampled_from(["pods", "pods/*", "*/status"]), max_size=2
                    ),
                    "resourceNames": st.lists(st.sampled_from(["a", "b"]), max_size=2),
                    "verbs": st.just(["get"]),
                },
            ),
            max_size=3,
        ),
    },
)
NEAR_VALID = st.fixed_dictionaries(
    {"apiVersion": st.sampled_from(["audit.k8s.io/v1", "audit.k8s.io/v1beta1"])},
    optional={
        "kind": st.just("Policy"),
        "rules": st.lists(st.one_of(RULE_FIELDS, st.none()), max_size=4),
        "omitStages": st.lists(st.sampled_from(["ResponseStarted", "Nope"]), max_size=2),
    },
)


@SETTINGS
@given(NEAR_VALID)
def test_verdicts_agree_with_the_simulators_reader(value: dict[str, Any]) -> None:
    text = dump(value)
    mine = load_policy(text)
    try:
        policyreader.parse_policy(text.encode())
        theirs = None
    except policyreader.PolicyLoadError as error:
        theirs = str(error)
    assert (mine.policy is None) == (theirs is not None), (text, mine.errors, theirs)
    if mine.errors and mine.errors[0].type not in ("DecodeError",):
        assert aggregate_message(mine.errors) == theirs
