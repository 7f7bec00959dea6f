"""Policy unit tests: "this request gets this level", checked in CI by `kubectl audit test`.

A test file is YAML:

    tests:
    - name: secrets are never logged with bodies
      request: {user: alice, groups: [dev], verb: get, namespace: default,
                resource: secrets, name: db-password}
      expect: {level: Metadata, omitStages: [RequestReceived], omitManagedFields: false,
               rule: 0}

`request` fields are those of `attributes.REQUEST_FIELDS`; in `expect` only `level` is
required, the others are compared when given (`omitStages` as a set, `rule` = index of the
first matching rule or null for "no rule matched"). Unknown or repeated keys anywhere are
errors naming the test and the field, so a typo can never make a test pass silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_audit.errors import InputError
from kubectl_audit.policy.attributes import from_test_request
from kubectl_audit.policy.checker import PolicyChecker
from kubectl_audit.policy.model import (
    LEVELS,
    STAGES,
    Decision,
    Policy,
    RequestAttributes,
)
from kubectl_audit.policy.yamlsafe import ParsedDocument, parse_documents

TEST_FIELDS = ("name", "request", "expect")
EXPECT_FIELDS = ("level", "omitStages", "omitManagedFields", "rule")


class TestFileError(InputError):
    """A test file is unreadable or malformed (exit 2): names file, line, test and field."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class Expectation:
    """What a test expects; None means "not checked" except for `rule`, see `checks_rule`."""

    level: str
    omit_stages: frozenset[str] | None = None
    omit_managed_fields: bool | None = None
    checks_rule: bool = False
    rule: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level}
        if self.omit_stages is not None:
            out["omitStages"] = sorted(self.omit_stages, key=STAGES.index)
        if self.omit_managed_fields is not None:
            out["omitManagedFields"] = self.omit_managed_fields
        if self.checks_rule:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True)
class PolicyTest:
    __test__ = False

    name: str
    request: RequestAttributes
    expect: Expectation
    line: int | None = None


@dataclass(frozen=True)
class TestResult:
    __test__ = False

    test: PolicyTest
    decision: Decision
    mismatches: tuple[str, ...]  # expect fields that differ, in EXPECT_FIELDS order

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.test.name,
            "line": self.test.line,
            "passed": self.passed,
            "mismatches": list(self.mismatches),
            "expected": self.test.expect.to_dict(),
            "actual": self.decision.to_dict(),
        }


def load_tests(data: bytes | str, *, source: str) -> tuple[PolicyTest, ...]:
    """Parse a test file; TestFileError (`source:line: tests[i] "name": field: problem`)."""
    try:
        documents = parse_documents(data, source=source, go_yaml=False)
    except InputError as error:
        raise TestFileError(error.message, hint=error.hint) from None
    if len(documents) > 1:
        # Silently running only the first document would let the others' tests never run.
        raise TestFileError(
            f"{source}:{documents[1].start_line}: a test file holds one YAML document, "
            f"found {len(documents)}",
            hint="put every test in the one `tests:` list",
        )
    document = documents[0] if documents else ParsedDocument(None)
    lines = document.lines

    def fail(path: str, message: str, hint: str | None = None) -> TestFileError:
        line = _line_of(lines, path)
        where = f"{source}:{line}" if line is not None else source
        return TestFileError(f"{where}: {message}", hint=hint)

    if document.duplicates:
        dup = document.duplicates[0]
        raise fail(
            dup.path,
            f"{dup.path}: key {dup.key!r} given twice (lines {dup.first_line} and {dup.line})",
        )
    root = document.data
    if not isinstance(root, Mapping) or "tests" not in root:
        raise fail("", "a test file is a mapping with a `tests:` list", hint=_FORMAT_HINT)
    extra = [key for key in root if key != "tests"]
    if extra:
        raise fail(str(extra[0]), f"unknown top-level field {extra[0]!r}", hint=_FORMAT_HINT)
    items = root["tests"]
    if not isinstance(items, list) or not items:
        raise fail("tests", "`tests` must be a non-empty list", hint=_FORMAT_HINT)
    tests: list[PolicyTest] = []
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"tests[{index}]"
        test = _load_test(item, path, fail, _line_of(lines, path))
        if test.name in names:
            raise fail(
                path,
                f'{path}: test name "{test.name}" is already used by tests[{names[test.name]}]',
            )
        names[test.name] = index
        tests.append(test)
    return tuple(tests)


_FORMAT_HINT = "see `kubectl audit test --help` for the file format"


def _line_of(lines: Mapping[str, int], path: str) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


_Fail = Callable[..., TestFileError]


def _load_test(item: Any, path: str, fail: _Fail, line: int | None) -> PolicyTest:
    if not isinstance(item, Mapping):
        raise fail(path, f"{path}: each test is a mapping with name, request and expect")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"{path}.name", f"{path}.name: required, a non-empty string")
    label = f'{path} "{name}"'
    for key in item:
        if key not in TEST_FIELDS:
            raise fail(
                f"{path}.{key}",
                f"{label}: unknown field {key!r}",
                hint="a test has: " + ", ".join(TEST_FIELDS),
            )
    for key in ("request", "expect"):
        if key not in item:
            raise fail(path, f"{label}: `{key}` is required")
    try:
        request = from_test_request(item["request"], where="request")
    except InputError as error:
        field = error.message.partition(":")[0]
        raise fail(f"{path}.{field}", f"{label}: {error.message}", hint=error.hint) from None
    expect = _load_expect(item["expect"], f"{path}.expect", label, fail)
    return PolicyTest(name, request, expect, line)


def _load_expect(data: Any, path: str, label: str, fail: _Fail) -> Expectation:
    if not isinstance(data, Mapping):
        raise fail(path, f"{label}: expect: must be a mapping")
    for key in data:
        if key not in EXPECT_FIELDS:
            raise fail(
                f"{path}.{key}",
                f"{label}: expect: unknown field {key!r}",
                hint="expect has: " + ", ".join(EXPECT_FIELDS),
            )
    level = data.get("level")
    if level not in LEVELS:
        raise fail(
            f"{path}.level",
            f"{label}: expect.level: {level!r} is not a level",
            hint="levels: " + ", ".join(LEVELS),
        )
    stages: frozenset[str] | None = None
    if "omitStages" in data:
        raw = data["omitStages"]
        if raw is None:
            raw = []
        if not isinstance(raw, list) or any(stage not in STAGES for stage in raw):
            raise fail(
                f"{path}.omitStages",
                f"{label}: expect.omitStages: must list stages from {', '.join(STAGES)}",
            )
        stages = frozenset(raw)
    managed = data.get("omitManagedFields")
    if managed is not None and not isinstance(managed, bool):
        raise fail(
            f"{path}.omitManagedFields", f"{label}: expect.omitManagedFields: must be true or false"
        )
    rule = data.get("rule")
    if rule is not None and (isinstance(rule, bool) or not isinstance(rule, int) or rule < 0):
        raise fail(
            f"{path}.rule",
            f"{label}: expect.rule: must be a rule index (0, 1, ...) or null for no matching rule",
        )
    return Expectation(level, stages, managed, "rule" in data, rule)


def run_test(checker: PolicyChecker, test: PolicyTest) -> TestResult:
    decision = checker.decide(test.request)
    expect = test.expect
    mismatches = []
    if decision.level != expect.level:
        mismatches.append("level")
    if expect.omit_stages is not None and decision.omit_stages != expect.omit_stages:
        mismatches.append("omitStages")
    if (
        expect.omit_managed_fields is not None
        and decision.omit_managed_fields != expect.omit_managed_fields
    ):
        mismatches.append("omitManagedFields")
    if expect.checks_rule and decision.rule_index != expect.rule:
        mismatches.append("rule")
    return TestResult(test, decision, tuple(mismatches))


def run_tests(policy: Policy, tests: Sequence[PolicyTest]) -> tuple[TestResult, ...]:
    checker = PolicyChecker(policy)
    return tuple(run_test(checker, test) for test in tests)


def describe_failure(result: TestResult) -> str:
    """`level: expected Metadata, got RequestResponse (rule 3)` for each mismatching field."""
    expected = result.test.expect.to_dict()
    actual = result.decision.to_dict()
    parts = [
        f"{field}: expected {_show(expected[field])}, got {_show(actual[field])}"
        for field in result.mismatches
    ]
    if "rule" not in result.mismatches:
        parts.append(f"decided by {_show_rule(result.decision.rule_index)}")
    return "; ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return str(value)


def _show_rule(index: int | None) -> str:
    return "no rule" if index is None else f"rules[{index}]"


__all__ = [
    "EXPECT_FIELDS",
    "Expectation",
    "PolicyTest",
    "TestFileError",
    "TestResult",
    "describe_failure",
    "load_tests",
    "run_test",
    "run_tests",
]
