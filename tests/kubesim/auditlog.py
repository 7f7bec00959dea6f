"""Audit events in the real ``audit.k8s.io/v1`` shape, and the lumberjack log writer.

Event layout follows the real log in
/work/shared/testdata/audit-logs/minikube-v1.34-audit-extract.jsonl (field order, compact JSON,
microsecond timestamps). Rotation follows spec §6.5 (natefinch/lumberjack v2.2.1): name
``<stem>-<UTC YYYY-MM-DDTHH-MM-SS.mmm><ext>``, maxsize/maxbackup/maxage, optional gzip.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

_LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "log"})


def _ts(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _object_ref(record: Any) -> dict[str, str] | None:
    if not record.resource_request or not record.resource:
        return None
    ref: dict[str, str] = {"resource": record.resource}
    if record.namespace:
        ref["namespace"] = record.namespace
    if record.name:
        ref["name"] = record.name
    if record.api_group:
        ref["apiGroup"] = record.api_group
    if record.api_version:
        ref["apiVersion"] = record.api_version
    if record.subresource:
        ref["subresource"] = record.subresource
    return ref


def _response_status(record: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"metadata": {}}
    body = record.response_object
    if isinstance(body, dict) and body.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if body.get(key) not in (None, "", {}):
                status[key] = body[key]
    status["code"] = record.code
    return status


def is_long_running(record: Any) -> bool:
    """Watches and streaming subresources also pass the ResponseStarted stage."""
    return record.verb == "watch" or (
        record.subresource in _LONG_RUNNING_SUBRESOURCES and record.subresource != "log"
    )


def build_events(record: Any, level: str, omit_stages: Iterable[str]) -> list[dict[str, Any]]:
    """The events one request produces at ``level`` (none at level None), in stage order."""
    if level == "None":
        return []
    omitted = set(omit_stages)
    stages = ["RequestReceived"]
    if is_long_running(record):
        stages.append("ResponseStarted")
    stages.append("ResponseComplete")
    events = []
    for stage in stages:
        if stage in omitted:
            continue
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "auditID": record.audit_id,
            "stage": stage,
            "requestURI": record.request_uri,
            "verb": record.verb,
            "user": {"username": record.user, "groups": list(record.groups)},
            "sourceIPs": [record.source_ip],
            "userAgent": record.user_agent,
        }
        ref = _object_ref(record)
        if ref is not None:
            event["objectRef"] = ref
        if stage != "RequestReceived":
            event["responseStatus"] = _response_status(record)
        # Bodies only for resource requests, from level Request up (spec §2).
        if record.resource_request and level in ("Request", "RequestResponse"):
            if record.request_object is not None:
                event["requestObject"] = record.request_object
            if (
                level == "RequestResponse"
                and stage == "ResponseComplete"
                and record.response_object is not None
            ):
                event["responseObject"] = record.response_object
        event["requestReceivedTimestamp"] = _ts(record.received)
        event["stageTimestamp"] = _ts(
            record.received if stage == "RequestReceived" else record.completed
        )
        if stage != "RequestReceived":
            event["annotations"] = {
                "authorization.k8s.io/decision": record.decision,
                "authorization.k8s.io/reason": record.reason,
            }
        events.append(event)
    return events


# Go's encoding/json escapes these even inside strings (HTML-safe output), so the real log
# has `?a=1\u0026b=2` in requestURIs (see testdata/audit-logs/PROVENANCE.md).
_GO_ESCAPES = str.maketrans(
    {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def encode_event(event: dict[str, Any]) -> bytes:
    """One compact JSON line, escaped the way Go's json.Marshal escapes."""
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False).translate(_GO_ESCAPES)
    return text.encode() + b"\n"


# ---------------------------------------------------------------- lumberjack


@dataclass(frozen=True)
class RotationConfig:
    max_bytes: int  # 0 = never rotate (1.36 --audit-log-maxsize=0)
    max_backups: int
    max_age_days: int
    compress: bool


_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S.%f"


def backup_name(path: Path, moment: datetime) -> Path:
    """``/var/log/audit.log`` -> ``/var/log/audit-2026-07-23T14-47-51.123.log`` (UTC, ms)."""
    base = path.name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    else:
        ext = "." + ext
    stamp = moment.astimezone(timezone.utc).strftime(_STAMP_FORMAT)[:-3]
    return path.with_name(f"{stem}-{stamp}{ext}")


def _stem_ext(path: Path) -> tuple[str, str]:
    stem, dot, ext = path.name.rpartition(".")
    return (stem, "." + ext) if dot else (path.name, "")


def list_backups(path: Path) -> list[tuple[datetime, Path]]:
    """Backups of ``path`` (plain or .gz), newest first, by the time in their name."""
    stem, ext = _stem_ext(path)
    pattern = re.compile(
        re.escape(stem + "-")
        + r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})"
        + re.escape(ext)
        + r"(\.gz)?"
    )
    found = []
    if not path.parent.is_dir():
        return found
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if not match:
            continue
        moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H-%M-%S.%f").replace(
            tzinfo=timezone.utc
        )
        found.append((moment, entry))
    found.sort(key=lambda item: (item[0], item[1].name), reverse=True)
    return found


class LumberjackWriter:
    """Appends lines to ``path`` and rotates it like lumberjack v2.2.1 (spec §6.5)."""

    def __init__(
        self, path: Path, config: RotationConfig, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.path = path
        self.config = config
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._opened = False
        self.dropped = 0
        # Set when the file is a bind-mount point: rename(2) fails with EBUSY, so every
        # rotation fails and, once the file is full, every event is lost (field notes:
        # kubernetes/website#27126 "can't rename log file ... device or resource busy").
        self.rename_blocked = False

    def write(self, data: bytes) -> bool:
        """False when the write is refused (longer than the whole limit), like lumberjack."""
        limit = self.config.max_bytes
        if limit and len(data) > limit:
            self.dropped += 1
            return False
        size = self.path.stat().st_size if self.path.exists() else 0
        if limit and (
            (not self._opened and size + len(data) >= limit)
            or (self._opened and size + len(data) > limit)
        ):
            if self.rename_blocked:
                self.dropped += 1
                return False
            self.rotate()
        elif not self._opened and limit:
            self._cleanup()
        self._opened = True
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True

    def rotate(self) -> None:
        mode = 0o600
        if self.path.exists():
            mode = self.path.stat().st_mode & 0o777
            os.replace(self.path, backup_name(self.path, self._clock()))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.close(fd)
        self._cleanup()

    def _cleanup(self) -> None:
        backups = list_backups(self.path)
        keep: list[tuple[datetime, Path]] = []
        remove: list[Path] = []
        if self.config.max_backups > 0:
            # A backup and its .gz twin count as one (lumberjack's millRunOnce).
            order = list(dict.fromkeys(entry.name.removesuffix(".gz") for _, entry in backups))
            kept_keys = set(order[: self.config.max_backups])
            for moment, entry in backups:
                if entry.name.removesuffix(".gz") in kept_keys:
                    keep.append((moment, entry))
                else:
                    remove.append(entry)
        else:
            keep = list(backups)
        if self.config.max_age_days > 0:
            cutoff = self._clock() - timedelta(days=self.config.max_age_days)
            remove.extend(entry for moment, entry in keep if moment < cutoff)
            keep = [(m, e) for m, e in keep if m >= cutoff]
        for entry in remove:
            entry.unlink(missing_ok=True)
        if self.config.compress:
            for _, entry in keep:
                if entry.suffix != ".gz" and entry.exists():
                    _gzip(entry)


def _gzip(path: Path) -> None:
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(target, path.stat().st_mode & 0o777)
    path.unlink()
