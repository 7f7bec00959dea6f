"""The policy unit-test file format and runner."""

from __future__ import annotations

import pytest

from kubectl_audit.policy.model import GroupResources, Policy, PolicyRule
from kubectl_audit.policy.testsuite import (
    TestFileError,
    describe_failure,
    load_tests,
    run_tests,
)

POLICY = Policy(
    rules=(
        PolicyRule("Metadata", resources=(GroupResources("", ("secrets",)),)),
        PolicyRule("None", non_resource_urls=("/healthz*",)),
        PolicyRule("RequestResponse", omit_managed_fields=True),
    ),
    omit_stages=("RequestReceived",),
)

GOOD = """\
tests:
- name: secrets
  request: {user: alice, groups: [dev], verb: get, namespace: default, resource: secrets}
  expect: {level: Metadata, omitStages: [RequestReceived], omitManagedFields: false, rule: 0}
- name: health
  request: {verb: get, path: /healthz}
  expect: {level: None, rule: 1}
- name: pods
  request: {user: bob, verb: create, namespace: prod, resource: pods}
  expect: {level: RequestResponse, omitManagedFields: true}
"""


def test_good_file_passes() -> None:
    tests = load_tests(GOOD, source="t.yaml")
    assert [t.name for t in tests] == ["secrets", "health", "pods"]
    assert [t.line for t in tests] == [2, 5, 8]
    results = run_tests(POLICY, tests)
    assert all(r.passed for r in results)
    assert results[0].to_dict() == {
        "name": "secrets",
        "line": 2,
        "passed": True,
        "mismatches": [],
        "expected": {
            "level": "Metadata",
            "omitStages": ["RequestReceived"],
            "omitManagedFields": False,
            "rule": 0,
        },
        "actual": {
            "level": "Metadata",
            "omitStages": ["RequestReceived"],
            "omitManagedFields": False,
            "rule": 0,
        },
    }


def test_each_expect_field_can_fail() -> None:
    text = """\
tests:
- name: wrong everything
  request: {verb: get, resource: secrets}
  expect: {level: None, omitStages: [], omitManagedFields: true, rule: null}
- name: unmatched is rule null
  request: {verb: get, path: /healthz}
  expect: {level: None, rule: null}
"""
    results = run_tests(POLICY, load_tests(text, source="t.yaml"))
    assert results[0].mismatches == ("level", "omitStages", "omitManagedFields", "rule")
    assert describe_failure(results[0]) == (
        "level: expected None, got Metadata; omitStages: expected [], got [RequestReceived]; "
        "omitManagedFields: expected true, got false; rule: expected null, got 0"
    )
    # /healthz matches rules[1] (level None), so `rule: null` is wrong there.
    assert results[1].mismatches == ("rule",)


def test_level_only_failure_names_the_deciding_rule() -> None:
    text = "tests:\n- name: x\n  request: {verb: get, resource: pods}\n  expect: {level: None}\n"
    result = run_tests(POLICY, load_tests(text, source="t.yaml"))[0]
    assert describe_failure(result) == (
        "level: expected None, got RequestResponse; decided by rules[2]"
    )


BAD = [
    ("tests: []\n", "t.yaml:1: `tests` must be a non-empty list"),
    ("- a\n", "t.yaml: a test file is a mapping with a `tests:` list"),
    ("tests: [{name: a, request: {verb: get}, expect: {level: None}}]\nextra: 1\n",
     "t.yaml:2: unknown top-level field 'extra'"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None}\n  expct: {}\n",
     "t.yaml:5: tests[0] \"a\": unknown field 'expct'"),
    ("tests:\n- name: a\n  request: {verb: get, nmespace: x}\n  expect: {level: None}\n",
     "t.yaml:3: tests[0] \"a\": request: unknown field 'nmespace'"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None, rules: 1}\n",
     "t.yaml:4: tests[0] \"a\": expect: unknown field 'rules'"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: metadata}\n",
     "t.yaml:4: tests[0] \"a\": expect.level: 'metadata' is not a level"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None, omitStages: [Start]}\n",
     "tests[0] \"a\": expect.omitStages: must list stages"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None, rule: -1}\n",
     "expect.rule: must be a rule index"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None, rule: true}\n",
     "expect.rule: must be a rule index"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None, omitManagedFields: 1}\n",
     "expect.omitManagedFields: must be true or false"),
    ("tests:\n- name: a\n  request: {verb: get}\n", "tests[0] \"a\": `expect` is required"),
    ("tests:\n- request: {verb: get}\n  expect: {level: None}\n", "tests[0].name: required"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None}\n"
     "- name: a\n  request: {verb: list}\n  expect: {level: None}\n",
     "tests[1]: test name \"a\" is already used by tests[0]"),
    ("tests:\n- name: a\n  request: {verb: get, verb: list}\n  expect: {level: None}\n",
     "key 'verb' given twice"),
    ("tests:\n- name: a\n  request: {verb: [get}\n", "t.yaml"),
    ("tests:\n- name: a\n  request: {verb: get}\n  expect: {level: None}\n---\n"
     "tests:\n- name: b\n  request: {verb: get}\n  expect: {level: None}\n",
     "t.yaml:6: a test file holds one YAML document, found 2"),
    ("", "t.yaml: a test file is a mapping with a `tests:` list"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_malformed_files_name_test_and_field(text: str, fragment: str) -> None:
    with pytest.raises(TestFileError) as caught:
        load_tests(text, source="t.yaml")
    assert fragment in caught.value.message
    assert caught.value.exit_code == 2
