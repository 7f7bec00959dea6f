"""The node-side commands of `logs --via debug-pod`, run by real shells on real files.

The node runs them as `chroot /host sh -c ...`; here the same argv runs under busybox sh
(the debug image's and kubesim's) and dash (Debian's /bin/sh), so the shell code must be
plain POSIX. What they print is what crosses the exec stream: gzip of the candidate lines.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from kubectl_audit.logs.nodefiles import LogFiles
from kubectl_audit.logs.nodeshell import (
    ReadReport,
    backup_regex,
    backups_command,
    current_command,
    follow_command,
)
from tests.conftest import TESTDATA

SHELLS = [s for s in (("busybox", "sh"), ("dash",)) if shutil.which(s[0])]
EXTRACT = TESTDATA / "audit-logs" / "minikube-v1.34-audit-extract.jsonl"
B1 = "audit-2026-01-20T10-00-00.000.log"
B2 = "audit-2026-01-21T10-00-00.000.log"
B3 = "audit-2026-01-22T10-00-00.000.log"


@pytest.fixture(params=SHELLS, ids=[s[0] for s in SHELLS])
def shell(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return request.param


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    """A log directory as lumberjack leaves it: backups (one gzipped), the current log,
    and files of other logs that must not be read."""
    lines = EXTRACT.read_bytes().splitlines(keepends=True)
    third = len(lines) // 4
    (tmp_path / B1).write_bytes(b"".join(lines[:third]))
    (tmp_path / (B2 + ".gz")).write_bytes(gzip.compress(b"".join(lines[third : 2 * third])))
    (tmp_path / B3).write_bytes(b"".join(lines[2 * third : 3 * third]))
    (tmp_path / "audit.log").write_bytes(b"".join(lines[3 * third :]))
    (tmp_path / "audit-other.log").write_bytes(lines[0])
    (tmp_path / "kube-apiserver.log").write_bytes(lines[0])
    return tmp_path


def run(shell: tuple[str, ...], argv: list[str], *, check: bool = True) -> tuple[bytes, ReadReport]:
    assert argv[:2] == ["sh", "-c"]
    done = subprocess.run([*shell, *argv[1:]], capture_output=True, timeout=30, check=check)
    return (gzip.decompress(done.stdout) if done.stdout else b""), ReadReport.parse(done.stderr)


def grep(path_data: bytes, *stages: tuple[bytes, ...]) -> bytes:
    kept = [
        line
        for line in path_data.splitlines(keepends=True)
        if all(any(lit in line for lit in stage) for stage in stages)
    ]
    return b"".join(kept)


def whole(logdir: Path, *names: str) -> bytes:
    out = b""
    for name in names:
        path = logdir / name
        out += (
            path.read_bytes()
            if path.exists()
            else gzip.decompress((logdir / (name + ".gz")).read_bytes())
        )
    return out


def test_backups_between_two_names_in_order_gunzipped(shell, logdir: Path) -> None:
    log = LogFiles(str(logdir), "audit.log")
    stages = ((b'"system:kube-scheduler"', b'"system:kube-controller-manager"'), (b'"get"',))
    data, report = run(shell, backups_command(str(logdir), backup_regex(log), B1, B3, stages))
    assert report == ReadReport(None, False, b"")
    expected = grep(whole(logdir, B1, B2, B3), *stages)
    assert expected and data == expected
    # Only the middle one (listed uncompressed, found compressed), without a prefilter.
    data, _ = run(shell, backups_command(str(logdir), backup_regex(log), B2, B2, ()))
    assert data == whole(logdir, B2)


def test_a_pruned_backup_is_skipped(shell, logdir: Path) -> None:
    log = LogFiles(str(logdir), "audit.log")
    (logdir / B1).unlink()  # maxbackup deleted it after our listing
    data, report = run(shell, backups_command(str(logdir), backup_regex(log), B1, B3, ()))
    assert report.errors == b"" and data == whole(logdir, B2, B3)


def test_current_log_up_to_its_size_with_a_quote_in_a_literal(shell, logdir: Path) -> None:
    log = LogFiles(str(logdir), "audit.log")
    current = logdir / "audit.log"
    current.write_bytes(current.read_bytes() + b'{"user":{"username":"o\'brien"}}\n')
    stages = ((b"o'brien",),)
    data, report = run(shell, current_command(str(current), backup_regex(log), B3, stages))
    assert data == b'{"user":{"username":"o\'brien"}}\n'
    assert report == ReadReport(current.stat().st_size, False, b"")


def test_current_log_rotated_after_the_listing_is_reported_not_read(shell, logdir: Path) -> None:
    log = LogFiles(str(logdir), "audit.log")
    current = logdir / "audit.log"
    current.rename(logdir / "audit-2026-01-23T10-00-00.000.log")
    current.write_bytes(b"")
    data, report = run(shell, current_command(str(current), backup_regex(log), B3, ()))
    assert data == b"" and report.rotated and report.size is None


def test_unreadable_current_log_is_an_error_on_stderr(shell, logdir: Path) -> None:
    log = LogFiles(str(logdir), "audit.log")
    (logdir / "audit.log").unlink()
    argv = current_command(str(logdir / "audit.log"), backup_regex(log), B3, ())
    _, report = run(shell, argv, check=False)
    assert b"audit.log" in report.errors and not report.rotated


def test_long_literals_fall_back_to_sending_more() -> None:
    many = tuple(b'"user-%04d"' % i for i in range(400))
    argv = current_command("/var/log/a/audit.log", "x", "", (many, (b'"get"',)))
    assert len(" ".join(argv)) < 6000 and "-e '\"get\"'" in argv[2] and "user-0001" not in argv[2]


def test_follow_command() -> None:
    assert follow_command("/l/audit.log", 100) == ["tail", "-c", "+101", "-F", "/l/audit.log"]
    assert follow_command("/l/audit.log", None) == ["tail", "-c", "0", "-F", "/l/audit.log"]


def test_backup_regex_escapes_the_name() -> None:
    regex = backup_regex(LogFiles("/x", "kube-apiserver.audit.log"))
    assert regex.startswith("^kube-apiserver[.]audit-[0-9]{4}") and regex.endswith(
        "[.]log([.]gz)?$"
    )
