"""The fast block-YAML reader: either it declines, or it reads exactly as the full reader."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_audit.policy import blockyaml, yamlsafe
from kubectl_audit.policy.blockyaml import parse_block_document
from kubectl_audit.policy.yamlsafe import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    ParsedDocument,
    YamlBudgetError,
    parse_document,
    parse_documents,
    read_text,
)
from tests.conftest import ROOT, TESTDATA

POLICIES = TESTDATA / "policies"
PRESETS = ROOT / "kubectl_audit" / "policy" / "presets"


def fast(text: str, **budgets: int) -> ParsedDocument | None:
    return parse_block_document(
        text,
        max_nodes=budgets.get("max_nodes", DEFAULT_MAX_NODES),
        max_depth=budgets.get("max_depth", DEFAULT_MAX_DEPTH),
    )


def full(text: str) -> ParsedDocument:
    """The libyaml reader: parse_documents never takes the fast path (one document here)."""
    documents = parse_documents(text, go_yaml=True)
    return documents[0] if documents else ParsedDocument(None)


def same_data(a: Any, b: Any) -> bool:
    """Equal values of the same types (True is not 1), mapping keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_data(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def assert_same(got: ParsedDocument, want: ParsedDocument) -> None:
    assert same_data(got.data, want.data), (got.data, want.data)
    assert list(got.lines.items()) == list(want.lines.items())
    assert got.duplicates == want.duplicates
    assert got.start_line == want.start_line


def check(text: str) -> ParsedDocument | None:
    """The fast reader's answer, after checking it against the full reader when it gives one."""
    got = fast(text)
    if got is not None:
        assert_same(got, full(text))
    return got


# --- real policies ---------------------------------------------------------------------------


def policy_files() -> list[Path]:
    files = sorted(POLICIES.rglob("*.yaml")) + sorted(PRESETS.glob("*.yaml"))
    files += sorted((ROOT / "tests").rglob("*.yaml"))
    return files


# The real policies written in the plain subset: the fast reader must take all of them.
ACCEPTED = [
    "aks-engine-audit-policy.rendered-v1.yaml",
    "audit2rbac-demo-policy.yaml",
    "falco-k8saudit-audit-policy.yaml",
    "gke-gce-configure-helper-audit-policy.yaml",
    "khi-docs-kind-audit-policy.yaml",
    "kubernetes-docs-example-audit-policy.yaml",
    "kubespray-default-audit-policy.rendered.yaml",
    "openshift-logging-osd-example-policy-nonstandard.yaml",
    "openshift/openshift-allrequestbodies-profile.yaml",
    "openshift/openshift-default-profile.yaml",
    "openshift/openshift-none-profile.yaml",
    "openshift/openshift-writerequestbodies-profile.yaml",
]


@pytest.mark.parametrize("path", policy_files(), ids=lambda path: str(path.name))
def test_real_files_are_declined_or_read_exactly(path: Path) -> None:
    check(read_text(path.read_bytes(), source=path.name))


@pytest.mark.parametrize("name", ACCEPTED)
def test_common_real_policies_are_not_declined(name: str) -> None:
    path = POLICIES / name
    assert check(read_text(path.read_bytes(), source=name)) is not None


def test_presets_metadata_policy_is_not_declined() -> None:
    assert check((PRESETS / "metadata.yaml").read_text(encoding="utf-8")) is not None


def test_the_webhook_bench_policy_shape_is_read_exactly() -> None:
    # The shape bench/webhook_bench.sh sends: indentless sequences, flow lists, `""` groups.
    text = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n"
        '- level: None\n  nonResourceURLs: ["/healthz0*", "/version"]\n'
        '- level: Request\n  verbs: ["create", "update"]\n  namespaces: ["team-1"]\n'
        '  resources:\n  - group: ""\n    resources: ["pods", "pods/status"]\n'
        '- level: Metadata\n  omitStages: ["RequestReceived"]\n'
    )
    parsed = check(text)
    assert parsed is not None
    assert parsed.lines["rules[1].resources[0].group"] == 10
    assert parsed.lines["rules[1].resources[0].resources[1]"] == 11


def test_parse_document_serves_plain_policies_without_libyaml(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (POLICIES / "gke-gce-configure-helper-audit-policy.yaml").read_bytes()
    want = parse_document(text)

    def no_full_reader(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the full reader was used")

    monkeypatch.setattr(yamlsafe, "_documents", no_full_reader)
    assert_same(parse_document(text), want)


def test_parse_document_falls_back_when_declined_and_other_paths_stay_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "a: &x 1\nb: *x\n"
    assert fast(text) is None
    assert parse_document(text).data == {"a": 1, "b": 1}

    def no_fast_reader(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast reader was used")

    monkeypatch.setattr(blockyaml, "parse_block_document", no_fast_reader)
    assert parse_documents("a: 1\n")[0].data == {"a": 1}
    assert parse_document("a: yes\n", go_yaml=False).data == {"a": True}


def test_budgets_are_declined_so_the_full_reader_reports_them() -> None:
    deep = "a:\n  b:\n    c:\n      d: 1\n"
    assert fast(deep, max_depth=3) is None
    assert fast(deep, max_depth=4) is not None
    with pytest.raises(YamlBudgetError):
        parse_document(deep, max_depth=3)
    wide = "a: 1\nb: 2\nc: [1, 2, 3]\n"
    assert fast(wide, max_nodes=5) is None
    with pytest.raises(YamlBudgetError):
        parse_document(wide, max_nodes=5)


# --- explicit cases --------------------------------------------------------------------------

READ = {
    "indentless": "rules:\n- level: None\n  verbs: [get]\n",
    "indented": "rules:\n    - level: None\n      users:\n        - a\n",
    "nested resources": 'r:\n- resources:\n  - group: ""\n    resources: ["pods"]\n  verbs: []\n',
    "empty values": "a:\nb: \"\"\nc: []\nd: ''\ne: # nothing\nf: ~\n",
    "comments": 'a: b # c\nd: "e # f" # g\nh: a#b\n# x\n   # y\ni: [x, "y"] # z\n',
    "leading marker": "\n# c\n--- # c\n\nkind: Policy\n",
    "scalars": "a: yes\nb: 0777\nc: 1e3\nd: 0x1f\ne: .inf\nf: 2024-01-01\ng: -1\nh: null\n",
    "quoted": "a: 'it''s'\nb: \"a: b\"\nc: 'x # y'\nd: \"\"\ne: ''\nf: \"é ✓\"\n",
    "flow mapping items": '- {group: "", resources: ["pods"]}\n- {group: apps}\n- {}\n',
    "bracket paths": "data:\n  policy.yaml: x\n  a/b: y\n  2024-01-01: z\n",
    "root sequence": "- a\n- b: c\n  d: [e]\n- [f]\n",
    "indented root": "    a: 1\n    b:\n    - c\n",
    "dash spacing": "-   a: 1\n    b: 2\n-  c\n",
    "unicode": 'a: ünïcödé\nb: ["日本", 语]\n',
    "nbsp and astral": 'a: "😀"\nb: 😀\nc: a\u00a0b\nd: \u00a0x\ne: [😀, "\ue000"]\nf: x\u00a0#y\n',
    "globs": 'a: /healthz*\nb: ["*", "/api/*"]\nc: a*b\n',
}


@pytest.mark.parametrize("text", READ.values(), ids=READ.keys())
def test_subset_documents_are_read_exactly(text: str) -> None:
    assert check(text) is not None


DECLINED = {
    "tab": "a:\tb\n",
    "tab indent": "a:\n\t- b\n",
    "cr": "a: b\r\n",
    "literal block": "a: |\n  text\n",
    "folded block": "a: >\n  text\n",
    "anchor": "a: &x 1\n",
    "alias": "a: 1\nb: *x\n",
    "tag": "a: !!str 1\n",
    "local tag": "a: !foo x\n",
    "question key": "? a\n: b\n",
    "flow map spanning lines": "a: {b: 1,\n  c: 2}\n",
    "flow seq spanning lines": "a: [1,\n  2]\n",
    "nested flow seq": "a: [[1]]\n",
    "flow map in flow seq": "a: [{b: 1}]\n",
    "multi-line plain": "a: b\n  c\n",
    "multi-line quoted": 'a: "b\n  c"\n',
    "backslash": 'a: "b\\n"\n',
    "second document": "a: 1\n---\nb: 2\n",
    "document end": "a: 1\n...\n",
    "marker with content": "--- a\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "quoted key": '"a": 1\n',
    "bool key": "yes: 1\n",
    "int key": "1: a\n",
    "null key": "null: a\n",
    "merge key": "<<: {a: 1}\n",
    "key with space": "a b: 1\n",
    "duplicate": "a: 1\na: 2\n",
    "duplicate nested": "- a: 1\n  a: 2\n",
    "duplicate flow": "- {a: 1, a: 2}\n",
    "bad dedent": "a:\n    b: 1\n  c: 2\n",
    "deeper after scalar": "a: 1\n  b: 2\n",
    "dash under scalar": "a: 1\n- b\n",
    "seq then key same column": "a:\n  - b\n  c: 1\n",
    "empty item": "-\n  a: 1\n",
    "empty item with comment": "- # c\n",
    "nested dash": "- - a\n",
    "bare scalar": "hello\n",
    "empty": "",
    "comments only": "# a\n\n",
    "marker only": "---\n",
    "value then colon": "a: b: c\n",
    "trailing colon": "a: b:\n",
    "trailing comma": "a: [b, ]\n",
    "empty flow item": "a: [b, , c]\n",
    "plain alias item": "a: [*]\n",
    "control char": "a: b\x01\n",
    "nel": "a: b\x85c\n",
    "line separator": "a: b\u2028c\n",
    "bom inside": "a: \ufeffb\n",
    "comment without space": 'a: "b"#c\n',
    "text after quote": "a: 'b' c\n",
    "merge value": "a: <<\n",
    "flow colon": "a: [b:c]\n",
    "block entry as value": "a: - b\n",
}


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED.keys())
def test_inputs_outside_the_subset_are_declined(text: str) -> None:
    assert fast(text) is None


# --- generated documents ---------------------------------------------------------------------

TRICKY = [
    "yes",
    "no",
    "on",
    "off",
    "y",
    "N",
    "~",
    "null",
    "Null",
    "true",
    "False",
    "0777",
    "1e3",
    "0x1f",
    "0o17",
    "0b101",
    ".inf",
    "-.inf",
    ".nan",
    "+1",
    "-2",
    "1_000",
    "3.14",
    "1.",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "quoted: #",
    "it's",
    "a#b",
    "a: b",
    "",
    " ",
    "ünïcödé",
    "*",
    "/healthz*",
    "system:serviceaccount:a:b",
    "a b",
    "x # y",
    "<<",
    "-",
    "- a",
    "#",
    "'",
    '"',
    "a,b",
    "[a]",
    "{a}",
    "&a",
    "!a",
    "%a",
    "@a",
    "`a",
    "?a",
    ":a",
    "a:",
    "..",
    "---",
    "None",
    "Metadata",
    "9" * 30,
    "\u00a0a",
    "a\u00a0",
]
KEYS = [
    "apiVersion",
    "kind",
    "rules",
    "level",
    "verbs",
    "group",
    "resources",
    "policy.yaml",
    "a/b",
    "a-b",
    "_x",
    "yes",
    "1",
    "on",
    "2024-01-01",
    "x.y.z",
    "NO",
    "o",
    "k8s.io/name",
]

GOOD_KEYS = [key for key in KEYS if key not in ("yes", "1", "on", "NO", "o")]

scalar_text = st.one_of(
    st.sampled_from(TRICKY),
    st.text("ab :#'\"-*/.,[]{}é1", max_size=8),
    st.text("abcxyz019./*-é", min_size=1, max_size=8),
)
# Mostly distinct, well-formed keys (so that most documents are accepted), sometimes not.
key_lists = st.one_of(
    st.lists(st.sampled_from(GOOD_KEYS), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from(GOOD_KEYS), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=4),
)


@st.composite
def scalars(draw: st.DrawFn) -> str:
    """A scalar as written on one line: plain, double- or single-quoted."""
    text = draw(scalar_text)
    style = draw(st.sampled_from(["plain", "plain", "double", "single"]))
    if style == "double" and '"' not in text and "\\" not in text:
        return f'"{text}"'
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    return text


@st.composite
def flow_seqs(draw: st.DrawFn) -> str:
    items = draw(st.lists(scalars(), max_size=4))
    space = draw(st.sampled_from(["", " "]))
    return "[" + space + ("," + draw(st.sampled_from(["", " ", "  "]))).join(items) + space + "]"


@st.composite
def flow_maps(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(GOOD_KEYS), max_size=3, unique=True))
    values = [draw(st.one_of(scalars(), flow_seqs())) for _ in keys]
    return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, values, strict=True)) + "}"


def comment(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["", "", "", " # c", "  #: x", " #"]))


def block(draw: st.DrawFn, column: int, depth: int) -> list[str]:
    """Lines of a block mapping or sequence whose lines start at `column`."""
    pad = " " * column
    out: list[str] = []
    if draw(st.booleans()):
        for key in draw(key_lists):
            out.extend(entry(draw, f"{pad}{key}:", column, depth, indentless_ok=True))
    else:
        for _ in range(draw(st.integers(1, 3))):
            dash = "-" + " " * draw(st.integers(1, 3))
            if depth < 3 and draw(st.booleans()):
                inner = block(draw, column + len(dash), depth + 1)
                first = inner[0].lstrip(" ")
                if inner[0].startswith(" " * (column + len(dash))) and first[:1] != "-":
                    out.append(pad + dash + first)
                    out.extend(inner[1:])
                    continue
            value = draw(st.one_of(scalars(), flow_seqs(), flow_maps()))
            out.append(pad + dash + value + comment(draw))
    if draw(st.integers(0, 5)) == 0:
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(["", "# x", "  # y"])))
    return out


def entry(draw: st.DrawFn, head: str, column: int, depth: int, indentless_ok: bool) -> list[str]:
    choice = draw(st.integers(0, 5)) if depth < 3 else 0
    if choice <= 1:
        value = draw(st.one_of(scalars(), flow_seqs()))
        return [f"{head} {value}{comment(draw)}".rstrip(" ") if value else head]
    if choice == 2:
        return [head + comment(draw)]
    step = draw(st.integers(0 if indentless_ok else 1, 4))
    return [head + comment(draw), *block(draw, column + step, depth + 1)]


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = block(draw, draw(st.sampled_from([0, 0, 0, 2, 4])), 0)
    if draw(st.booleans()):
        lines.insert(0, draw(st.sampled_from(["---", "--- # doc", "# head"])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


def fast_or_none(text: str) -> ParsedDocument | None:
    try:
        return fast(text)
    except Exception as error:  # noqa: BLE001 - the claim under test is "never raises"
        pytest.fail(f"the fast reader raised {error!r} on {text!r}")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_subset_documents_match_the_full_reader(text: str) -> None:
    got = fast_or_none(text)
    if got is not None:
        assert_same(got, full(text))


def test_the_generator_mostly_writes_documents_the_fast_reader_takes() -> None:
    # Otherwise the comparison above would hold by declining everything.
    answers: list[bool] = []

    @settings(max_examples=200, database=None, derandomize=True, deadline=None)
    @given(documents())
    def collect(text: str) -> None:
        answers.append(fast(text) is not None)

    collect()
    assert sum(answers) >= len(answers) // 5


@functools.cache
def real_texts() -> list[str]:
    return [
        read_text(path.read_bytes(), source=path.name)
        for path in sorted(POLICIES.rglob("*.yaml")) + sorted(PRESETS.glob("*.yaml"))
    ]


@st.composite
def mutated_policies(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(real_texts()))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        line = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.integers(0, 4))
        if kind == 0:  # insert characters
            at = draw(st.integers(0, len(lines[line])))
            extra = draw(st.text(" -:#'\"[]{},&*!|>?%@`\t\\~.0yn\u00a0é", min_size=1, max_size=3))
            lines[line] = lines[line][:at] + extra + lines[line][at:]
        elif kind == 1:  # delete characters
            at = draw(st.integers(0, len(lines[line])))
            lines[line] = lines[line][:at] + lines[line][at + draw(st.integers(1, 3)) :]
        elif kind == 2:  # change indentation
            body = lines[line].lstrip(" ")
            lines[line] = " " * draw(st.integers(0, 8)) + body
        elif kind == 3:  # repeat a line
            lines.insert(line, lines[line])
        else:  # drop a line
            del lines[line]
        text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_policies())
def test_mutated_real_policies_match_the_full_reader(text: str) -> None:
    got = fast_or_none(text)
    if got is not None:
        assert_same(got, full(text))
