"""One audit event as we show it: the fields the table needs, plus the exact bytes of its line.

Events come from `audit.k8s.io/v1` and the older `v1beta1` (and hand-edited files with no
apiVersion at all), so every field is read defensively: a field of the wrong type reads as
absent instead of failing the whole query.

Time: an event's time is when the apiserver recorded that stage (`stageTimestamp`), which
is also the order the log is written in; v1beta1 logs from before 1.8 only have
`timestamp`. `time_key` turns any of them into a fixed-width UTC string, so keys compare as
strings (nanosecond precision, no parsing on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

_AUDIT_GROUP = "audit.k8s.io/"
DECISION_ANNOTATION = "authorization.k8s.io/decision"


def is_audit_event(data: Any) -> bool:
    """A JSON value that is an audit Event (kind `Event` or missing, audit.k8s.io or none)."""
    if type(data) is not dict:
        return False
    kind = data.get("kind", "Event")
    api_version = data.get("apiVersion", _AUDIT_GROUP)
    return (
        kind == "Event"
        and isinstance(api_version, str)
        and api_version.startswith(_AUDIT_GROUP)
        and ("auditID" in data or "requestURI" in data)
    )


def time_key(value: str) -> str:
    """`2026-01-21T19:14:04.978817Z` -> `2026-01-21T19:14:04.978817000` (UTC, fixed width).

    Returns "" for a value that is not an RFC 3339 time, so such events sort first.
    """
    if len(value) >= 20 and value[-1] in "Zz" and value[10] in "Tt":
        head, _, fraction = value[:-1].partition(".")
        if len(head) == 19 and (not fraction or fraction.isdigit()):
            return f"{head}.{fraction[:9]:0<9}"
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except (ValueError, TypeError):
        return ""
    return key_of_datetime(parsed)


def key_of_datetime(moment: datetime) -> str:
    """The `time_key` of an aware (or naive = UTC) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000"


def datetime_of_key(key: str) -> datetime | None:
    if not key:
        return None
    return datetime.strptime(key[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)


def _text(value: Any) -> str:
    return value if type(value) is str else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def event_time(data: dict[str, Any]) -> str:
    """The raw time text of an event: stageTimestamp, else the older fields."""
    for field in ("stageTimestamp", "requestReceivedTimestamp", "timestamp"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value
    return _text(_mapping(data.get("metadata")).get("creationTimestamp"))


def user_names(data: dict[str, Any]) -> tuple[str, str]:
    """(authenticated username, impersonated username or "")."""
    return (
        _text(_mapping(data.get("user")).get("username")),
        _text(_mapping(data.get("impersonatedUser")).get("username")),
    )


def user_groups(data: dict[str, Any]) -> tuple[str, ...]:
    groups: list[str] = []
    for field in ("user", "impersonatedUser"):
        value = _mapping(data.get(field)).get("groups")
        if isinstance(value, list):
            groups.extend(g for g in value if isinstance(g, str))
    return tuple(groups)


def object_ref(data: dict[str, Any]) -> dict[str, Any]:
    return _mapping(data.get("objectRef"))


def response_code(data: dict[str, Any]) -> int | None:
    code = _mapping(data.get("responseStatus")).get("code")
    return code if type(code) is int else None


def source_ips(data: dict[str, Any]) -> tuple[str, ...]:
    value = data.get("sourceIPs")
    if not isinstance(value, list):
        return ()
    return tuple(ip for ip in value if isinstance(ip, str))


def decision(data: dict[str, Any]) -> str:
    return _text(_mapping(data.get("annotations")).get(DECISION_ANNOTATION))


@dataclass(frozen=True, slots=True, eq=False)
class Event:
    """The view of one audit event that the renderers use.

    Only what every event needs is computed up front (the merge key and the bytes); the
    shown fields are read from the parsed event when a renderer asks, so `-o jsonl` of a
    big unfiltered log does not pay for table columns it never prints.
    """

    node: str
    key: str  # time_key of the event time; the merge order
    time: str  # RFC 3339 text as written
    raw: bytes  # the line exactly as in the log (without its newline)
    data: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any], raw: bytes, node: str) -> Event:
        when = data.get("stageTimestamp")
        if type(when) is not str or not when:
            when = event_time(data)
        return cls(node, time_key(when), when, raw, data)

    @property
    def received(self) -> str:
        return _text(self.data.get("requestReceivedTimestamp"))

    @property
    def username(self) -> str:
        return user_names(self.data)[0]

    @property
    def impersonated(self) -> str:
        return user_names(self.data)[1]

    @property
    def verb(self) -> str:
        return _text(self.data.get("verb"))

    @property
    def resource(self) -> str:
        return _text(object_ref(self.data).get("resource"))

    @property
    def subresource(self) -> str:
        return _text(object_ref(self.data).get("subresource"))

    @property
    def api_group(self) -> str:
        return _text(object_ref(self.data).get("apiGroup"))

    @property
    def namespace(self) -> str:
        return _text(object_ref(self.data).get("namespace"))

    @property
    def name(self) -> str:
        return _text(object_ref(self.data).get("name"))

    @property
    def uri(self) -> str:
        return _text(self.data.get("requestURI"))

    @property
    def code(self) -> int | None:
        return response_code(self.data)

    @property
    def stage(self) -> str:
        return _text(self.data.get("stage"))

    @property
    def level(self) -> str:
        return _text(self.data.get("level"))

    @property
    def source_ips(self) -> tuple[str, ...]:
        return source_ips(self.data)

    @property
    def user_agent(self) -> str:
        return _text(self.data.get("userAgent"))

    @property
    def user(self) -> str:
        """`alice`, or `system:admin as bob` for an impersonated request."""
        if self.impersonated:
            return f"{self.username} as {self.impersonated}"
        return self.username

    @property
    def resource_text(self) -> str:
        """`pods/exec`, `deployments.apps`, or the URI path for a non-resource request."""
        if not self.resource:
            return self.uri.partition("?")[0]
        text = self.resource
        if self.api_group:
            text += "." + self.api_group
        if self.subresource:
            text += "/" + self.subresource
        return text

    @property
    def object_text(self) -> str:
        if self.namespace and self.name and self.resource != "namespaces":
            return f"{self.namespace}/{self.name}"
        return self.name or self.namespace

    @property
    def latency_ms(self) -> float | None:
        """stageTimestamp - requestReceivedTimestamp, in milliseconds."""
        if not self.received or not self.key:
            return None
        start = datetime_of_key(time_key(self.received))
        end = datetime_of_key(self.key)
        if start is None or end is None:
            return None
        return (end - start).total_seconds() * 1000
