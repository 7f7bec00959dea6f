"""Log files: lumberjack names, rotated + gzipped sets, time-window skipping, documents,
broken input. Rotated sets are generated here from real events, named like lumberjack."""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_audit.errors import InputError
from kubectl_audit.logs.filters import FilterSpec, compile_filters
from kubectl_audit.logs.query import matching_events
from kubectl_audit.logs.scan import Problems
from kubectl_audit.logs.sources import (
    FileSet,
    LogName,
    StreamSource,
    backup_name,
    file_sets,
    find_backups,
    read_blocks,
)
from tests.logs.conftest import FALCO, MINIKUBE, OPENSHIFT, V1BETA1

UTC = timezone.utc


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def query(paths: list[str], spec: FilterSpec | None = None, **kwargs) -> tuple[list, Problems]:
    spec = spec or FilterSpec()
    problems = Problems()
    sources = file_sets(paths, since=spec.since, until=spec.until, **kwargs)
    return list(matching_events(sources, compile_filters(spec), problems)), problems


# --- names ---------------------------------------------------------------------------


def test_backup_names_follow_the_spec_examples() -> None:
    moment = datetime(2026, 7, 23, 14, 47, 51, 123456, tzinfo=UTC)
    assert backup_name(Path("/var/log/audit.log"), moment) == "audit-2026-07-23T14-47-51.123.log"
    assert backup_name(Path("/var/log/audit"), moment) == "audit-2026-07-23T14-47-51.123"
    assert (
        backup_name(Path("kube-audit.json.log"), moment)
        == "kube-audit.json-2026-07-23T14-47-51.123.log"
    )
    assert backup_name(Path("a.log"), moment, gz=True).endswith(".123.log.gz")


@pytest.mark.parametrize(
    ("name", "stem", "ext", "rotated", "gz"),
    [
        ("audit.log", "audit", ".log", False, False),
        ("audit-2026-07-23T14-47-51.123.log", "audit", ".log", True, False),
        ("audit-2026-07-23T14-47-51.123.log.gz", "audit", ".log", True, True),
        ("audit-2026-07-23T14-47-51.123", "audit", "", True, False),
        ("audit-2026-07-23T14-47-51.123.gz", "audit", "", True, True),
        ("kube-audit.json-2026-07-23T14-47-51.123.log", "kube-audit.json", ".log", True, False),
        ("audit", "audit", "", False, False),
    ],
)
def test_log_name_splits_like_lumberjack(name, stem, ext, rotated, gz) -> None:
    parsed = LogName.of(Path("/var/log") / name)
    assert (parsed.stem, parsed.ext, parsed.rotated_at is not None, parsed.gz) == (
        stem,
        ext,
        rotated,
        gz,
    )
    if rotated:
        assert parsed.rotated_at == datetime(2026, 7, 23, 14, 47, 51, 123000, tzinfo=UTC)


# --- a rotated set built from real events -------------------------------------------------


def write_rotated_set(
    directory: Path, events: list[bytes], parts: int, *, gzip_backups: bool
) -> Path:
    """Split real events (time ordered) into backups + current, named like lumberjack:
    each backup is named after the stage time of its last event plus a moment."""
    current = directory / "audit.log"
    size = -(-len(events) // parts)
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    for chunk in chunks[:-1]:
        last = json.loads(chunk[-1])["stageTimestamp"]
        rotated = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(milliseconds=1)
        data = b"".join(line + b"\n" for line in chunk)
        name = directory / backup_name(current, rotated, gz=gzip_backups)
        name.write_bytes(gzip.compress(data) if gzip_backups else data)
    current.write_bytes(b"".join(line + b"\n" for line in chunks[-1]))
    return current


def sorted_minikube() -> list[bytes]:
    return sorted(lines_of(MINIKUBE), key=lambda line: json.loads(line)["stageTimestamp"])


@pytest.mark.parametrize("gzip_backups", [False, True])
def test_current_log_brings_its_backups_in_time_order(tmp_path: Path, gzip_backups: bool) -> None:
    events = sorted_minikube()
    current = write_rotated_set(tmp_path, events, 4, gzip_backups=gzip_backups)
    (tmp_path / "other.log").write_bytes(b"")  # not part of the set
    assert len(find_backups(current)) == 3
    found, problems = query([str(current)])
    assert [e.raw for e in found] == events
    assert problems.total == 0
    assert {e.node for e in found} == {"audit.log"}


def test_a_backup_given_alone_is_read_alone(tmp_path: Path) -> None:
    events = sorted_minikube()
    current = write_rotated_set(tmp_path, events, 3, gzip_backups=True)
    first_backup = find_backups(current)[0]
    found, _ = query([str(first_backup)])
    assert 0 < len(found) < len(events)
    assert [e.raw for e in found] == events[: len(found)]


def test_backups_outside_the_window_are_not_opened(tmp_path: Path) -> None:
    events = sorted_minikube()
    current = write_rotated_set(tmp_path, events, 4, gzip_backups=True)
    backups = find_backups(current)
    # --since after the second rotation: the first two backups hold only older events.
    second = LogName.of(backups[1]).rotated_at
    assert second is not None
    since = second + timedelta(seconds=1)
    (source,) = file_sets([str(current)], since=since)
    assert isinstance(source, FileSet)
    assert source.skipped == backups[:2]
    # Corrupt the skipped ones: not reading them is then visible.
    for path in backups[:2]:
        path.write_bytes(b"\x1f\x8bnot gzip at all")
    found, problems = query([str(current)], FilterSpec(since=since))
    expected = [
        line for line in events if json.loads(line)["stageTimestamp"] >= since.isoformat()[:19]
    ]
    assert [e.raw for e in found] == expected
    assert problems.total == 0


def test_until_skips_files_started_well_after_it(tmp_path: Path) -> None:
    events = sorted_minikube()
    current = write_rotated_set(tmp_path, events, 4, gzip_backups=False)
    backups = find_backups(current)
    until = datetime.fromisoformat(json.loads(events[0])["stageTimestamp"].replace("Z", "+00:00"))
    until += timedelta(seconds=3)
    (source,) = file_sets([str(current)], until=until)
    assert isinstance(source, FileSet)
    # A file whose first event was written more than 5 minutes (the slack for buffered
    # writers) after --until holds nothing older; the current log is one of them here.
    assert current in source.skipped
    assert backups[0] in source.files
    found, _ = query([str(current)], FilterSpec(until=until))
    limit = until.strftime("%Y-%m-%dT%H:%M:%S.%f")
    expected = [line for line in events if json.loads(line)["stageTimestamp"][:26] <= limit]
    assert [e.raw for e in found] == expected


def test_two_nodes_merge_by_time(tmp_path: Path) -> None:
    events = sorted_minikube()
    (tmp_path / "node-a").mkdir()
    (tmp_path / "node-b").mkdir()
    a = tmp_path / "node-a" / "audit.log"
    b = tmp_path / "node-b" / "audit.log"
    a.write_bytes(b"".join(line + b"\n" for line in events[0::2]))
    b.write_bytes(b"".join(line + b"\n" for line in events[1::2]))
    found, _ = query([str(a), str(b)])
    assert [e.key for e in found] == sorted(e.key for e in found)
    assert {e.node for e in found} == {"node-a/audit.log", "node-b/audit.log"}
    assert len(found) == len(events)


# --- real files and broken input ----------------------------------------------------------


def test_v1beta1_log_parses_with_its_old_timestamp_field() -> None:
    found, problems = query([str(V1BETA1)])
    assert len(found) == 757  # PROVENANCE.md
    assert problems.total == 0
    assert all(e.key.startswith("2017-09-11T") for e in found)
    assert sum(e.stage == "ResponseComplete" for e in found) == 437


def test_pretty_printed_single_events_are_read_as_documents() -> None:
    found, problems = query(
        [
            str(OPENSHIFT / "raw_audit_kubernetes.pretty.json"),
            str(OPENSHIFT / "raw_audit_openshift.json"),
        ]
    )
    assert problems.total == 0
    assert len(found) == 2
    openshift = next(e for e in found if e.username == "system:aggregator")
    assert (openshift.uri, openshift.code) == ("/openapi/v2", 304)
    assert b"\n" not in openshift.raw


def test_json_array_file_is_read_as_a_document() -> None:
    found, problems = query([str(MINIKUBE.with_suffix(".json"))])
    assert len(found) == 511
    assert problems.total == 0


def test_falco_files_without_api_version_and_the_kind_zero_fuzz_case() -> None:
    paths = sorted(str(p) for p in FALCO.glob("*.json"))
    found, problems = query(paths)
    lines = sum(len(lines_of(Path(p))) for p in paths)
    assert lines == 52  # PROVENANCE.md
    assert len(found) == lines - 1
    assert sum(not e.data.get("apiVersion") for e in found) == 38  # 39 minus {"kind": 0}
    assert problems.not_event == 1  # {"kind": 0}
    assert problems.first is not None and problems.first[0].endswith("fal_01_003.json")


def test_truncated_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    events = lines_of(MINIKUBE)[:5]
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(line + b"\n" for line in events[:4]) + events[4][:100])
    found, problems = query([str(path)])
    assert [e.raw for e in found] == events[:4]
    assert (problems.truncated, problems.total) == (1, 1)
    summary = problems.summary()
    assert summary is not None and "truncated" in summary and "line 5" in summary


def test_truncated_last_line_is_counted_even_when_a_filter_skips_it(tmp_path: Path) -> None:
    events = lines_of(MINIKUBE)[:3]
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(line + b"\n" for line in events) + b'{"kind":"Ev')
    found, problems = query([str(path)], FilterSpec(users=("nobody-at-all",)))
    assert found == []
    assert problems.truncated == 1


def test_corrupt_and_invalid_utf8_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    events = lines_of(MINIKUBE)[:3]
    path = tmp_path / "audit.log"
    path.write_bytes(
        events[0]
        + b"\n"
        + b"garbage {\n"
        + events[1]
        + b"\n"
        + b'{"kind":"Event","x":"\xff"}\n'
        + events[2]
        + b"\n"
    )
    found, problems = query([str(path)])
    assert [e.raw for e in found] == events
    assert problems.not_json == 2
    summary = problems.summary()
    assert summary is not None and f"{path} at line 2" in summary


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "audit.log").write_bytes(b"")
    found, problems = query([str(tmp_path / "audit.log")])
    assert found == [] and problems.total == 0


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no-such\.log: no such file"):
        file_sets([str(tmp_path / "no-such.log")])
    with pytest.raises(InputError, match="is a directory"):
        file_sets([str(tmp_path)])


def test_stdin_stream(tmp_path: Path) -> None:
    data = MINIKUBE.read_bytes()
    sources = file_sets(["-"], stdin=io.BufferedReader(io.BytesIO(data)))
    assert isinstance(sources[0], StreamSource)
    found = list(matching_events(sources, compile_filters(FilterSpec()), Problems()))
    assert len(found) == 511


def test_long_lines_across_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubectl_audit.logs import sources

    monkeypatch.setattr(sources, "BLOCK_SIZE", 1000)  # lines are longer than a block
    events = lines_of(OPENSHIFT / "vrl-audit_in.log")
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(line + b"\n" for line in events))
    found, problems = query([str(path)])
    assert [e.raw for e in found] == events
    assert problems.total == 0
    found, _ = query([str(path)], FilterSpec(verbs=("get",)))
    assert [e.raw for e in found] == [line for line in events if json.loads(line)["verb"] == "get"]


def test_v1beta1_time_window_uses_its_timestamp_field() -> None:
    since = datetime(2017, 9, 11, 20, 0, tzinfo=UTC)
    found, _ = query([str(V1BETA1)], FilterSpec(since=since))
    expected = [
        line
        for line in lines_of(V1BETA1)
        if json.loads(line)["timestamp"] >= "2017-09-11T20:00:00Z"
    ]
    assert 0 < len(found) < 757
    assert [e.raw for e in found] == expected


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 4000), min_size=1, max_size=40),
    tail=st.sampled_from([b"", b'{"kind":"Ev', b"\n"]),
)
def test_blocks_hold_exactly_the_lines_whatever_the_chunking(cuts: list[int], tail: bytes) -> None:
    data = b"".join(line + b"\n" for line in lines_of(MINIKUBE)[:40]) + tail

    def chunks():
        position = 0
        for size in cuts * (len(data) // sum(cuts) + 1):
            if position >= len(data):
                return
            yield data[position : position + size]
            position += size

    blocks = list(read_blocks(chunks(), "mem"))
    assert b"".join(block.lines() for block in blocks) == data
    for block in blocks:
        assert data[block.offset + block.start : block.offset + block.stop] == block.lines()
        assert block.tail or block.lines().endswith(b"\n")


def test_gzip_backup_cut_short_keeps_what_it_has_and_warns(tmp_path: Path) -> None:
    events = sorted_minikube()
    current = write_rotated_set(tmp_path, events, 2, gzip_backups=True)
    (backup,) = find_backups(current)
    whole = backup.read_bytes()
    backup.write_bytes(whole[: len(whole) // 2])  # lumberjack was still compressing it
    found, problems = query([str(current)])
    raw = [e.raw for e in found]
    in_backup = len(events) - len(lines_of(current))
    assert 0 < raw.index(lines_of(current)[0]) < in_backup  # part of the backup, then current
    assert raw[-len(lines_of(current)) :] == lines_of(current)
    assert raw[: raw.index(lines_of(current)[0])] == events[: raw.index(lines_of(current)[0])]
    summary = problems.summary()
    assert summary is not None and summary.startswith("warning: could not read to the end: ")
    assert str(backup) in summary


def test_json_lines_with_a_broken_first_line_are_not_a_document(tmp_path: Path) -> None:
    events = lines_of(MINIKUBE)[:20]
    path = tmp_path / "audit.log"
    path.write_bytes(b'{"kind":"Event","auditI\n' + b"".join(line + b"\n" for line in events))
    found, problems = query([str(path)])
    assert [e.raw for e in found] == events
    assert problems.not_json == 1


def test_a_first_line_longer_than_the_sniff_window_is_a_json_line(tmp_path: Path) -> None:
    event = json.loads(lines_of(MINIKUBE)[0])
    event["annotations"]["padding"] = "x" * 200_000
    line = json.dumps(event, separators=(",", ":")).encode()
    path = tmp_path / "audit.log"
    path.write_bytes(line + b"\n" + lines_of(MINIKUBE)[1] + b"\n")
    found, problems = query([str(path)])
    assert [e.raw for e in found] == [line, lines_of(MINIKUBE)[1]]
    assert problems.total == 0


def test_time_window_block_skipping_matches_brute_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubectl_audit.logs import sources

    monkeypatch.setattr(sources, "BLOCK_SIZE", 3000)  # many small blocks, a few lines each
    events = sorted_minikube()
    # Write slightly out of order, as concurrent requests are: swap neighbours.
    shuffled = list(events)
    for i in range(0, len(shuffled) - 1, 5):
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(line + b"\n" for line in shuffled))
    stamps = sorted(json.loads(line)["stageTimestamp"] for line in events)
    for low, high in ((10, 200), (0, 50), (300, 510), (255, 256)):
        since = datetime.fromisoformat(stamps[low].replace("Z", "+00:00"))
        until = datetime.fromisoformat(stamps[high].replace("Z", "+00:00"))
        found, _ = query([str(path)], FilterSpec(since=since, until=until))
        expected = [
            line
            for line in shuffled
            if stamps[low] <= json.loads(line)["stageTimestamp"] <= stamps[high]
        ]
        assert [e.raw for e in found] == expected, (low, high)
