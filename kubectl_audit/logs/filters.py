"""What to look for in an audit log, compiled twice: byte needles and an exact predicate.

A `FilterSpec` holds the `kubectl audit logs` filter options. `compile_filters` turns it into
a `Matcher` with

* needle sets for a byte-level prefilter: each set is a tuple of literals (OR) that every
  matching line must contain one of; sets combine with AND. They are a safe SUPERSET: a
  line without the literal cannot match, a line with it still goes through the exact
  predicate. Values are only used verbatim (quoted: `"delete"`) when no JSON encoder could
  write them differently (the apiserver escapes `&<>` as `\\u0026`, others escape `/` or
  non-ASCII); otherwise the longest safe fragment of the value is the needle. Globs
  contribute their longest literal fragment. Numbers need their key (`"code":403`): such
  `compact` needles apply to lines written without spaces (Go, jq -c, orjson), and their
  `loose` twins (possibly none) to lines with spaces after colons.
* time bounds as `events.time_key` strings, cut to whole seconds for the byte check;
* `predicate(data)`: the exact test on a parsed event.

All filters combine with AND; repeated values of one filter with OR.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubectl_audit.errors import UsageError
from kubectl_audit.logs import events
from kubectl_audit.logs.events import key_of_datetime

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_GLOB_CHARS = frozenset("*?[")
# Characters some JSON encoder may write as an escape sequence. Everything else printable
# ASCII is written as itself by every encoder we know of.
_UNSAFE = frozenset('"\\<>&/') | {chr(c) for c in range(0x20)} | {"\x7f"}
_MIN_FRAGMENT = 3
_CODE = re.compile(r"([1-5])(\d\d|xx|XX)")


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """`RESOURCE[.GROUP][/SUBRESOURCE]`: `pods`, `deployments.apps`, `pods/exec`, `pods/*`.

    Like an audit policy: `pods` means the pods themselves (no subresource), `pods/*` pods
    and all their subresources. No group means any group; `core` or a trailing dot the
    core group.
    """

    resource: str
    group: str | None = None
    subresource: str | None = None

    @classmethod
    def parse(cls, text: str) -> ResourceSpec:
        head, slash, sub = text.partition("/")
        resource, dot, group = head.partition(".")
        if not resource or (slash and not sub) or "/" in sub:
            raise UsageError(
                f"invalid --resource {text!r}: use RESOURCE[.GROUP][/SUBRESOURCE], "
                "e.g. pods, deployments.apps, pods/exec, pods/*"
            )
        if dot and group in ("", "core"):
            group = ""
        return cls(resource, group if dot else None, sub if slash else None)

    def matches(self, ref: dict[str, Any]) -> bool:
        if ref.get("resource") != self.resource:
            return False
        if self.group is not None and (ref.get("apiGroup") or "") != self.group:
            return False
        sub = ref.get("subresource") or ""
        if self.subresource is None:
            return sub == ""
        return self.subresource == "*" or sub == self.subresource


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """`403` (exact) or `4xx` (a class)."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> CodeSpec:
        match = _CODE.fullmatch(text.strip())
        if not match:
            raise UsageError(f"invalid --code {text!r}: use an HTTP status like 403 or a class 4xx")
        if match.group(2).isdigit():
            code = int(text)
            return cls(code, code)
        base = int(match.group(1)) * 100
        return cls(base, base + 99)

    def matches(self, code: int | None) -> bool:
        return code is not None and self.low <= code <= self.high

    def needle(self) -> str:
        return str(self.low) if self.low == self.high else str(self.low // 100)


@dataclass(frozen=True)
class FilterSpec:
    """The filters of one query, as the user gave them (already validated)."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[ResourceSpec, ...] = ()
    namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    levels: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    codes: tuple[CodeSpec, ...] = ()
    failed: bool = False
    denied: bool = False
    source_ips: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()


def service_account_user(text: str) -> str:
    """`NS:NAME` -> `system:serviceaccount:NS:NAME` (globs allowed in either part)."""
    namespace, colon, name = text.partition(":")
    if not colon or not namespace or not name or ":" in name:
        raise UsageError(
            f"invalid --serviceaccount {text!r}: use NAMESPACE:NAME, e.g. kube-system:default"
        )
    return f"system:serviceaccount:{namespace}:{name}"


def choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    """Case-insensitive pick from `allowed`, returning the canonical spelling."""
    for candidate in allowed:
        if candidate.lower() == value.lower():
            return candidate
    raise UsageError(f"invalid {option} {value!r}: use one of {', '.join(allowed)}")


# --- needles ---------------------------------------------------------------------------


def is_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def _is_safe(text: str) -> bool:
    return text.isascii() and not any(c in _UNSAFE for c in text)


def literal_fragments(text: str) -> list[str]:
    """The pieces of `text` no JSON encoder escapes, split at glob and unsafe characters."""
    pieces = re.split(r"[*?]|\[[^\]]*\]?", text)
    fragments: list[str] = []
    for piece in pieces:
        current = ""
        for char in piece:
            if char.isascii() and char not in _UNSAFE:
                current += char
            else:
                fragments.append(current)
                current = ""
        fragments.append(current)
    return [f for f in fragments if f]


def _longest_fragment(text: str) -> bytes | None:
    fragments = literal_fragments(text)
    if not fragments:
        return None
    best = max(fragments, key=len)
    return best.encode() if len(best) >= _MIN_FRAGMENT else None


def _value_needles(key: str, value: str, *, exact: bool) -> tuple[bytes, bytes] | None:
    """(compact needle, loose needle) for one string value, or None if none is safe.

    Both are the quoted value alone, not `"key":"value"`: that works whatever the spacing
    around the colon, so no pass over the data is needed to find out how it is written,
    and costs little selectivity (the exact predicate drops the rare line that has the
    value under another key). `key` documents the field the value belongs to.
    """
    del key
    if exact and _is_safe(value):
        quoted = f'"{value}"'.encode()
        return quoted, quoted
    fragment = _longest_fragment(value)
    return (fragment, fragment) if fragment else None


@dataclass(frozen=True, slots=True)
class NeedleSet:
    """Alternatives (OR): a candidate line contains at least one."""

    compact: tuple[bytes, ...]
    loose: tuple[bytes, ...]

    @property
    def spacing_matters(self) -> bool:
        """Whether lines written with spaces after colons need the loose needles."""
        return self.compact != self.loose


def _needle_set(pairs: Iterable[tuple[bytes, bytes] | None]) -> NeedleSet | None:
    collected = list(pairs)
    if not collected or any(pair is None for pair in collected):
        # One alternative without a needle makes the whole OR unfilterable.
        return None
    compact = tuple(dict.fromkeys(pair[0] for pair in collected if pair))
    loose = tuple(dict.fromkeys(pair[1] for pair in collected if pair))
    return NeedleSet(compact, loose)


# --- the exact predicate -----------------------------------------------------------------


def _text_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Exact strings, or fnmatch globs (case-sensitive), any of them."""
    exact = {p for p in patterns if not is_glob(p)}
    globs = [re.compile(fnmatch.translate(p)) for p in patterns if is_glob(p)]
    if not globs:
        return exact.__contains__
    return lambda value: value in exact or any(g.match(value) for g in globs)


def _user_agent_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """Globs match the whole agent; plain text matches anywhere in it."""
    globs = [re.compile(fnmatch.translate(p)) for p in patterns if is_glob(p)]
    plain = [p for p in patterns if not is_glob(p)]
    return lambda value: any(p in value for p in plain) or any(g.match(value) for g in globs)


def _network_matcher(texts: tuple[str, ...]) -> Callable[[tuple[str, ...]], bool]:
    import ipaddress  # only for --source-ip

    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise UsageError(
                f"invalid --source-ip {text!r}: use an address or a CIDR like 10.0.0.0/8"
            ) from None

    def matches(ips: tuple[str, ...]) -> bool:
        for ip in ips:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                continue
            if any(address in network for network in networks):
                return True
        return False

    return matches


def _ip_needle(text: str) -> tuple[bytes, bytes] | None:
    """An IPv4 address or octet-aligned network as the text it starts with in the log."""
    import ipaddress

    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.version != 4 or network.prefixlen % 8:
        return None
    octets = str(network.network_address).split(".")[: network.prefixlen // 8]
    if len(octets) == 4:
        needle = f'"{".".join(octets)}"'.encode()
    elif octets:
        needle = ('"' + ".".join(octets) + ".").encode()
    else:
        return None
    return needle, needle


@dataclass(frozen=True)
class Matcher:
    """A compiled FilterSpec."""

    needle_sets: tuple[NeedleSet, ...]
    since_key: str | None
    until_key: str | None
    predicate: Callable[[dict[str, Any]], bool]

    @property
    def matches_everything(self) -> bool:
        return not self.needle_sets and self.since_key is None and self.until_key is None

    def literals_for_node(self) -> tuple[bytes, ...]:
        """Loose literals for a prefilter that runs elsewhere (`grep -F -e ...` on a node).

        The first needle set only: grep ORs its patterns, so one set is what it can do.
        """
        return self.needle_sets[0].loose if self.needle_sets else ()


def compile_filters(spec: FilterSpec) -> Matcher:
    checks: list[Callable[[dict[str, Any]], bool]] = []
    sets: list[NeedleSet | None] = []

    if spec.users:
        user_ok = _text_matcher(spec.users)

        def check_user(data: dict[str, Any]) -> bool:
            # The authenticated user or the one it impersonates: asking "what did bob do"
            # must find what an admin did as bob.
            name, impersonated = events.user_names(data)
            return user_ok(name) or (bool(impersonated) and user_ok(impersonated))

        checks.append(check_user)
        sets.append(
            _needle_set(_value_needles("username", u, exact=not is_glob(u)) for u in spec.users)
        )
    if spec.groups:
        group_ok = _text_matcher(spec.groups)
        checks.append(lambda data: any(group_ok(g) for g in events.user_groups(data)))
        sets.append(_needle_set(_element_needles(g) for g in spec.groups))
    if spec.verbs:
        verbs = frozenset(spec.verbs)
        checks.append(lambda data: data.get("verb") in verbs)
        sets.append(_needle_set(_value_needles("verb", v, exact=True) for v in spec.verbs))
    if spec.resources:
        resources = spec.resources
        checks.append(lambda data: any(r.matches(events.object_ref(data)) for r in resources))
        sets.append(
            _needle_set(_value_needles("resource", r.resource, exact=True) for r in resources)
        )
    if spec.namespaces:
        namespaces = frozenset(spec.namespaces)
        checks.append(lambda data: events.object_ref(data).get("namespace") in namespaces)
        sets.append(
            _needle_set(_value_needles("namespace", n, exact=True) for n in spec.namespaces)
        )
    if spec.names:
        name_ok = _text_matcher(spec.names)
        checks.append(lambda data: name_ok(_str(events.object_ref(data).get("name"))))
        sets.append(
            _needle_set(_value_needles("name", n, exact=not is_glob(n)) for n in spec.names)
        )
    if spec.levels:
        levels = frozenset(spec.levels)
        checks.append(lambda data: data.get("level") in levels)
        sets.append(_needle_set(_value_needles("level", v, exact=True) for v in spec.levels))
    if spec.stages:
        stages = frozenset(spec.stages)
        checks.append(lambda data: data.get("stage") in stages)
        sets.append(_needle_set(_value_needles("stage", v, exact=True) for v in spec.stages))
    if spec.codes:
        codes = spec.codes
        checks.append(lambda data: any(c.matches(events.response_code(data)) for c in codes))
        sets.append(_code_needles(c.needle() for c in codes))
    if spec.failed:
        checks.append(_failed)
        sets.append(NeedleSet(compact=(b'"code":4', b'"code":5', b'"stage":"Panic"'), loose=(b"",)))
    if spec.denied:
        checks.append(lambda data: events.decision(data) == "forbid")
        sets.append(NeedleSet(compact=(b'"forbid"',), loose=(b'"forbid"',)))
    if spec.source_ips:
        ip_ok = _network_matcher(spec.source_ips)
        checks.append(lambda data: ip_ok(events.source_ips(data)))
        sets.append(_needle_set(_ip_needle(ip) for ip in spec.source_ips))
    if spec.user_agents:
        agent_ok = _user_agent_matcher(spec.user_agents)
        checks.append(lambda data: agent_ok(_str(data.get("userAgent"))))
        sets.append(_needle_set(_loose_only(a) for a in spec.user_agents))

    since_key = key_of_datetime(spec.since) if spec.since else None
    until_key = key_of_datetime(spec.until) if spec.until else None
    if since_key and until_key and since_key > until_key:
        raise UsageError("--since is later than --until: nothing can match")
    if since_key or until_key:
        checks.append(_time_check(since_key, until_key))

    usable = tuple(s for s in sets if s is not None and all(s.compact))
    return Matcher(usable, since_key, until_key, _all_of(checks))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _element_needles(value: str) -> tuple[bytes, bytes] | None:
    """A list element has no key next to it: the quoted value, or a fragment of it."""
    if not is_glob(value) and _is_safe(value):
        quoted = f'"{value}"'.encode()
        return quoted, quoted
    return _loose_only(value)


def _loose_only(value: str) -> tuple[bytes, bytes] | None:
    fragment = _longest_fragment(value)
    return (fragment, fragment) if fragment else None


def _code_needles(codes: Iterable[str]) -> NeedleSet:
    texts = list(codes)
    compact = tuple(f'"code":{t}'.encode() for t in texts)
    # A bare digit is no needle on loose lines; b"" is found everywhere (no filtering).
    loose = tuple(t.encode() if len(t) == 3 else b"" for t in texts)
    return NeedleSet(compact, loose)


def _failed(data: dict[str, Any]) -> bool:
    code = events.response_code(data)
    return (code is not None and code >= 400) or data.get("stage") == "Panic"


def _time_check(since_key: str | None, until_key: str | None) -> Callable[[dict[str, Any]], bool]:
    def check(data: dict[str, Any]) -> bool:
        key = events.time_key(events.event_time(data))
        if not key:
            return False
        return (since_key is None or key >= since_key) and (until_key is None or key <= until_key)

    return check


def _all_of(checks: list[Callable[[dict[str, Any]], bool]]) -> Callable[[dict[str, Any]], bool]:
    if not checks:
        return lambda data: True
    if len(checks) == 1:
        return checks[0]
    return lambda data: all(check(data) for check in checks)
