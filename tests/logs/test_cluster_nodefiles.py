"""Choosing a node's log files from a listing, and unpacking streamed gzip. Pure."""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timezone

import pytest

from kubectl_audit.logs.nodefiles import LogFiles, new_backups
from kubectl_audit.logs.sources import BrokenInput, gunzip_chunks
from tests.conftest import TESTDATA

LOG = LogFiles("/var/log/kubernetes/audit", "audit.log")
# What the kubelet's /logs page or `ls` shows in a directory lumberjack writes to,
# including a backup caught while compressing and files of other logs.
LISTING = [
    "audit-2026-01-20T10-00-00.000.log.gz",
    "audit-2026-01-21T10-00-00.000.log",
    "audit-2026-01-21T10-00-00.000.log.gz",
    "audit-2026-01-22T10-00-00.000.log",
    "audit.log",
    "audit-webhook.log",
    "other-2026-01-21T10-00-00.000.log",
    "kube-apiserver.log",
]


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=timezone.utc)


def test_backups_oldest_first_uncompressed_twin_preferred() -> None:
    assert LOG.backups(LISTING) == [
        "audit-2026-01-20T10-00-00.000.log.gz",
        "audit-2026-01-21T10-00-00.000.log",
        "audit-2026-01-22T10-00-00.000.log",
    ]


def test_time_window_skips_backups_by_name() -> None:
    everything, skipped = LOG.choose(LISTING, None, None)
    assert everything == [*LOG.backups(LISTING), "audit.log"] and skipped == []
    # Events since the 21st noon: the backup rotated on the 21st at 10:00 holds none.
    recent, skipped = LOG.choose(LISTING, at(21, 12), None)
    assert recent == ["audit-2026-01-22T10-00-00.000.log", "audit.log"]
    assert skipped == ["audit-2026-01-20T10-00-00.000.log.gz", "audit-2026-01-21T10-00-00.000.log"]
    # Until the 20th at 09:00: only the first backup can hold such events.
    old, _ = LOG.choose(LISTING, None, at(20, 9))
    assert old == ["audit-2026-01-20T10-00-00.000.log.gz"]


def test_new_backups_are_rotations_since_the_last_listing() -> None:
    later = [*LISTING, "audit-2026-01-23T10-00-00.000.log"]
    later.remove("audit-2026-01-21T10-00-00.000.log")  # compressed meanwhile: not new
    assert new_backups(LOG, LOG.backups(LISTING), later) == ["audit-2026-01-23T10-00-00.000.log"]
    assert new_backups(LOG, LOG.backups(LISTING), LISTING) == []


def test_gunzip_streams_members_in_small_pieces() -> None:
    data = (TESTDATA / "audit-logs" / "minikube-v1.34-audit-extract.jsonl").read_bytes()
    half = len(data) // 2
    packed = gzip.compress(data[:half]) + gzip.compress(data[half:])  # two members
    pieces = [packed[i : i + 1000] for i in range(0, len(packed), 1000)]
    assert b"".join(gunzip_chunks(iter(pieces), "x")) == data


def test_gunzip_of_a_cut_stream_yields_what_it_had_then_says_why() -> None:
    data = b"".join(b'{"n":%d}\n' % i for i in range(5000))
    packed = gzip.compress(data)
    out = bytearray()
    with pytest.raises(BrokenInput, match=re.escape("node:/a.log.gz: compressed data ended")):
        for chunk in gunzip_chunks(iter([packed[: len(packed) // 2]]), "node:/a.log.gz"):
            out += chunk
    assert out and data.startswith(bytes(out))


def test_gunzip_of_a_corrupt_stream_yields_what_came_before_then_says_why() -> None:
    data = b"".join(b'{"n":%d}\n' % i for i in range(5000))
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF  # a wrong CRC: zlib refuses the member at its very end
    pieces = [bytes(packed[i : i + 100]) for i in range(0, len(packed), 100)]
    out = bytearray()
    with pytest.raises(BrokenInput, match=re.escape("node:/a.log.gz: ")):
        for chunk in gunzip_chunks(iter(pieces), "node:/a.log.gz"):
            out += chunk
    # All but what zlib held in the call that found the damage: nothing already inflated
    # is dropped for the error.
    assert data.startswith(bytes(out)) and len(out) > len(data) // 2
