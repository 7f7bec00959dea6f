"""Durations and timestamps as kubectl users write them (`90s`, `1h30m`, `2d`, RFC 3339)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str, *, default_unit: str | None = None) -> timedelta:
    """Parse `1h30m`, `90s`, `2d`, `500ms`; a bare number takes `default_unit` if given."""
    value = text.strip()
    if default_unit and re.fullmatch(r"\d+(?:\.\d+)?", value):
        value += default_unit
    total = timedelta()
    position = 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not value or position != len(value):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 15m, 2h, 1h30m, 7d"
        )
    return total


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An RFC 3339 timestamp, or a duration meaning "that long ago". Always timezone-aware."""
    value = text.strip()
    try:
        ago = parse_duration(value)
    except ValueError:
        pass
    else:
        return (now or datetime.now(timezone.utc)) - ago
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use a duration (e.g. 1h) or RFC 3339 "
            "(e.g. 2026-11-28T10:00:00Z)"
        ) from None


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp as the API writes them (`...Z`); no offset means UTC.

    Always timezone-aware; ValueError when `text` is not one.
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
