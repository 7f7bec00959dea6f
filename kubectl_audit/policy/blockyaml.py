"""A fast, exact reader for the plain block-style YAML that audit policies are written in.

`yamlsafe.parse_document` lets libyaml scan and parse in C, but then builds every event,
node and object in Python: about 4.5 ms for a 51-rule policy, most of the admission
webhook's budget for a policy it has never seen. Nearly every real policy uses a tiny
subset of YAML, though: block mappings and sequences, one `key: value` per line,
single-line plain or quoted scalars, single-line flow sequences of scalars (`verbs: ["get",
"list"]`), one-line flow mappings as sequence items (`- {group: "", resources: ["pods"]}`)
and comments. For that subset a line-oriented reader gives the same result several times
faster.

`parse_block_document(text)` returns exactly the `ParsedDocument` that
`yamlsafe.parse_document(text, go_yaml=True)` returns (data, key order, line map in the
same insertion order, start line), or None whenever the text steps outside the subset or
anything about it is uncertain: tabs, CRs, control characters, block scalars, anchors,
aliases, tags, `?` keys, multi-line scalars or flow collections, backslash escapes, keys
that are not plain strings, repeated keys (the full reader reports them), document markers
other than one leading `---`, directives, unclean indentation, or budgets exceeded. The
caller then uses the full reader, which also produces every error message: this reader
never raises on any input.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from kubectl_audit.policy.yamlsafe import STR_TAG, ParsedDocument, go_resolve

# Characters libyaml reads as ordinary printable text. Everything else (tabs, CR, C0/C1
# controls, NEL and the Unicode line/paragraph separators that libyaml treats as line
# breaks, BOMs inside the text, non-characters) sends the text to the full reader.
_UNSAFE = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)

_ASCII_CONTROLS = bytes(range(0x0A)) + bytes(range(0x0B, 0x20)) + b"\x7f"

# Every line of the text, one match each (`findall` does them all in one C call): indent,
# `- ` item marker, plain `key:` (ASCII words with `.`, `/` and `-`: deliberately narrow),
# then the value: a whole double-quoted scalar without escapes (quotes kept, so that `""`
# differs from nothing), the items of a whole flow sequence of such scalars (the common
# `verbs: ["get", "list"]`), nothing for a comment, or the rest of the line.
_LINES = re.compile(
    r"""^( *)(- +)?(?:([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +|$))?"""
    r"""(?:("[^"\\\n]*") *$|\[ *("[^"\\\n]*"(?: *, *"[^"\\\n]*")*) *\] *$|\#.*|(.*))""",
    re.MULTILINE,
)

# Plain values starting with one of these need no resolving and no indicator checks.
_PLAIN_START = frozenset("abcdeghijklmpqrsuvwxzABCDEGHIJKLMPQRSUVWXZ_/")

# `[0]`, `[1]`, ...: item path suffixes, built once.
_INDEXED = 1024
_INDEX = tuple(f"[{i}]" for i in range(_INDEXED))

# A single-quoted scalar (`''` is a quote) at the start of the rest of a line.
_SINGLE = re.compile(r"'((?:[^']|'')*)'")

# First characters a block plain value may not start with here: flow and other
# indicators (`[`, `{`, quotes and `#` are handled before this check).
_BAD_PLAIN_START = frozenset(",]}&*!|>%@`?:{")

# First characters for which go_resolve may give something other than the text itself.
_RESOLVE_HINTS = frozenset("yYnNtTfFoO~.+-0123456789<")

# Flow scalars: double-quoted without escapes, single-quoted, or plain without any flow
# indicator, `:` or `#` (which would need libyaml's finer rules), trailing spaces dropped.
# Written so that no input makes the regex backtrack more than linearly.
_FLOW_SCALAR = re.compile(
    r""" *(?:"([^"\\]*)"|'((?:[^']|'')*)'"""
    r"""|([^ \-?:,\[\]{}#&*!|>'"%@`](?:[^ ,\[\]{}#:]| +(?=[^ ,\[\]{}#:]))*)) *(?=[,\]}])"""
)
# The items of a flow sequence of double-quoted strings (checked by _LINES).
_QUOTED = re.compile(r'"([^"]*)"')
_FLOW_KEY = re.compile(r" *([A-Za-z0-9_][A-Za-z0-9_./-]*): +")
_FLOW_SPACES = re.compile(r" *")

# Field-path spelling of yamlsafe._join: `a.b` for simple names, `a[b.c]` otherwise.
_SIMPLE_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")

# What the text before a line's first `: ` is: a key joined as `.key` or as `[key]`, a
# plain key go_resolve would not keep as its own text (`yes`, `1`: decline), or not a
# plain key at all (the line holds a value only, e.g. `- "a: b"`).
_SIMPLE, _BRACKETED, _BAD_KEY, _NOT_A_KEY = 1, 2, 3, 4
# libyaml refuses a simple key longer than 1024 characters; long keys are left to it.
_MAX_KEY = 1000
_KEY_SYNTAX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_KEY_CACHE: dict[str, int] = {}
# The caches live as long as the process (the webhook's): bounded in entries and in size.
_CACHE_LIMIT = 4096
_CACHED_LENGTH = 64
# Plain scalars go_resolve may turn into something else (`None`, `true`, `0777`) -> value.
_PLAIN_CACHE: dict[str, Any] = {}


class _Decline(Exception):
    """The text is outside the subset (raised internally, never escapes)."""


def _key_kind(key: str) -> int:
    kind = _KEY_CACHE.get(key)
    if kind is not None:
        return kind
    if len(key) > _MAX_KEY or _KEY_SYNTAX.fullmatch(key) is None:
        return _NOT_A_KEY  # not cached: any text can come here
    if key[0] in _RESOLVE_HINTS and go_resolve(key) != (STR_TAG, key):
        kind = _BAD_KEY
    else:
        kind = _SIMPLE if _SIMPLE_KEY.fullmatch(key) else _BRACKETED
    if len(key) <= _CACHED_LENGTH and len(_KEY_CACHE) < _CACHE_LIMIT:
        _KEY_CACHE[key] = kind
    return kind


def _plain(text: str) -> Any:
    """The go-yaml value of a plain scalar (already checked to be a whole plain scalar)."""
    if text[0] not in _RESOLVE_HINTS:
        return text
    value = _PLAIN_CACHE.get(text, _PLAIN_CACHE)
    if value is not _PLAIN_CACHE:
        return value
    tag, value = go_resolve(text)
    if tag != STR_TAG and value is text:  # `<<`: a merge key's tag, not a value we know
        raise _Decline
    if len(text) <= _CACHED_LENGTH and len(_PLAIN_CACHE) < _CACHE_LIMIT:
        _PLAIN_CACHE[text] = value
    return value


def _is_comment_rest(rest: str) -> bool:
    """Whether what follows a quoted scalar or flow collection ends the line cleanly."""
    if not rest:
        return True
    stripped = rest.lstrip(" ")
    return not stripped or (stripped[0] == "#" and len(stripped) < len(rest))


def _flow_scalar(match: re.Match[str]) -> Any:
    double, single, plain = match.groups()
    if double is not None:
        return double
    if single is not None:
        return single.replace("''", "'")
    return _plain(plain)


def _flow(
    text: str, pos: int, path: str, line: int, lines: dict[str, int], depth: int, max_depth: int
) -> tuple[Any, int]:
    """A one-line flow sequence of scalars or flow mapping of scalars/sequences at `pos`.

    Returns the value and the position after its closing bracket; records item lines.
    """
    if depth >= max_depth:
        raise _Decline
    closing = "]" if text[pos] == "[" else "}"
    pos = _FLOW_SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
    if closing == "]":
        items: list[Any] = []
        if text.startswith("]", pos):
            return items, pos + 1
        while True:
            item = f"{path}[{len(items)}]"
            lines[item] = line
            match = _FLOW_SCALAR.match(text, pos)
            if match is None or match.end() == pos:
                raise _Decline
            items.append(_flow_scalar(match))
            pos = match.end()
            if text.startswith("]", pos):
                return items, pos + 1
            if not text.startswith(",", pos):
                raise _Decline
            pos = _FLOW_SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):  # a trailing comma: leave it to libyaml
                raise _Decline
    mapping: dict[str, Any] = {}
    if text.startswith("}", pos):
        return mapping, pos + 1
    while True:
        key_match = _FLOW_KEY.match(text, pos)
        if key_match is None:
            raise _Decline
        key = key_match.group(1)
        kind = _key_kind(key)
        if kind > _BRACKETED or key in mapping:
            raise _Decline
        item = (f"{path}.{key}" if path else key) if kind == _SIMPLE else f"{path}[{key}]"
        pos = key_match.end()
        if text.startswith("[", pos):
            lines[item] = line
            mapping[key], pos = _flow(text, pos, item, line, lines, depth + 1, max_depth)
            pos = _FLOW_SPACES.match(text, pos).end()  # type: ignore[union-attr]
        else:
            match = _FLOW_SCALAR.match(text, pos)
            if match is None or match.end() == pos:
                raise _Decline
            lines[item] = line
            mapping[key] = _flow_scalar(match)
            pos = match.end()
        if text.startswith("}", pos):
            return mapping, pos + 1
        if not text.startswith(",", pos):
            raise _Decline
        pos = _FLOW_SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
        if text.startswith("}", pos):
            raise _Decline


def _value(
    rest: str, path: str, line: int, lines: dict[str, int], depth: int, max_depth: int
) -> Any:
    """The inline value after `key: ` or `- ` (non-empty, not a comment); records lines."""
    first = rest[0]
    if first == '"':
        end = rest.find('"', 1)
        if end < 0:
            raise _Decline
        value: Any = rest[1:end]
        if "\\" in value or not _is_comment_rest(rest[end + 1 :]):
            raise _Decline
    elif first == "'":
        match = _SINGLE.match(rest)
        if match is None or not _is_comment_rest(rest[match.end() :]):
            raise _Decline
        value = match.group(1).replace("''", "'")
    elif first == "[" or first == "{":
        lines[path] = line
        value, end = _flow(rest, 0, path, line, lines, depth, max_depth)
        if not _is_comment_rest(rest[end:]):
            raise _Decline
        return value
    elif first in _BAD_PLAIN_START or (first == "-" and rest[1:2] in ("", " ")):
        raise _Decline
    else:
        cut = rest.find(" #")
        if cut >= 0:
            rest = rest[:cut]
        rest = rest.rstrip(" ")
        if ": " in rest or rest[-1] == ":":
            raise _Decline
        value = _plain(rest)
    lines[path] = line
    return value


def parse_block_document(text: str, *, max_nodes: int, max_depth: int) -> ParsedDocument | None:
    """The first document of `text` if it is plain block YAML, else None (see module doc).

    `text` is what `yamlsafe.read_text` returns. Budgets mean what they mean to the full
    reader: a document that would break one is declined, so the full reader reports it.
    """
    if text.isascii():  # the usual case, checked faster than by _UNSAFE
        if len(text.encode("ascii").translate(None, _ASCII_CONTROLS)) != len(text):
            return None
    elif _UNSAFE.search(text) is not None:
        return None
    try:
        return _parse(text, max_nodes, max_depth)
    except (_Decline, RecursionError):
        return None


def _parse(text: str, max_nodes: int, max_depth: int) -> ParsedDocument | None:
    found = _LINES.findall(text)
    if len(found) != text.count("\n") + 1:  # one match per line, or line numbers lie
        return None
    lines: dict[str, int] = {}
    # Open collections, innermost last, `top` the innermost: [column, container, path,
    # is_mapping, indentless]. Columns never decrease upwards; an indentless sequence
    # shares its mapping's column.
    stack: list[list[Any]] = []
    top: list[Any] = []
    # A `key:` whose value starts on a later line: (mapping, key, path, line, column).
    pending: tuple[dict[str, Any], str, str, int, int] | None = None
    root: Any = None
    start_line = 0
    seen_marker = False
    key_cache = _KEY_CACHE
    plain_start = _PLAIN_START
    index = _INDEX
    quoted_items = _QUOTED.findall
    plain_cache = _PLAIN_CACHE
    number = 0
    for spaces, dash, key, quoted, flow, rest in found:
        number += 1
        if not key:
            if not (quoted or flow or rest):
                if dash:
                    return None  # `-` with the item on later lines
                continue  # blank or comment
            if not dash:
                if not (rest[:3] == "---" and not spaces and not seen_marker and root is None):
                    return None  # a bare scalar: root scalar, continuation, other markers
                if not _is_comment_rest(rest[3:]):
                    return None
                seen_marker = True  # the one leading document marker
                continue
        indent = len(spaces)
        if pending is not None:
            mapping, pending_key, path, key_line, column = pending
            pending = None
            if indent > column or (indent == column and dash):
                if len(stack) >= max_depth:
                    return None
                lines[path] = key_line
                if dash:
                    child: Any = []
                    top = [indent, child, path, False, indent == column]
                else:
                    child = {}
                    top = [indent, child, path, True, False]
                mapping[pending_key] = child
                stack.append(top)
            else:
                mapping[pending_key] = None
                lines[path] = key_line
        elif root is None:
            if max_depth <= 0:
                return None
            start_line = number
            root = [] if dash else {}
            top = [indent, root, "", not dash, False]
            stack.append(top)
        if top[0] != indent or (top[3] if dash else not top[3]):
            while top[0] > indent:
                stack.pop()
                if not stack:
                    return None
                top = stack[-1]
            if top[0] != indent:
                return None
            if dash:
                if top[3]:
                    return None
            elif not top[3]:
                if not top[4]:
                    return None
                stack.pop()
                top = stack[-1]
        if dash:
            items = top[1]
            count = len(items)
            path = top[2] + index[count] if count < _INDEXED else f"{top[2]}[{count}]"
            if key:
                if len(stack) >= max_depth:
                    return None
                lines[path] = number
                child = {}
                items.append(child)
                top = [indent + len(dash), child, path, True, False]
                stack.append(top)
            else:
                lines[path] = number
                if quoted:
                    items.append(quoted[1:-1])
                elif flow:
                    if len(stack) >= max_depth:
                        return None
                    values = quoted_items(flow)
                    items.append(values)
                    for count in range(len(values)):
                        lines[path + index[count] if count < _INDEXED else f"{path}[{count}]"] = (
                            number
                        )
                elif (
                    rest[0] in plain_start
                    and " #" not in rest
                    and ": " not in rest
                    and rest[-1] != ":"
                    and rest[-1] != " "
                ):
                    items.append(rest)
                else:
                    items.append(_value(rest, path, number, lines, len(stack), max_depth))
                continue
        mapping = top[1]
        kind = key_cache.get(key)
        if kind is None:
            kind = _key_kind(key)
        if kind > _BRACKETED or key in mapping:  # not a string, too long, or repeated
            return None
        parent = top[2]
        path = (f"{parent}.{key}" if parent else key) if kind == _SIMPLE else f"{parent}[{key}]"
        if quoted:
            mapping[key] = quoted[1:-1]
        elif flow:
            if len(stack) >= max_depth:
                return None
            lines[path] = number
            mapping[key] = values = quoted_items(flow)
            for count in range(len(values)):
                lines[path + index[count] if count < _INDEXED else f"{path}[{count}]"] = number
            continue
        elif not rest:
            pending = (mapping, key, path, number, top[0])
            continue
        elif (
            rest[0] in plain_start
            and " #" not in rest
            and ": " not in rest
            and rest[-1] != ":"
            and rest[-1] != " "
        ):
            mapping[key] = rest
        else:
            value = plain_cache.get(rest, plain_cache)  # `None`, `true`, `1` seen before
            if value is plain_cache:
                mapping[key] = _value(rest, path, number, lines, len(stack), max_depth)
                continue
            mapping[key] = value
        lines[path] = number
    if pending is not None:
        mapping, pending_key, path, key_line, _ = pending
        mapping[pending_key] = None
        lines[path] = key_line
    if root is None:
        return None
    # Every node but the root is a value recorded in `lines` or a key of one: the full
    # reader counts at most this many, and refuses a document above its budget.
    if 1 + 2 * len(lines) > max_nodes:
        return None
    return ParsedDocument(root, MappingProxyType(lines), (), start_line)


__all__ = ["parse_block_document"]
