from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kubectl_audit.durations import parse_duration, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "1x", "h", "1h 30m", "-5m", "1m1"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_bare_number_takes_default_unit() -> None:
    assert parse_duration("10", default_unit="s") == timedelta(seconds=10)


def test_parse_time_relative_and_absolute() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert parse_time("2h", now=now) == datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    assert parse_time("2026-11-28T10:00:00Z") == datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    assert parse_time("2026-11-28T10:00:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="invalid time"):
        parse_time("yesterday")
