"""Renderers and the progress bar."""

from __future__ import annotations

import io

from kubectl_audit.logs.events import Event, time_key
from kubectl_audit.logs.output import Progress, TableRenderer, table_row
from tests.logs.conftest import MINIKUBE, V1BETA1, json_lines


def events_of(path, node="cp-1") -> list[Event]:
    return [Event.of(data, b"{}", node) for data in json_lines(path)]


def test_time_keys_sort_as_text_whatever_the_precision() -> None:
    assert time_key("2026-01-21T19:14:04Z") == "2026-01-21T19:14:04.000000000"
    assert time_key("2026-01-21T19:14:04.5Z") == "2026-01-21T19:14:04.500000000"
    assert time_key("2026-01-21T21:14:04.123456+02:00") == "2026-01-21T19:14:04.123456000"
    assert time_key("yesterday") == ""
    assert time_key("2026-01-21T19:14:04Z") < time_key("2026-01-21T19:14:04.000001Z")


def test_rows_for_resource_non_resource_and_impersonated_requests() -> None:
    minikube = events_of(MINIKUBE)
    exec_event = next(e for e in minikube if e.subresource)
    row = table_row(exec_event, wide=False)
    assert row[4] == f"{exec_event.resource}/{exec_event.subresource}"
    non_resource = next(e for e in minikube if not e.resource)
    assert table_row(non_resource, wide=False)[4] == non_resource.uri.partition("?")[0]
    impersonated = events_of(V1BETA1)[0]
    assert table_row(impersonated, wide=False)[2] == "system:admin as bob"
    assert table_row(impersonated, wide=False)[0] == "2017-09-11T19:55:05Z"


def test_table_keeps_the_widths_of_its_first_rows_when_streaming() -> None:
    out = io.BytesIO()
    table = TableRenderer(out)
    events = events_of(MINIKUBE)[:3]
    for event in events:
        table.write(event)
    table.flush()  # what follow mode does when the log goes quiet
    first = out.getvalue().decode().splitlines()
    assert len(first) == 4
    table.write(events[0])
    table.close()
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 5 and lines[4] == lines[1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_after_its_delay_and_clears() -> None:
    stream = FakeTerminal()
    progress = Progress(stream, total=1000, delay=0.0)
    progress.advance(500)
    assert "50%" in stream.getvalue() and "MB/s" in stream.getvalue()
    progress.finish()
    assert stream.getvalue().endswith("\r")
    quiet = FakeTerminal()
    slow_start = Progress(quiet, total=1000, delay=3600)
    slow_start.advance(500)
    assert quiet.getvalue() == ""
