"""The loading steps of reference/audit-policy-spec.md §3 and the tricky items of §7."""

from __future__ import annotations

import pytest

from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import GroupResources

V1 = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
ONE_RULE = "rules:\n- level: Metadata\n"
NOT_REGISTERED = 'in scheme "pkg/audit/scheme.go:30"'
INTERNAL = "unknown group version field audit.k8s.io/__internal, Kind=Policy in policy"


def only_error(text: str | bytes) -> tuple[str, str]:
    result = load_policy(text)
    assert result.policy is None
    assert len(result.errors) == 1, result.errors
    return result.errors[0].type, result.errors[0].message


# --- §3.3 apiVersion and kind -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        pytest.param(ONE_RULE, "GroupVersionError", INTERNAL, id="apiVersion-and-kind-missing"),
        pytest.param(
            "kind: Policy\n" + ONE_RULE, "GroupVersionError", INTERNAL, id="no-apiVersion"
        ),
        pytest.param('apiVersion: ""\n' + ONE_RULE, "GroupVersionError", INTERNAL, id="empty"),
        pytest.param("apiVersion: /\n" + ONE_RULE, "GroupVersionError", INTERNAL, id="slash"),
        pytest.param(
            "apiVersion: audit.k8s.io/\n" + ONE_RULE, "GroupVersionError", INTERNAL, id="no-version"
        ),
        pytest.param(
            "apiVersion: audit.k8s.io/__internal\nkind: Policy\n" + ONE_RULE,
            "GroupVersionError",
            INTERNAL,
            id="explicit-internal",
        ),
        pytest.param("", "GroupVersionError", INTERNAL, id="empty-file"),
        pytest.param("# just a comment\n", "GroupVersionError", INTERNAL, id="comment-only"),
        pytest.param("null\n", "GroupVersionError", INTERNAL, id="null-document"),
        pytest.param("---\n---\n" + V1 + ONE_RULE, "GroupVersionError", INTERNAL, id="empty-first"),
        pytest.param(
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n" + ONE_RULE,
            "DecodeError",
            'failed decoding: no kind "Policy" is registered for version '
            f'"audit.k8s.io/v1beta1" {NOT_REGISTERED}',
            id="v1beta1-removed-in-1.24",
        ),
        pytest.param(
            "apiVersion: audit.k8s.io/v1alpha1\nkind: Policy\n" + ONE_RULE,
            "DecodeError",
            'failed decoding: no kind "Policy" is registered for version '
            f'"audit.k8s.io/v1alpha1" {NOT_REGISTERED}',
            id="v1alpha1-removed-in-1.24",
        ),
        pytest.param(
            "apiVersion: audit.k8s.io\n" + ONE_RULE,
            "DecodeError",
            f'failed decoding: no kind "Policy" is registered for version "audit.k8s.io" '
            f"{NOT_REGISTERED}",
            id="no-slash-is-a-core-version",
        ),
        pytest.param(
            "apiVersion: audit.k8s.io/v1/x\n" + ONE_RULE,
            "DecodeError",
            "failed decoding: unexpected GroupVersion string: audit.k8s.io/v1/x",
            id="two-slashes",
        ),
        pytest.param(
            "apiVersion: Audit.k8s.io/v1\n" + ONE_RULE,
            "DecodeError",
            'failed decoding: no kind "Policy" is registered for version "Audit.k8s.io/v1" '
            f"{NOT_REGISTERED}",
            id="value-is-case-sensitive",
        ),
        pytest.param(
            "apiVersion: audit.k8s.io/v1\nkind: policy\n" + ONE_RULE,
            "DecodeError",
            f'failed decoding: no kind "policy" is registered for version "audit.k8s.io/v1" '
            f"{NOT_REGISTERED}",
            id="kind-is-case-sensitive",
        ),
        pytest.param(
            "apiVersion: audit.k8s.io/v1\nkind: Event\n",
            "DecodeError",
            "failed decoding: converting (v1.Event) to (audit.Policy): unknown conversion",
            id="registered-other-kind",
        ),
        pytest.param(
            "apiVersion: 1\n" + ONE_RULE,
            "DecodeError",
            "failed decoding: couldn't get version/kind; json parse error: json: cannot "
            "unmarshal number into Go struct field .apiVersion of type string",
            id="apiVersion-not-a-string",
        ),
    ],
)
def test_api_version_and_kind(text: str, kind: str, message: str) -> None:
    assert only_error(text) == (kind, message)


def test_missing_kind_is_accepted() -> None:
    result = load_policy("apiVersion: audit.k8s.io/v1\n" + ONE_RULE)
    assert result.ok and result.warnings == ()


def test_mis_cased_apiversion_and_kind_keys_are_recognised_then_ignored() -> None:
    result = load_policy("APIVersion: audit.k8s.io/v1\nKind: Policy\n" + ONE_RULE)
    assert result.ok
    assert [(w.type, w.field, w.line) for w in result.warnings] == [
        ("UnknownField", "APIVersion", 1),
        ("UnknownField", "Kind", 2),
    ]
    assert 'did you mean "apiVersion"' in result.warnings[0].message


# --- §3.2 input formats -----------------------------------------------------------------


def test_json_input() -> None:
    text = ' \n {"apiVersion": "audit.k8s.io/v1", "rules": [{"level": "None"}]}'
    result = load_policy(text)
    assert result.ok
    assert result.policy is not None and result.policy.rules[0].level == "None"


def test_json_duplicate_keys_are_strict_errors_last_wins() -> None:
    text = '{"apiVersion": "audit.k8s.io/v1", "rules": [{"level": "None", "level": "Request"}]}'
    result = load_policy(text)
    assert result.policy is not None and result.policy.rules[0].level == "Request"
    assert [(w.type, w.field) for w in result.warnings] == [("DuplicateField", "rules[0].level")]


def test_json_syntax_error_is_a_decode_error() -> None:
    kind, message = only_error('{"apiVersion": "audit.k8s.io/v1",,}')
    assert kind == "DecodeError"
    assert message.startswith("failed decoding: couldn't get version/kind; json parse error: ")


def test_only_the_first_yaml_document_counts() -> None:
    text = V1 + ONE_RULE + "---\n" + V1 + "rules:\n- level: Bogus\n"
    assert load_policy(text).ok
    # ...and a policy in the second document is never seen
    assert only_error("---\n" + "kind: Namespace\n---\n" + V1 + ONE_RULE)[0] == "DecodeError"


def test_leading_document_marker_is_fine() -> None:
    assert load_policy("---\n" + V1 + ONE_RULE).ok


@pytest.mark.parametrize(
    ("value", "json_type", "field"),
    [
        ("on", "bool", "PolicyRule.rules.level of type v1.Level"),
        ("yes", "bool", "PolicyRule.rules.level of type v1.Level"),
        ("y", "bool", "PolicyRule.rules.level of type v1.Level"),
        ("1", "number", "PolicyRule.rules.level of type v1.Level"),
        ("[Metadata]", "array", "PolicyRule.rules.level of type v1.Level"),
    ],
)
def test_yaml_1_1_scalars_in_string_fields_are_hard_errors(
    value: str, json_type: str, field: str
) -> None:
    kind, message = only_error(V1 + f"rules:\n- level: {value}\n")
    assert kind == "DecodeError"
    assert (
        message
        == f"failed decoding: json: cannot unmarshal {json_type} into Go struct field {field}"
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "namespaces: [no]",
            "bool into Go struct field PolicyRule.rules.namespaces of type string",
        ),
        ("users: [1234]", "number into Go struct field PolicyRule.rules.users of type string"),
        ("verbs: get", "string into Go struct field PolicyRule.rules.verbs of type []string"),
        (
            "omitManagedFields: 'true'",
            "string into Go struct field PolicyRule.rules.omitManagedFields of type bool",
        ),
        (
            "resources: {group: ''}",
            "object into Go struct field PolicyRule.rules.resources of type []v1.GroupResources",
        ),
        (
            "resources: [{group: 1}]",
            "number into Go struct field GroupResources.rules.resources.group of type string",
        ),
        (
            "omitStages: [1]",
            "number into Go struct field PolicyRule.rules.omitStages of type v1.Stage",
        ),
    ],
)
def test_wrong_json_types_are_hard_errors(rule: str, message: str) -> None:
    kind, text = only_error(V1 + f"rules:\n- level: None\n  {rule}\n")
    assert (kind, text) == ("DecodeError", f"failed decoding: json: cannot unmarshal {message}")


def test_type_error_reports_the_first_in_json_key_order() -> None:
    # YAML reaches Go as JSON with sorted keys: `level` before `verbs`.
    text = V1 + "rules:\n- verbs: [1]\n  level: on\n"
    assert "PolicyRule.rules.level" in only_error(text)[1]


def test_type_errors_win_over_strict_errors() -> None:
    result = load_policy(V1 + "rules:\n- Level: None\n  level: on\n")
    assert result.errors[0].type == "DecodeError"
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- level: None\n", "array"),
        ("just a string\n", "string"),
        ("42\n", "number"),
    ],
)
def test_non_object_documents_fail_decoding(text: str, kind: str) -> None:
    error_kind, message = only_error(text)
    assert error_kind == "DecodeError"
    assert message.startswith(
        "failed decoding: couldn't get version/kind; json parse error: json: cannot unmarshal "
        f"{kind} into Go value of type struct {{ APIVersion string"
    )


def test_yaml_syntax_error_names_the_line() -> None:
    result = load_policy(V1 + "rules:\n- level: None\n  verbs: [get\n")
    assert result.errors[0].type == "DecodeError"
    assert result.errors[0].message.startswith(
        "failed decoding: error converting YAML to JSON: yaml: line"
    )
    assert result.errors[0].line is not None


def test_timestamps_stay_strings() -> None:
    result = load_policy(V1 + "rules:\n- level: None\n  users: [2024-01-01]\n")
    assert result.policy is not None and result.policy.rules[0].users == ("2024-01-01",)


# --- §3.4 field-name strictness -----------------------------------------------------------------


def test_mis_cased_level_is_dropped_then_required() -> None:
    result = load_policy(V1 + "rules:\n- Level: Metadata\n")
    assert [e.message for e in result.errors] == ["rules[0].level: Required value"]
    (warning,) = result.warnings
    assert (warning.type, warning.field, warning.line) == ("UnknownField", "rules[0].Level", 4)
    assert 'did you mean "level"' in warning.message


def test_misspelled_selector_widens_a_rule_to_catch_all() -> None:
    result = load_policy(V1 + "rules:\n- level: None\n  nonResourceUrls: [/healthz]\n")
    assert result.policy is not None
    assert result.policy.rules[0].non_resource_urls == ()
    assert 'did you mean "nonResourceURLs"' in result.warnings[0].message


def test_wrong_nesting_is_an_unknown_field() -> None:
    text = V1 + "rules:\n- level: None\n  resources:\n  - group: ''\n    verbs: [get]\n"
    result = load_policy(text)
    assert result.policy is not None
    assert result.policy.rules[0].verbs == ()
    assert result.policy.rules[0].resources == (GroupResources(""),)
    (warning,) = result.warnings
    assert warning.field == "rules[0].resources[0].verbs"
    assert '"verbs" belongs to a rule' in warning.message


def test_rule_fields_at_the_top_level_leave_no_rules() -> None:
    result = load_policy(V1 + "level: Metadata\n")
    assert [e.type for e in result.errors] == ["NoRulesError"]
    assert result.errors[0].message == "loaded illegal policy with 0 rules"
    assert [w.field for w in result.warnings] == ["level"]


def test_duplicate_keys_last_wins_with_a_warning() -> None:
    result = load_policy(V1 + "rules:\n- level: None\n  level: Metadata\n")
    assert result.policy is not None and result.policy.rules[0].level == "Metadata"
    (warning,) = result.warnings
    assert (warning.type, warning.field, warning.line) == ("DuplicateField", "rules[0].level", 5)


@pytest.mark.parametrize(
    "rules",
    ["rules: null\n", "rules: []\n", "", "rules:\n"],
    ids=["null", "empty", "absent", "bare"],
)
def test_zero_rules(rules: str) -> None:
    assert only_error(V1 + rules) == ("NoRulesError", "loaded illegal policy with 0 rules")


def test_zero_rules_only_after_validation() -> None:
    kind, message = only_error(V1 + "omitStages: [Bogus]\n")
    assert kind == "Invalid"
    assert message.startswith('omitStages[0]: Invalid value: "Bogus"')


def test_null_rule_is_an_all_zero_rule() -> None:
    assert only_error(V1 + "rules:\n- null\n") == ("Required", "rules[0].level: Required value")


def test_null_values_leave_zero_values() -> None:
    text = V1 + "rules:\n- level: Metadata\n  users: null\n  omitManagedFields: ~\n"
    result = load_policy(text)
    assert result.policy is not None
    assert result.policy.rules[0].omit_managed_fields is None
    assert only_error(V1 + "rules:\n- level: null\n")[1] == "rules[0].level: Required value"


def test_metadata_is_decoded_and_typed() -> None:
    assert load_policy(V1 + "metadata:\n  name: x\n  labels: {a: b}\n" + ONE_RULE).ok
    assert only_error(V1 + "metadata:\n  labels: {a: 1}\n" + ONE_RULE)[1] == (
        "failed decoding: json: cannot unmarshal number into Go struct field "
        "ObjectMeta.metadata.labels of type string"
    )


# --- the model that comes out -----------------------------------------------------------------


def test_policy_fields_and_lines() -> None:
    text = (
        V1
        + "omitStages: [RequestReceived]\n"  # 3
        + "omitManagedFields: true\n"  # 4
        + "rules:\n"  # 5
        + "- level: None\n"  # 6
        + "  userGroups: [system:nodes]\n"
        + "  omitManagedFields: false\n"
        + "- level: RequestResponse\n"  # 9
        + "  resources:\n"
        + "  - group: apps\n"
        + "    resources: [deployments]\n"
        + "    resourceNames: [web]\n"
        + "  namespaces: ['']\n"
    )
    result = load_policy(text)
    policy = result.policy
    assert policy is not None
    assert policy.omit_stages == ("RequestReceived",)
    assert policy.omit_managed_fields is True
    assert [rule.line for rule in policy.rules] == [6, 9]
    assert policy.rules[0].omit_managed_fields is False
    assert policy.rules[1].resources == (GroupResources("apps", ("deployments",), ("web",)),)
    assert policy.rules[1].namespaces == ("",)
    assert policy.line_of("rules[1].resources[0].resourceNames") == 13


@pytest.mark.parametrize("data", [b"\xff\xfe\x00", "a: \udcff"], ids=["bytes", "surrogate"])
def test_undecodable_text_is_a_decode_error(data: bytes | str) -> None:
    kind, message = only_error(data)
    assert kind == "DecodeError"
    assert "not valid UTF-8" in message


def test_oversize_input_is_refused_not_parsed() -> None:
    result = load_policy(V1 + ONE_RULE + "#" * 2000, max_bytes=1000)
    assert result.errors[0].type == "DecodeError"
    assert "over the limit of 1000 bytes" in result.errors[0].message


def test_alias_bomb_is_a_decode_error() -> None:
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    kind, message = only_error("\n".join(lines) + "\n")
    assert kind == "DecodeError"
    assert "expands to more than" in message
