"""Renderers for `kubectl audit logs`: streaming, one event at a time, to a binary stream.

* `table`/`wide`: kubectl-style columns. Widths come from the first rows (up to
  `TABLE_BATCH`, or whatever arrived before `flush()` in follow mode); later rows keep
  those widths and longer cells just push the line out, so output never waits for the end.
  TIME is the event's stage time in RFC 3339 UTC to the second (`2026-01-21T10:00:01Z`).
* `jsonl`: the matching lines byte-for-byte as in the log (documents read from a
  whole-file JSON file are re-emitted compact).
* `json`: `{"apiVersion":"audit.k8s.io/v1","kind":"EventList","items":[...]}`, streamed.
* `yaml`: one YAML document per event (`---` separated).
* `Stats`: what makes the log big: top users, verbs, resources, namespaces, codes, agents,
  by events and bytes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from kubectl_audit import jsonfast
from kubectl_audit.logs.events import Event

TABLE_BATCH = 200
FORMATS = ("table", "wide", "json", "jsonl", "yaml")
TABLE_HEADERS = ("TIME", "NODE", "USER", "VERB", "RESOURCE", "NAMESPACE/NAME", "CODE")
WIDE_HEADERS = (*TABLE_HEADERS, "STAGE", "LEVEL", "SOURCE-IP", "USER-AGENT", "LATENCY")


class Renderer(Protocol):
    count: int

    def write(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Emit whatever is held back (follow mode calls it when the logs go quiet)."""
        ...

    def close(self) -> None: ...


def short_time(event: Event) -> str:
    return f"{event.key[:19]}Z" if event.key else (event.time or "-")


def _latency(event: Event) -> str:
    value = event.latency_ms
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.1f}s"


def table_row(event: Event, wide: bool) -> tuple[str, ...]:
    row = (
        short_time(event),
        event.node,
        event.user or "-",
        event.verb or "-",
        event.resource_text or "-",
        event.object_text or "-",
        "-" if event.code is None else str(event.code),
    )
    if not wide:
        return row
    return (
        *row,
        event.stage or "-",
        event.level or "-",
        ",".join(event.source_ips) or "-",
        event.user_agent or "-",
        _latency(event),
    )


@dataclass
class TableRenderer:
    out: BinaryIO
    wide: bool = False
    count: int = 0
    _pending: list[tuple[str, ...]] = field(default_factory=list)
    _widths: list[int] | None = None

    @property
    def headers(self) -> tuple[str, ...]:
        return WIDE_HEADERS if self.wide else TABLE_HEADERS

    def write(self, event: Event) -> None:
        self.count += 1
        row = table_row(event, self.wide)
        if self._widths is None:
            self._pending.append(row)
            if len(self._pending) >= TABLE_BATCH:
                self.flush()
            return
        self._emit([row])

    def flush(self) -> None:
        if self._widths is None and self._pending:
            rows = [self.headers, *self._pending]
            self._widths = [max(len(r[i]) for r in rows) for i in range(len(self.headers))]
            self._pending = []
            self._emit(rows)
        self.out.flush()

    def _emit(self, rows: Sequence[tuple[str, ...]]) -> None:
        widths = self._widths or []
        text = "".join(
            "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
            for row in rows
        )
        self.out.write(text.encode())

    def close(self) -> None:
        self.flush()


@dataclass
class JsonLinesRenderer:
    out: BinaryIO
    count: int = 0

    def write(self, event: Event) -> None:
        self.count += 1
        self.out.write(event.raw + b"\n")

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


@dataclass
class JsonRenderer:
    out: BinaryIO
    count: int = 0

    def write(self, event: Event) -> None:
        if self.count == 0:
            self.out.write(b'{\n  "apiVersion": "audit.k8s.io/v1",\n  "kind": "EventList",\n')
            self.out.write(b'  "items": [\n')
        else:
            self.out.write(b",\n")
        self.count += 1
        item = jsonfast.dumps(event.data, pretty=True)
        self.out.write(b"    " + item.replace(b"\n", b"\n    "))

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if self.count == 0:
            self.out.write(b'{\n  "apiVersion": "audit.k8s.io/v1",\n  "kind": "EventList",\n')
            self.out.write(b'  "items": []\n}\n')
        else:
            self.out.write(b"\n  ]\n}\n")
        self.out.flush()


@dataclass
class YamlRenderer:
    out: BinaryIO
    count: int = 0

    def write(self, event: Event) -> None:
        from kubectl_audit.render import to_yaml  # PyYAML only when YAML is asked for

        self.count += 1
        self.out.write(b"---\n" + to_yaml(event.data).encode())

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def renderer_for(output: str, out: BinaryIO) -> Renderer:
    if output in ("table", "wide"):
        return TableRenderer(out, wide=output == "wide")
    if output == "jsonl":
        return JsonLinesRenderer(out)
    if output == "json":
        return JsonRenderer(out)
    if output == "yaml":
        return YamlRenderer(out)
    raise ValueError(f"unsupported output {output!r}")


# --- --stats -----------------------------------------------------------------------------

STATS_TOP = 10
_DIMENSIONS = ("user", "verb", "resource", "namespace", "code", "userAgent")


def _stat_values(event: Event) -> tuple[str, ...]:
    return (
        event.impersonated or event.username or "-",
        event.verb or "-",
        event.resource_text or "-",
        event.namespace or "-",
        "-" if event.code is None else str(event.code),
        event.user_agent.partition(" ")[0] or "-",
    )


@dataclass
class Stats:
    """Counts and bytes per user, verb, resource, ...: what makes the log big."""

    out: BinaryIO
    output: str = "table"
    count: int = 0
    size: int = 0
    first: str = ""
    last: str = ""
    _events: dict[str, Counter[str]] = field(
        default_factory=lambda: {d: Counter() for d in _DIMENSIONS}
    )
    _bytes: dict[str, Counter[str]] = field(
        default_factory=lambda: {d: Counter() for d in _DIMENSIONS}
    )

    def write(self, event: Event) -> None:
        self.count += 1
        size = len(event.raw) + 1
        self.size += size
        if event.key:
            if not self.first or event.key < self.first:
                self.first = event.key
            self.last = max(self.last, event.key)
        for dimension, value in zip(_DIMENSIONS, _stat_values(event), strict=True):
            self._events[dimension][value] += 1
            self._bytes[dimension][value] += size

    def flush(self) -> None:
        return None

    def summary(self) -> dict[str, Any]:
        tops: dict[str, Any] = {}
        for dimension in _DIMENSIONS:
            ranked = self._bytes[dimension].most_common(STATS_TOP)
            tops[dimension] = [
                {"value": v, "events": self._events[dimension][v], "bytes": b} for v, b in ranked
            ]
        return {
            "events": self.count,
            "bytes": self.size,
            "from": f"{self.first[:19]}Z" if self.first else None,
            "to": f"{self.last[:19]}Z" if self.last else None,
            "top": tops,
        }

    def close(self) -> None:
        from kubectl_audit.render import to_json, to_yaml

        summary = self.summary()
        if self.output in ("json", "jsonl"):
            self.out.write(to_json(summary).encode() + b"\n")
        elif self.output == "yaml":
            self.out.write(to_yaml(summary).encode())
        else:
            self.out.write(self._text(summary).encode())
        self.out.flush()

    def _text(self, summary: dict[str, Any]) -> str:
        lines = [
            f"{summary['events']} events, {_size(summary['bytes'])}"
            + (f", {summary['from']} to {summary['to']}" if summary["from"] else ""),
        ]
        for dimension in _DIMENSIONS:
            rows = summary["top"][dimension]
            if not rows:
                continue
            header = ("TOP " + dimension.upper(), "EVENTS", "BYTES", "SHARE")
            cells = [header] + [
                (
                    r["value"],
                    str(r["events"]),
                    _size(r["bytes"]),
                    f"{100 * r['bytes'] / max(summary['bytes'], 1):.1f}%",
                )
                for r in rows
            ]
            widths = [max(len(c[i]) for c in cells) for i in range(4)]
            lines.append("")
            lines.extend(
                "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in cells
            )
        return "\n".join(lines) + "\n"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# --- progress ----------------------------------------------------------------------------


@dataclass
class Progress:
    """A progress bar on a terminal's stderr, shown once reading takes more than `delay`."""

    stream: Any
    total: int | None
    delay: float = 2.0
    done: int = 0
    _started: float = field(default_factory=time.monotonic)
    _drawn_at: float = 0.0
    _shown: bool = False

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._started < self.delay or now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        self._shown = True
        rate = self.done / max(now - self._started, 1e-6) / 1e6
        if self.total:
            share = min(self.done / self.total, 0.99)
            bar = "#" * int(share * 30)
            text = f"\r[{bar:<30}] {share:4.0%} {self.done / 1e6:,.0f}/{self.total / 1e6:,.0f} MB"
        else:
            text = f"\r{self.done / 1e6:,.0f} MB"
        self.stream.write(f"{text} {rate:,.0f} MB/s ")
        self.stream.flush()

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
            self._shown = False
