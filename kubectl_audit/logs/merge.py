"""Merge the events of several nodes into one stream ordered by event time.

Each node's log is already in time order (the apiserver writes it in stage-time order), so a
heap merge keeps one pending event per node: memory stays flat however long the logs are.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from operator import attrgetter

from kubectl_audit.logs.events import Event

_by_key = attrgetter("key")


def merge_by_time(streams: Sequence[Iterator[Event]]) -> Iterator[Event]:
    if len(streams) == 1:
        return iter(streams[0])
    return heapq.merge(*streams, key=_by_key)
