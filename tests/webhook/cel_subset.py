"""A faithful evaluator for the small part of CEL our matchConditions use.

Grammar (anything else is a SyntaxError, so a richer expression cannot be silently
misread): `||`, `&&`, `!`, parentheses, `==`, `!=`, `in`, string literals, `has(x.y.z)`,
field selection `a.b` and map indexing `a['k']`. Semantics follow the CEL spec:
selecting or indexing a missing key is an error; `has()` tests presence of the last
field; `&&`/`||` are commutative with error absorption (`false && error` is false,
`true || error` is true, otherwise the error propagates), as Kubernetes evaluates them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(
    r"""\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<op>\|\||&&|==|!=|[!().\[\]])"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"""
)


class CelError(Exception):
    """A runtime error (no such key), as CEL reports it."""


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SyntaxError(f"unsupported CEL at {text[pos:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise SyntaxError(f"expected {value!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        node = self.disjunction()
        if self.peek() is not None:
            raise SyntaxError(f"unexpected {self.peek()!r}")
        return node

    def disjunction(self) -> Any:
        node = self.conjunction()
        while self.peek() == ("op", "||"):
            self.take()
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Any:
        node = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            node = ("and", node, self.unary())
        return node

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.unary())
        return self.relation()

    def relation(self) -> Any:
        left = self.primary()
        token = self.peek()
        if token in (("op", "=="), ("op", "!="), ("ident", "in")):
            self.take()
            return (token[1], left, self.primary())
        return left

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return ("lit", bytes(value[1:-1], "utf-8").decode("unicode_escape"))
        if value == "(":
            node = self.disjunction()
            self.take(")")
            return node
        if kind == "ident" and value == "has":
            self.take("(")
            path = self.selection(self.take()[1])
            self.take(")")
            if path[0] != "select":
                raise SyntaxError("has() needs a field selection")
            return ("has", path[1], path[2])
        if kind == "ident":
            return self.selection(value)
        raise SyntaxError(f"unexpected {value!r}")

    def selection(self, name: str) -> Any:
        node: Any = ("var", name)
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take()[1] == ".":
                node = ("select", node, self.take()[1])
            else:
                kind, key = self.take()
                if kind != "string":
                    raise SyntaxError("only string map keys are supported")
                self.take("]")
                node = ("index", node, key[1:-1])
        return node


def _field(value: Any, key: str) -> Any:
    if not isinstance(value, Mapping):
        raise CelError(f"no such key: {key} (not a map)")
    if key not in value:
        raise CelError(f"no such key: {key}")
    return value[key]


def _eval(node: Any, env: Mapping[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "var":
        return _field(env, node[1])
    if op in ("select", "index"):
        return _field(_eval(node[1], env), node[2])
    if op == "has":
        target = _eval(node[1], env)
        if not isinstance(target, Mapping):
            raise CelError("has() on a non-map")
        return node[2] in target and target[node[2]] is not None
    if op == "not":
        value = _eval(node[1], env)
        if not isinstance(value, bool):
            raise CelError("no matching overload for '!'")
        return not value
    if op in ("and", "or"):
        results = []
        for side in node[1:]:
            try:
                results.append(_eval(side, env))
            except CelError as error:
                results.append(error)
        absorbing = op == "or"  # true absorbs in ||, false in &&
        if any(r is absorbing for r in results):
            return absorbing
        for result in results:
            if isinstance(result, CelError):
                raise result
            if not isinstance(result, bool):
                raise CelError(f"no matching overload for {op}")
        return not absorbing
    left, right = _eval(node[1], env), _eval(node[2], env)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "in":
        if isinstance(right, Mapping | list):
            return left in right
        raise CelError("no matching overload for 'in'")
    raise SyntaxError(op)


def evaluate(expression: str, env: Mapping[str, Any]) -> Any:
    return _eval(_Parser(expression).parse(), env)
