"""Line-level YAML editing primitives."""

from __future__ import annotations

import yaml

from kubectl_audit.apiserver import yamltext as yt


def test_last_line_of_block_scalars_and_nested_blocks() -> None:
    text = "a:\n  b: |\n    one\n    two\n\n  c:\n  - x\n  - y  # comment\n\nd: 1\n"
    root = yt.compose(text)
    # A block scalar owns the blank lines after it (they are its content under `|+`), so
    # nothing is ever inserted between it and them.
    assert yt.last_line(yt.value(yt.value(root, "a"), "b")) == 4
    assert yt.last_line(yt.value(root, "a")) == 7
    seq = yt.value(yt.value(root, "a"), "c")
    assert yt.item_spans(seq, text.splitlines(True)) == [(6, 7), (7, 8)]


def test_line_edit_keeps_untouched_bytes_and_line_endings() -> None:
    text = "a: 1\r\nb: 2  \r\n# c\r\n"
    edit = yt.LineEdit.of(text)
    edit.insert(1, ["x: 0"])
    edit.delete(2, 3)
    assert edit.apply() == "a: 1\r\nx: 0\r\nb: 2  \r\n"


def test_line_edit_at_end_of_file_without_newline() -> None:
    edit = yt.LineEdit.of("a: 1")
    edit.insert(1, ["b: 2"])
    assert edit.apply() == "a: 1\nb: 2"
    edit = yt.LineEdit.of("a: 1\nb: 2")
    edit.delete(1, 2)
    assert edit.apply() == "a: 1"


def test_quoted_values_stay_strings() -> None:
    for value in ["0123", "true", "it's", '{"a":[1]}', "line\nbreak", "ünï"]:
        assert yaml.safe_load(f"k: {yt.quoted(value)}\n") == {"k": value}
