"""Bounded YAML reading: budgets, go-yaml v2 scalars, line map, repeated keys."""

from __future__ import annotations

import math

import pytest
import yaml

from kubectl_audit.errors import InputError, YamlLimitError
from kubectl_audit.policy.yamlsafe import (
    YamlBudgetError,
    YamlSyntaxError,
    go_resolve,
    load_yaml,
    load_yaml_all,
    parse_document,
    parse_documents,
)
from tests.conftest import TESTDATA


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# --- budgets -----------------------------------------------------------------------------


def test_billion_laughs_is_refused_before_expansion() -> None:
    with pytest.raises(YamlBudgetError, match=r"expands to more than 500000 nodes through aliases"):
        load_yaml(billion_laughs())


def test_alias_budget_is_configurable_and_counts_expanded_size() -> None:
    # 3 levels of 3: 3 + 9 + 27 leaves plus containers: fine at 100, refused at 20.
    text = billion_laughs(levels=3, width=3)
    assert len(load_yaml(text, max_nodes=100)["a2"]) == 3
    with pytest.raises(YamlBudgetError):
        load_yaml(text, max_nodes=20)


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]", "a: &a {b: *a}", "- &x\n  - &y [*x]"],
    ids=["list-contains-itself", "map-contains-itself", "nested-back-reference"],
)
def test_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(YamlBudgetError, match="recursive alias"):
        load_yaml(text)


@pytest.mark.parametrize(
    "text",
    ["- " * 100_000 + "x", "[" * 5000 + "]" * 5000, "".join("  " * i + "-\n" for i in range(400))],
    ids=["compact-block-sequences", "flow", "indented-block"],
)
def test_deep_nesting_is_refused_without_recursing(text: str) -> None:
    # libyaml's own composer recurses in C and crashes the interpreter on the first input.
    with pytest.raises(YamlBudgetError, match="nesting deeper than 256 levels"):
        load_yaml(text)


def test_nesting_through_an_alias_counts_the_aliased_depth() -> None:
    text = "a: &a " + "[" * 6 + "]" * 6 + "\nb: [[[*a]]]\n"
    assert load_yaml(text, max_depth=10)["a"] == [[[[[[]]]]]]
    with pytest.raises(YamlBudgetError, match="through \\*a"):
        load_yaml(text, max_depth=8)


def test_byte_cap_is_checked_before_parsing() -> None:
    text = "a: [" + "1," * 1000 + "]"
    with pytest.raises(YamlLimitError, match="over the limit of 100 bytes"):
        load_yaml(text, max_bytes=100)
    with pytest.raises(YamlLimitError):
        load_yaml("é" * 60, max_bytes=100)  # 60 characters, 120 bytes


def test_invalid_utf8_is_refused_with_its_line() -> None:
    with pytest.raises(InputError, match=r"<input>:2: input is not valid UTF-8 \(byte 8: 0xff\)"):
        load_yaml(b"a: 1\nb: \xff\n")


def test_surrogates_in_text_are_refused() -> None:
    with pytest.raises(InputError, match="not valid UTF-8"):
        load_yaml("a: \udcff")


def test_utf8_bom_is_accepted() -> None:
    assert load_yaml("\ufeffa: 1".encode()) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: [", 2), ("a: b\n c: d\n", 2), ("a: 1\n\tb: 2\n", 2), ("a: *nope", 1), ('"x', 1)],
    ids=["unclosed-flow", "bad-indent", "tab-indent", "unknown-alias", "unclosed-quote"],
)
def test_syntax_errors_name_a_line(text: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml(text, source="p.yaml")
    assert caught.value.line == line
    assert caught.value.message.startswith(f"p.yaml:{line}: ")
    assert isinstance(caught.value, InputError)


# --- documents ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("# only a comment\n", None),
        ("null", None),
        ("---\n---\na: 1\n", None),
        ("---\na: 1\n", {"a": 1}),
        ("a: 1\n---\nb: 2\n", {"a": 1}),
        ("a: 1\n...\n", {"a": 1}),
    ],
    ids=["empty", "comment", "null", "explicit-empty-first", "leading-marker", "two", "end-marker"],
)
def test_only_the_first_document_is_read(text: str, expected: object) -> None:
    assert parse_document(text).data == expected


def test_later_documents_are_not_parsed_by_the_first_document_reader() -> None:
    assert parse_document("a: 1\n---\nb: 2\n---\nc: [\n").data == {"a": 1}


def test_all_documents_are_read_by_the_stream_reader() -> None:
    docs = parse_documents("a: 1\n---\n---\nb: [x]\n")
    assert [doc.data for doc in docs] == [{"a": 1}, None, {"b": ["x"]}]
    assert docs[2].lines["b"] == 4
    assert docs[2].start_line == 4
    assert load_yaml_all("") == []


# --- scalar dialects ---------------------------------------------------------------------

GO_BOOLEANS = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"]
GO_FALSES = ["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"]


@pytest.mark.parametrize("word", GO_BOOLEANS)
def test_go_yaml_true_words(word: str) -> None:
    assert load_yaml(f"v: {word}", go_yaml=True) == {"v": True}
    assert load_yaml(f"v: '{word}'", go_yaml=True) == {"v": word}


@pytest.mark.parametrize("word", GO_FALSES)
def test_go_yaml_false_words(word: str) -> None:
    assert load_yaml(f"v: {word}", go_yaml=True) == {"v": False}


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("2024-01-01", "2024-01-01"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("1:30", "1:30"),  # no base 60 in go-yaml
        ("0o17", 15),
        ("017", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("+12", 12),
        ("1e3", 1000.0),  # PyYAML keeps this a string
        ("08", 8.0),  # not an octal int, but a yaml-style float
        (".5", 0.5),
        ("-.5", -0.5),
        ("99999999999999999999", 1e20),  # beyond uint64: a float
        ("18446744073709551615", 18446744073709551615),
        ("=", "="),
        ("~", None),
        ("Null", None),
        ("yesno", "yesno"),
        ("-x", "-x"),
        ("<<", "<<"),
        ("Infinity", "Infinity"),
        ("1.2.3", "1.2.3"),
        ("0x", "0x"),
        ("1e999", "1e999"),  # ParseFloat overflows: not a number to go-yaml
        (".5e999", ".5e999"),
        (".5_0", ".5_0"),
        ("1_0.5", 10.5),
    ],
)
def test_go_yaml_plain_scalars(scalar: str, expected: object) -> None:
    value = load_yaml(f"- {scalar}", go_yaml=True)[0]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("scalar", "sign"), [(".inf", 1), ("-.Inf", -1), ("+.INF", 1)])
def test_go_yaml_infinities(scalar: str, sign: int) -> None:
    assert load_yaml(f"- {scalar}", go_yaml=True)[0] == sign * math.inf
    assert math.isnan(load_yaml("- .NaN", go_yaml=True)[0])


def test_go_resolve_agrees_with_the_loader() -> None:
    assert go_resolve("no") == ("tag:yaml.org,2002:bool", False)
    assert go_resolve("2024-01-01") == ("tag:yaml.org,2002:str", "2024-01-01")


def test_default_dialect_is_pyyaml_safe_load() -> None:
    text = "a: y\nb: 2024-01-01\nc: 1:30\nd: 1e3\ne: [yes, on]\n"
    assert load_yaml(text) == yaml.safe_load(text)


def test_go_yaml_explicit_tags() -> None:
    text = "a: !!str 1\nb: !!int '7'\nc: !!float 1\nd: !custom {x: 1}\ne: !!timestamp 2024-01-01\n"
    assert load_yaml(text, go_yaml=True) == {
        "a": "1",
        "b": 7,
        "c": 1.0,
        "d": {"x": 1},
        "e": "2024-01-01",
    }
    with pytest.raises(YamlSyntaxError, match="cannot decode 'x' as a bool"):
        load_yaml("a: !!bool x", go_yaml=True)


def test_go_yaml_keys_become_json_strings() -> None:
    assert load_yaml("{true: 1, 1: 2, on: 3}", go_yaml=True) == {"true": 3, "1": 2}
    with pytest.raises(YamlSyntaxError, match="keys must be strings"):
        load_yaml("? [a]\n: 1\n", go_yaml=True)


def test_merge_keys_are_honoured() -> None:
    text = "base: &b {level: None, verbs: [get]}\nrule: {<<: *b, level: Metadata}\n"
    assert load_yaml(text, go_yaml=True)["rule"] == {"level": "Metadata", "verbs": ["get"]}


# --- line map and repeated keys ------------------------------------------------------------


def test_line_map_of_a_policy() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\n"  # 1
        "kind: Policy\n"  # 2
        "rules:\n"  # 3
        "  - level: None\n"  # 4
        "    users: [a, b]\n"  # 5
        "  - level: Metadata\n"  # 6
        "    resources:\n"  # 7
        "    - group: ''\n"  # 8
        "      resources:\n"  # 9
        "      - pods\n"  # 10
    )
    lines = parse_document(text).lines
    assert lines["apiVersion"] == 1
    assert lines["rules"] == 3
    assert lines["rules[0]"] == 4
    assert lines["rules[0].users[1]"] == 5
    assert lines["rules[1].level"] == 6
    assert lines["rules[1].resources[0]"] == 8
    assert lines["rules[1].resources[0].resources[0]"] == 10


def test_weird_keys_are_bracketed_in_paths() -> None:
    lines = parse_document("data:\n  policy.yaml: |\n    x\n").lines
    assert lines["data[policy.yaml]"] == 2


def test_repeated_keys_are_reported_and_the_last_wins() -> None:
    text = "rules:\n- level: None\n  verbs: [get]\n  level: Metadata\n- {level: a, level: b}\n"
    parsed = parse_document(text)
    assert parsed.data["rules"] == [{"level": "Metadata", "verbs": ["get"]}, {"level": "b"}]
    assert [(d.path, d.line, d.first_line) for d in parsed.duplicates] == [
        ("rules[0].level", 4, 2),
        ("rules[1].level", 5, 5),
    ]
    assert parsed.lines["rules[0].level"] == 4


def test_keys_equal_after_go_resolution_are_repeats() -> None:
    parsed = parse_document("1: a\n'1': b\n")
    assert [d.key for d in parsed.duplicates] == ["1"]
    assert parse_document("a: 1\nb: 2\n").duplicates == ()


def test_every_testdata_policy_reads_like_safe_load_where_dialects_agree() -> None:
    for path in sorted((TESTDATA / "policies").rglob("*.yaml")):
        data = path.read_bytes()
        assert load_yaml(data, source=path.name) == yaml.safe_load(data), path.name


def test_errors_are_our_exception_types() -> None:
    for text in ["a: &a [*a]", "a: [", b"\xff"]:
        with pytest.raises(InputError):
            load_yaml(text)
