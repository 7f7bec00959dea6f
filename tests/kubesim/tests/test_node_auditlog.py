"""Audit events in the real format, and lumberjack rotation (spec §6.5)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import TESTDATA
from tests.kubesim import auditlog
from tests.kubesim.requestinfo import RequestRecord

REAL_LOG = TESTDATA / "audit-logs/minikube-v1.34-audit-extract.jsonl"
T0 = datetime(2026, 7, 23, 14, 47, 51, 123456, tzinfo=timezone.utc)


def record(**kw: object) -> RequestRecord:
    base: dict[str, object] = {
        "audit_id": "b2bd3a24-ce50-418a-b1d6-08a6316f5604",
        "method": "POST",
        "request_uri": "/api/v1/namespaces/kube-system/pods",
        "path": "/api/v1/namespaces/kube-system/pods",
        "verb": "create",
        "user": "kubernetes-admin",
        "groups": ("kubeadm:cluster-admins", "system:authenticated"),
        "user_agent": "kubectl/v1.36.0 (linux/amd64) kubernetes/0000000",
        "source_ip": "127.0.0.1",
        "resource_request": True,
        "api_group": "",
        "api_version": "v1",
        "resource": "pods",
        "subresource": "",
        "namespace": "kube-system",
        "name": "",
        "code": 201,
        "received": T0,
        "completed": T0 + timedelta(milliseconds=7),
        "decision": "allow",
        "reason": "",
        "request_object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}},
        "response_object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}},
    }
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def real_events() -> Iterator[dict]:
    with REAL_LOG.open() as handle:
        for line in handle:
            yield json.loads(line)


def test_metadata_event_has_the_real_fields_in_the_real_order() -> None:
    ours = auditlog.build_events(record(), "Metadata", {"RequestReceived"})
    assert [e["stage"] for e in ours] == ["ResponseComplete"]
    real = next(
        e
        for e in real_events()
        if e["level"] == "Metadata" and e["stage"] == "ResponseComplete" and e["verb"] == "create"
    )
    assert list(ours[0]) == [k for k in real if k != "impersonatedUser"]
    assert ours[0]["objectRef"] == {
        "resource": "pods",
        "namespace": "kube-system",
        "apiVersion": "v1",
    }
    assert ours[0]["stageTimestamp"] == "2026-07-23T14:47:51.130456Z"
    line = auditlog.encode_event(ours[0])
    assert line.endswith(b"}\n") and b", " not in line  # compact, one per line


def test_lines_are_escaped_like_go() -> None:
    event = auditlog.build_events(
        record(request_uri="/api/v1/pods?limit=1&watch=true"), "Metadata", ()
    )
    line = auditlog.encode_event(event[-1])
    assert b'"requestURI":"/api/v1/pods?limit=1\\u0026watch=true"' in line
    assert json.loads(line)["requestURI"] == "/api/v1/pods?limit=1&watch=true"


def test_request_response_level_carries_bodies_and_received_stage_has_no_status() -> None:
    received, complete = auditlog.build_events(record(), "RequestResponse", ())
    assert received["stage"] == "RequestReceived"
    assert "responseStatus" not in received and "responseObject" not in received
    assert received["requestObject"]["metadata"]["name"] == "x"
    assert complete["responseObject"]["metadata"]["name"] == "x"
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}


def test_failure_status_and_watch_stages() -> None:
    status = {
        "kind": "Status",
        "status": "Failure",
        "message": 'pods is forbidden: User "bob" cannot watch resource "pods"',
        "reason": "Forbidden",
        "details": {"kind": "pods"},
        "code": 403,
    }
    events = auditlog.build_events(
        record(verb="watch", code=403, response_object=status, method="GET"), "Metadata", ()
    )
    assert [e["stage"] for e in events] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
    ]
    assert events[-1]["responseStatus"]["reason"] == "Forbidden"
    assert events[-1]["responseStatus"]["code"] == 403


def test_level_none_writes_nothing() -> None:
    assert auditlog.build_events(record(), "None", ()) == []


def test_backup_names_follow_lumberjack() -> None:
    assert auditlog.backup_name(Path("/var/log/audit.log"), T0) == Path(
        "/var/log/audit-2026-07-23T14-47-51.123.log"
    )
    assert auditlog.backup_name(Path("/var/log/audit"), T0) == Path(
        "/var/log/audit-2026-07-23T14-47-51.123"
    )
    assert auditlog.backup_name(Path("/x/kube-audit.json.log"), T0).name == (
        "kube-audit.json-2026-07-23T14-47-51.123.log"
    )


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_rotation_keeps_maxbackup_newest(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    writer = auditlog.LumberjackWriter(path, auditlog.RotationConfig(100, 2, 0, False), Clock())
    for _ in range(10):
        assert writer.write(b"x" * 59 + b"\n")
    backups = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log")
    # nine rotations, one clock tick each: only the two newest backups stay
    assert backups == ["audit-2026-07-23T14-47-59.123.log", "audit-2026-07-23T14-48-00.123.log"]
    assert path.stat().st_size == 60
    assert path.stat().st_mode & 0o777 == 0o600


def test_first_write_rotates_an_existing_full_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"y" * 40)
    writer = auditlog.LumberjackWriter(path, auditlog.RotationConfig(100, 0, 0, False), Clock())
    writer.write(b"z" * 60)  # 40 + 60 >= 100 on the first write: rotate first
    assert path.read_bytes() == b"z" * 60
    writer.write(b"z" * 40)  # later writes rotate only when strictly over the limit
    assert path.stat().st_size == 100
    assert not writer.write(b"w" * 101)  # longer than the whole file: refused, event lost
    assert writer.dropped == 1


def test_compress_gzips_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    writer = auditlog.LumberjackWriter(path, auditlog.RotationConfig(64, 0, 0, True), Clock())
    for i in range(3):
        writer.write(f"{i:063d}\n".encode())
    gz = sorted(tmp_path.glob("audit-*.log.gz"))
    assert len(gz) == 2 and not list(tmp_path.glob("audit-*.log"))
    assert gzip.decompress(gz[0].read_bytes()) == f"{0:063d}\n".encode()


def test_maxage_removes_old_backups(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    old = tmp_path / "audit-2026-07-01T00-00-00.000.log"
    old.write_text("old\n")
    fresh = tmp_path / "audit-2026-07-23T00-00-00.000.log.gz"
    fresh.write_bytes(gzip.compress(b"fresh\n"))
    writer = auditlog.LumberjackWriter(path, auditlog.RotationConfig(1000, 0, 7, False), Clock())
    writer.write(b"first\n")  # the first open runs the clean-up pass
    assert not old.exists() and fresh.exists()
