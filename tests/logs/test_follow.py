"""`-f`: a writer thread appends real events and rotates the log the way lumberjack does
(rename to the backup name, create a new file); every event must come out exactly once."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from kubectl_audit.logs.filters import FilterSpec, compile_filters
from kubectl_audit.logs.follow import Tail, follow
from kubectl_audit.logs.output import JsonLinesRenderer
from kubectl_audit.logs.query import run
from kubectl_audit.logs.scan import Problems
from kubectl_audit.logs.sources import FileSet, backup_name, file_sets
from tests.conftest import ROOT
from tests.logs.conftest import MINIKUBE

EVENTS = [line for line in MINIKUBE.read_bytes().splitlines() if line.strip()][:12]
WAIT = 20.0  # upper bound for any single wait; normally a fraction of a second


def rotate(current: Path) -> Path:
    """What lumberjack does: rename to `<stem>-<UTC time><ext>`, open a new empty file."""
    backup = current.with_name(backup_name(current, datetime.now(timezone.utc)))
    current.rename(backup)
    current.write_bytes(b"")
    os.chmod(current, 0o600)
    return backup


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def writer(current: Path) -> None:
    """Two events, a half line, its rest, rotation, two more, rotation, one more."""
    time.sleep(0.3)
    append(current, EVENTS[3] + b"\n" + EVENTS[4] + b"\n")
    time.sleep(0.3)
    append(current, EVENTS[5][:50])
    time.sleep(0.3)
    append(current, EVENTS[5][50:] + b"\n")
    time.sleep(0.2)
    rotate(current)
    time.sleep(0.1)
    append(current, EVENTS[6] + b"\n" + EVENTS[7] + b"\n")
    time.sleep(0.3)
    rotate(current)
    append(current, EVENTS[8] + b"\n")


def test_follow_survives_rotation_and_partial_lines(tmp_path: Path) -> None:
    current = tmp_path / "audit.log"
    current.write_bytes(b"".join(line + b"\n" for line in EVENTS[:3]))
    sources = file_sets([str(current)])
    matcher = compile_filters(FilterSpec())
    out = io.BytesIO()
    renderer = JsonLinesRenderer(out)
    problems = Problems()
    run(sources, matcher, renderer, problems)
    assert renderer.count == 3
    thread = threading.Thread(target=writer, args=(current,), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    sets = [s for s in sources if isinstance(s, FileSet)]
    follow(
        sets,
        matcher,
        renderer,
        problems,
        limit=9,
        stop=lambda: time.monotonic() > deadline,
        interval=0.05,
    )
    thread.join(timeout=WAIT)
    assert out.getvalue().splitlines() == EVENTS[:9]
    assert problems.total == 0


def test_follow_applies_the_filters(tmp_path: Path) -> None:
    current = tmp_path / "audit.log"
    current.write_bytes(b"")
    sources = file_sets([str(current)])
    matcher = compile_filters(FilterSpec(verbs=("watch",)))
    out = io.BytesIO()
    renderer = JsonLinesRenderer(out)
    problems = Problems()
    run(sources, matcher, renderer, problems)
    expected = [line for line in EVENTS if b'"verb":"watch"' in line]
    assert 0 < len(expected) < len(EVENTS)

    def write_all() -> None:
        time.sleep(0.2)
        append(current, b"".join(line + b"\n" for line in EVENTS))

    thread = threading.Thread(target=write_all, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    follow(
        [s for s in sources if isinstance(s, FileSet)],
        matcher,
        renderer,
        problems,
        limit=len(expected),
        stop=lambda: time.monotonic() > deadline,
        interval=0.05,
    )
    thread.join(timeout=WAIT)
    assert out.getvalue().splitlines() == expected


def test_tail_rereads_a_file_truncated_in_place(tmp_path: Path) -> None:
    current = tmp_path / "audit.log"
    current.write_bytes(EVENTS[0] + b"\n" + EVENTS[1] + b"\n")
    tail = Tail(current)  # never read before: starts at the end
    assert list(tail.poll()) == []
    current.write_bytes(EVENTS[2] + b"\n")  # copytruncate-style: same inode, shorter
    blocks = list(tail.poll())
    assert [b.lines() for b in blocks] == [EVENTS[2] + b"\n"]
    tail.close()


def test_cli_follow_in_a_subprocess(tmp_path: Path) -> None:
    current = tmp_path / "audit.log"
    current.write_bytes(EVENTS[0] + b"\n")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubectl_audit",
            "logs",
            "--file",
            str(current),
            "-f",
            "-o",
            "jsonl",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip(b"\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=WAIT) == EVENTS[0]
        append(current, EVENTS[1] + b"\n")
        assert lines.get(timeout=WAIT) == EVENTS[1]
        rotate(current)
        append(current, EVENTS[2] + b"\n")
        assert lines.get(timeout=WAIT) == EVENTS[2]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=WAIT)
        reader.join(timeout=WAIT)
        if process.stderr:
            process.stderr.close()
        if process.stdout:
            process.stdout.close()
    assert process.returncode == 130


def test_follow_two_nodes_at_once(tmp_path: Path) -> None:
    paths = []
    for node in ("cp-1", "cp-2"):
        (tmp_path / node).mkdir()
        path = tmp_path / node / "audit.log"
        path.write_bytes(b"")
        paths.append(path)
    sources = file_sets([str(p) for p in paths])
    matcher = compile_filters(FilterSpec())
    out = io.BytesIO()
    renderer = JsonLinesRenderer(out)
    problems = Problems()
    run(sources, matcher, renderer, problems)

    def write_both() -> None:
        time.sleep(0.2)
        append(paths[0], EVENTS[0] + b"\n")
        append(paths[1], EVENTS[1] + b"\n")
        time.sleep(0.2)
        rotate(paths[1])
        append(paths[1], EVENTS[2] + b"\n")

    thread = threading.Thread(target=write_both, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    follow(
        [s for s in sources if isinstance(s, FileSet)],
        matcher,
        renderer,
        problems,
        limit=3,
        stop=lambda: time.monotonic() > deadline,
        interval=0.05,
    )
    thread.join(timeout=WAIT)
    assert sorted(out.getvalue().splitlines()) == sorted(EVENTS[:3])


def test_lines_written_between_reading_and_following_come_out_once(tmp_path: Path) -> None:
    current = tmp_path / "audit.log"
    current.write_bytes(EVENTS[0] + b"\n" + EVENTS[1][:40])  # the writer is mid-line
    sources = file_sets([str(current)])
    for source in sources:
        assert isinstance(source, FileSet)
        source.leave_tail_to_follower = True  # what the CLI does with -f
    matcher = compile_filters(FilterSpec())
    out = io.BytesIO()
    renderer = JsonLinesRenderer(out)
    problems = Problems()
    run(sources, matcher, renderer, problems)
    append(current, EVENTS[1][40:] + b"\n" + EVENTS[2] + b"\n")  # before -f starts polling
    deadline = time.monotonic() + WAIT
    follow(
        [s for s in sources if isinstance(s, FileSet)],
        matcher,
        renderer,
        problems,
        limit=3,
        stop=lambda: time.monotonic() > deadline,
        interval=0.05,
    )
    assert out.getvalue().splitlines() == EVENTS[:3]
    assert problems.total == 0  # the half line was being written, not truncated
