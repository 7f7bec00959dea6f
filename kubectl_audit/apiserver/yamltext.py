"""Line-level editing of YAML text guided by PyYAML's node tree.

We understand a document with `yaml.compose` (which keeps line/column marks) and change it
by inserting and deleting whole lines, so everything we do not touch - comments, blank
lines, trailing spaces, key order, quoting - stays byte for byte as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

try:  # libyaml is ~10x faster; marks (line/column) are kept by both.
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Node = yaml.Node


def compose(text: str) -> yaml.Node | None:
    return yaml.compose(text, Loader=_Loader)


def construct(node: yaml.Node | None) -> object:
    """The Python data of a composed node, without parsing the text a second time."""
    if node is None:
        return None
    return yaml.constructor.SafeConstructor().construct_document(node)


def load(text: str) -> object:
    return yaml.load(text, Loader=_Loader)


def get(mapping: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node, value node) of `key` in a mapping node; the last one if repeated."""
    if not isinstance(mapping, yaml.MappingNode):
        return None
    found = None
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found = (key_node, value_node)
    return found


def value(mapping: yaml.Node | None, key: str) -> yaml.Node | None:
    pair = get(mapping, key)
    return pair[1] if pair else None


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (
        isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
    )


def is_block(node: yaml.Node) -> bool:
    return not getattr(node, "flow_style", False)


def last_line(node: yaml.Node) -> int:
    """The 0-based line holding the last character of `node`'s own content."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value and is_block(node):
        last = node.value[-1]
        return last_line(last[1] if isinstance(last, tuple) else last)
    end = node.end_mark
    # Block scalars (and some plain ones) end at column 0 of the following line.
    if end.column == 0 and end.line > node.start_mark.line:
        return end.line - 1
    return end.line


def item_start(lines: list[str], item: yaml.Node) -> int:
    """The line of an item's `-`: usually the value's line, but `-` may stand alone above."""
    line = item.start_mark.line
    if lines[line][: item.start_mark.column].strip():
        return line
    while line > 0:
        line -= 1
        code = lines[line].split("#", 1)[0].rstrip()
        if code:
            return line if code.endswith("-") else item.start_mark.line
    return item.start_mark.line


def item_spans(seq: yaml.SequenceNode, lines: list[str]) -> list[tuple[int, int]]:
    """[start, end) line ranges of a block sequence's items.

    An item owns the lines from its `-` up to the next item, so comments and blank lines
    between two items travel with the one above them.
    """
    starts = [item_start(lines, item) for item in seq.value]
    ends = [*starts[1:], last_line(seq) + 1] if starts else []
    return list(zip(starts, ends, strict=True))


def item_prefix(lines: list[str], item: yaml.Node) -> str:
    """The text before an item's value on its first line: `    - ` (dash and spaces)."""
    prefix = lines[item.start_mark.line][: item.start_mark.column]
    if prefix.strip() == "-":
        return prefix
    dash_line = lines[item_start(lines, item)]
    return " " * (len(dash_line) - len(dash_line.lstrip(" "))) + "- "


_PLAIN = re.compile(r"-*[A-Za-z0-9/_.][A-Za-z0-9/_.=+@,:-]*")
_STR_TAG = "tag:yaml.org,2002:str"
# go-yaml v2 (what the kubelet decodes with) also reads these as numbers or booleans.
_GO_NON_STRING = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[yYnN]")


def scalar(text: str) -> str:
    """`text` as a YAML scalar: plain when that reads back as the same string, else quoted."""
    plain = (
        _PLAIN.fullmatch(text) is not None
        and not text.endswith(":")
        and _GO_NON_STRING.fullmatch(text) is None
        and yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG
    )
    return text if plain else json.dumps(text)  # JSON strings are YAML double-quoted scalars


def quoted(text: str) -> str:
    """Always a string: single-quoted when that needs no escapes, else double-quoted."""
    if "'" not in text and text.isprintable():
        return f"'{text}'"
    return json.dumps(text)


@dataclass
class LineEdit:
    """Deletions and insertions, all in the coordinates of the original lines."""

    lines: list[str]
    newline: str = "\n"
    deleted: set[int] = field(default_factory=set)
    inserted: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> LineEdit:
        newline = "\r\n" if "\r\n" in text else "\n"
        return cls(text.splitlines(keepends=True), newline)

    def delete(self, start: int, end: int) -> None:
        self.deleted.update(range(start, end))

    def insert(self, before: int, new_lines: Iterable[str]) -> None:
        """Insert lines (without line endings) before original line `before`."""
        self.inserted.setdefault(before, []).extend(new_lines)

    def apply(self) -> str:
        out: list[str] = []
        for index in range(len(self.lines) + 1):
            out.extend(new + self.newline for new in self.inserted.get(index, ()))
            if index < len(self.lines) and index not in self.deleted:
                out.append(self.lines[index])
        # Only the original last line may lack a line ending; after edits it may sit
        # anywhere, so give every line one and then restore the original file ending.
        text = "".join(line if line.endswith("\n") else line + self.newline for line in out)
        if self.lines and not self.lines[-1].endswith("\n"):
            text = text.removesuffix(self.newline)
        return text
