"""Run one query: scan every source, merge by time, apply --limit/--tail, render."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice

from kubectl_audit.logs.events import Event
from kubectl_audit.logs.filters import Matcher
from kubectl_audit.logs.merge import merge_by_time
from kubectl_audit.logs.output import Renderer
from kubectl_audit.logs.scan import Problems, Scanner
from kubectl_audit.logs.sources import LogSource


def matching_events(
    sources: Sequence[LogSource],
    matcher: Matcher,
    problems: Problems,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Event]:
    """Every matching event of every source, in time order."""
    streams = [
        Scanner(matcher, source.node, problems, progress).events(source) for source in sources
    ]
    return merge_by_time(streams)


def select(found: Iterator[Event], *, limit: int | None, tail: int | None) -> Iterator[Event]:
    """--tail N keeps the last N (a bounded deque); --limit N stops after N."""
    if tail is not None:
        found = iter(deque(found, maxlen=tail))
    if limit is not None:
        found = islice(found, limit)
    return found


def run(
    sources: Sequence[LogSource],
    matcher: Matcher,
    renderer: Renderer,
    problems: Problems,
    *,
    limit: int | None = None,
    tail: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Render the matching events; returns how many were rendered."""
    for event in select(
        matching_events(sources, matcher, problems, progress), limit=limit, tail=tail
    ):
        renderer.write(event)
    return renderer.count
