"""What the node itself says: the log directory and the policy file (pure analysis).

The I/O side (kubelet `/logs` proxy or the node agent) hands over one `LogSample` per file
of the audit log: its name, size, modification time and its first and last lines (a few
KiB at most, never whole files). From those come the oldest and newest event, the write
rate, and how far back the log reaches with the configured rotation.
"""

from __future__ import annotations

import posixpath
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kubectl_audit import jsonfast
from kubectl_audit.apiserver.cis import CisResult, benchmark_for, check_policy
from kubectl_audit.apiserver.problems import Problem, error, warning
from kubectl_audit.apiserver.state import AuditState, estimated_retention
from kubectl_audit.logs.events import datetime_of_key, event_time, time_key
from kubectl_audit.logs.sources import LogName

GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10
# No rate from less than this. A rate measured over less than TRUSTED_SPAN (a burst, a
# restart) only raises the retention warning when the log would not even last a day.
MIN_RATE_SPAN = timedelta(seconds=1)
TRUSTED_SPAN = timedelta(minutes=10)
SHORT_ANYWAY = timedelta(days=1)
# The newest event older than this while the apiserver runs: it is not writing here.
STALE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class LogSample:
    """One file of the audit log as read on the node (head/tail: raw bytes, maybe partial)."""

    name: str
    size: int
    mtime: datetime | None
    head: bytes = b""  # the file's first bytes (gzip-compressed for a .gz backup)
    tail: bytes = b""  # the file's last bytes (empty for backups: not needed)


@dataclass(frozen=True)
class LogFile:
    name: str
    size: int
    mtime: datetime | None
    rotated_at: datetime | None  # None: the current log
    compressed: bool
    first_event: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "modified": _iso(self.mtime),
            "rotatedAt": _iso(self.rotated_at),
            "compressed": self.compressed,
            "firstEvent": _iso(self.first_event),
        }


@dataclass(frozen=True)
class DeepLog:
    """The log directory on the node and what it implies."""

    via: str  # "kubelet /logs proxy" or "node-agent pod"
    directory: str  # on the node
    files: tuple[LogFile, ...]
    oldest_event: datetime | None
    newest_event: datetime | None
    rate_bytes_per_hour: float | None
    rate_span: timedelta | None  # the time the rate was measured over
    retention: timedelta | None
    retention_bound: str | None  # "size" or "maxage"
    free_bytes: int | None
    problems: tuple[Problem, ...] = ()

    @property
    def current(self) -> LogFile | None:
        return next((f for f in self.files if f.rotated_at is None), None)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def backups(self) -> int:
        return sum(1 for f in self.files if f.rotated_at is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "directory": self.directory,
            "files": [f.to_dict() for f in self.files],
            "totalBytes": self.total_bytes,
            "oldestEvent": _iso(self.oldest_event),
            "newestEvent": _iso(self.newest_event),
            "bytesPerHour": None
            if self.rate_bytes_per_hour is None
            else round(self.rate_bytes_per_hour),
            "rateMeasuredOverSeconds": None
            if self.rate_span is None
            else round(self.rate_span.total_seconds(), 3),
            "retentionSeconds": None
            if self.retention is None
            else round(self.retention.total_seconds()),
            "retentionBoundBy": self.retention_bound,
            "freeBytes": self.free_bytes,
        }


@dataclass(frozen=True)
class PolicyOnDisk:
    """The policy file the apiserver will load on its next start."""

    path: str
    sha256: str | None  # None: the file does not exist
    annotation_sha256: str | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    cis: CisResult | None = None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def matches_annotation(self) -> bool | None:
        if self.sha256 is None or self.annotation_sha256 is None:
            return None
        return self.sha256 == self.annotation_sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.sha256 is not None,
            "sha256": self.sha256,
            "matchesAnnotation": self.matches_annotation,
            "errors": list(self.errors),
            "lintWarnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ManifestOnDisk:
    """kube-apiserver.yaml on the node, against what runs (kubernetes-sigs/kubespray#9874:
    a file changed, the apiserver not restarted from it)."""

    path: str
    audit_flags: tuple[tuple[str, str | None], ...] | None  # None: it does not parse
    matches_running: bool | None
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "auditFlags": None
            if self.audit_flags is None
            else [{"name": n, "value": v} for n, v in self.audit_flags],
            "matchesRunning": self.matches_running,
        }


@dataclass(frozen=True)
class DeepStatus:
    log: DeepLog | None
    policy: PolicyOnDisk | None
    skipped: tuple[str, ...] = ()  # what could not be looked at, and why
    manifest: ManifestOnDisk | None = None

    @property
    def problems(self) -> tuple[Problem, ...]:
        return (
            (self.manifest.problems if self.manifest else ())
            + (self.log.problems if self.log else ())
            + (self.policy.problems if self.policy else ())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.to_dict() if self.manifest else None,
            "log": self.log.to_dict() if self.log else None,
            "policy": self.policy.to_dict() if self.policy else None,
            "skipped": list(self.skipped),
        }


# -- the log ---------------------------------------------------------------------------------


def belongs_to_log(name: str, log_path: str) -> bool:
    """Is `name` (in the log's directory) the current log or one of its lumberjack backups?"""
    wanted = LogName.of(Path(posixpath.basename(log_path)))
    found = LogName.of(Path(name))
    return (found.stem, found.ext) == (wanted.stem, wanted.ext)


def line_time(line: bytes) -> datetime | None:
    """The time of the audit event on one JSON line, or None if it is not one."""
    try:
        data = jsonfast.loads(line)
    except jsonfast.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    return datetime_of_key(time_key(event_time(data)))


def first_event_time(head: bytes, compressed: bool = False) -> datetime | None:
    """The time of the first complete event in a file's first bytes."""
    if compressed:
        try:
            head = zlib.decompressobj(wbits=31).decompress(head)
        except zlib.error:
            return None
    for line in head.split(b"\n")[:-1]:  # the last piece may be cut
        if line.strip():
            return line_time(line)
    return None


def last_event_time(tail: bytes, *, whole: bool = False) -> datetime | None:
    """The time of the last complete event in a file's last bytes; unless they are the
    `whole` file, their first line is a cut one and skipped."""
    lines = tail.split(b"\n")
    for line in reversed(lines if whole else lines[1:]):
        if line.strip():
            found = line_time(line)
            if found is not None:
                return found
    return None


def analyse_log(
    state: AuditState,
    samples: Sequence[LogSample],
    *,
    via: str,
    free_bytes: int | None,
    now: datetime,
) -> DeepLog:
    """Files, event times, write rate and retention of one apiserver's audit log."""
    directory = posixpath.dirname(state.log_host_path or state.log_path)
    files: list[LogFile] = []
    for sample in samples:
        name = LogName.of(Path(sample.name))
        files.append(
            LogFile(
                sample.name,
                sample.size,
                sample.mtime,
                name.rotated_at,
                name.gz,
                first_event_time(sample.head, name.gz),
            )
        )
    files.sort(key=lambda f: (f.rotated_at is None, f.rotated_at or now))
    current = next((f for f in files if f.rotated_at is None), None)
    current_sample = next((s for s in samples if current and s.name == current.name), None)
    newest = None
    if current_sample is not None:
        whole = len(current_sample.tail) >= current_sample.size
        newest = last_event_time(current_sample.tail, whole=whole)
    firsts = [f.first_event for f in files if f.first_event is not None]
    oldest = min(firsts) if firsts else None
    rate, span = _rate(files, newest)
    retention = estimated_retention(state, rate) if rate else None
    bound = _bound(state, rate, retention)
    log = DeepLog(
        via, directory, tuple(files), oldest, newest, rate, span, retention, bound, free_bytes
    )
    return DeepLog(**{**log.__dict__, "problems": tuple(_log_problems(state, log, now))})


def _rate(
    files: Sequence[LogFile], newest: datetime | None
) -> tuple[float | None, timedelta | None]:
    """Bytes per hour over the uncompressed files (gzip sizes say nothing about the rate)."""
    plain = [f for f in files if not f.compressed]
    starts = [f.first_event for f in plain if f.first_event is not None]
    if newest is None or not starts:
        return None, None
    span = newest - min(starts)
    if span < MIN_RATE_SPAN:
        return None, span
    counted = sum(f.size for f in plain if f.first_event is not None)
    return counted / (span.total_seconds() / 3600), span


def _bound(state: AuditState, rate: float | None, retention: timedelta | None) -> str | None:
    if retention is None:
        return None
    if state.rotates and state.max_age_days and retention >= timedelta(days=state.max_age_days):
        return "maxage"
    return "size"


def _log_problems(state: AuditState, log: DeepLog, now: datetime) -> list[Problem]:
    out: list[Problem] = []
    current = log.current
    if current is None:
        out.append(
            error(
                "log-missing",
                f"the audit log {state.log_host_path or state.log_path} does not exist on the "
                "node: nothing has been written to the directory the mount points at",
                flag="--audit-log-path",
                hint="check that the apiserver restarted with the audit flags and that the "
                "hostPath volume points at this directory",
            )
        )
        return out
    limit = (state.max_size_mib or 100) * MIB if state.rotates else None
    if limit and current.size > limit * 3 // 2:
        out.append(
            error(
                "log-not-rotating",
                f"{current.name} is {human_bytes(current.size)}, past --audit-log-maxsize "
                f"({human_bytes(limit)}): rotation is failing",
                flag="--audit-log-maxsize",
                hint="the log must be inside a mounted directory, not a single-file mount",
            )
        )
    if log.newest_event and now - log.newest_event > STALE_AFTER:
        out.append(
            warning(
                "log-stale",
                f"the newest event in {current.name} is from {_iso(log.newest_event)}, "
                f"{human_duration(now - log.newest_event)} ago: the apiserver does not seem "
                "to write here any more",
                flag="--audit-log-path",
            )
        )
    if (
        log.retention_bound == "size"
        and log.retention is not None
        and log.rate_bytes_per_hour
        and log.rate_span is not None
        and (log.rate_span >= TRUSTED_SPAN or log.retention < SHORT_ANYWAY)
    ):
        wanted = f" (--audit-log-maxage={state.max_age_days}d)" if state.max_age_days else ""
        out.append(
            warning(
                "short-retention",
                f"at the current rate ({human_bytes(log.rate_bytes_per_hour)}/h) the log "
                f"reaches back ~{human_duration(log.retention)}{wanted}",
                flag="--audit-log-maxbackup",
                hint="raise --audit-log-maxbackup or --audit-log-maxsize (kubectl audit "
                "enable --max-backup N --max-size MiB), or lower the policy's level for "
                "noisy requests",
            )
        )
    capacity = state.capacity_bytes
    if capacity is not None and log.free_bytes is not None:
        growth = capacity - log.total_bytes
        if growth > log.free_bytes:
            out.append(
                warning(
                    "disk-too-small",
                    f"the log may still grow by {human_bytes(growth)} (maxsize x "
                    f"(maxbackup + 1)) but the file system has {human_bytes(log.free_bytes)} "
                    "free",
                    hint="free disk space or lower --audit-log-maxbackup/--audit-log-maxsize",
                )
            )
    return out


# -- the policy file -------------------------------------------------------------------------


def analyse_policy(state: AuditState, path: str, content: bytes | None) -> PolicyOnDisk:
    """The policy on disk: does it match what enable recorded, does it load, what does CIS say."""
    from kubectl_audit.policy.report import check_policy as load_and_lint

    if content is None:
        return PolicyOnDisk(
            path,
            None,
            state.policy_sha256,
            problems=(
                error(
                    "policy-missing",
                    f"the policy file {path} does not exist on the node: the apiserver will "
                    "not start the next time it restarts",
                    flag="--audit-policy-file",
                    hint="run `kubectl audit enable` again to write it",
                ),
            ),
        )
    import hashlib

    sha = hashlib.sha256(content).hexdigest()
    report = load_and_lint(content, file=path)
    errors = tuple(_finding_text(f) for f in report.errors)
    warnings = tuple(_finding_text(f) for f in report.warnings)
    problems: list[Problem] = []
    if state.policy_sha256 and sha != state.policy_sha256:
        problems.append(
            warning(
                "policy-changed-on-disk",
                f"{path} (sha256 {sha[:12]}) is not the policy the running apiserver was "
                f"started with (sha256 {state.policy_sha256[:12]}): it is loaded on the next "
                "restart",
                flag="--audit-policy-file",
                hint="run `kubectl audit enable --policy FILE` to roll the intended policy out",
            )
        )
    if errors:
        problems.append(
            error(
                "policy-invalid",
                f"{path} does not load: {errors[0]}"
                + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
                flag="--audit-policy-file",
                hint=f"kubectl audit validate {posixpath.basename(path)} shows every error",
            )
        )
    cis = None
    if report.policy is not None:
        bench = state.cis[0].benchmark if state.cis else benchmark_for(state.kube_version).name
        cis = check_policy(report.policy, bench)
    return PolicyOnDisk(path, sha, state.policy_sha256, errors, warnings, cis, tuple(problems))


def _finding_text(finding: Any) -> str:
    where = f"line {finding.line}: " if finding.line else ""
    return where + finding.message


# -- the manifest ----------------------------------------------------------------------------


def analyse_manifest(
    running: Sequence[tuple[str, str | None]],
    running_sha256: str | None,
    path: str,
    content: bytes,
) -> ManifestOnDisk:
    """Does the static-pod manifest on the node say what the running apiserver does?"""
    from kubectl_audit.apiserver.staticpod import ManifestError, read_manifest

    try:
        pod = read_manifest(content.decode("utf-8", "replace"), source=path)
    except ManifestError as exc:
        return ManifestOnDisk(
            path,
            None,
            None,
            (
                error(
                    "manifest-unreadable",
                    f"{exc.message}: the kubelet cannot run it and keeps the old apiserver; "
                    "the next change to it decides what starts",
                    hint="fix the file (the running pod is in kubectl -n kube-system get pod "
                    "kube-apiserver-NODE -o yaml)",
                ),
            ),
        )
    on_disk = tuple((f.name, f.value) for f in pod.flags if f.name.startswith("--audit-"))
    same = sorted(on_disk) == sorted(running) and pod.policy_sha256 == running_sha256
    problems: list[Problem] = []
    if not same:
        problems.append(
            warning(
                "manifest-not-running",
                f"{path} sets {_flags_text(on_disk)} but the running apiserver has "
                f"{_flags_text(running)}: it has not been restarted from this file (yet)",
                hint="the kubelet restarts it within seconds of a valid change; if it does not, "
                "look for a stray copy in the manifests folder and at journalctl -u kubelet",
            )
        )
    problems += [
        warning("manifest-mistake", f"{path} {mistake}") for mistake in pod.structure_problems
    ]
    return ManifestOnDisk(path, on_disk, same, tuple(problems))


def _flags_text(flags: Sequence[tuple[str, str | None]]) -> str:
    if not flags:
        return "no audit flags"
    return " ".join(name if value is None else f"{name}={value}" for name, value in flags)


# -- words -----------------------------------------------------------------------------------


def human_bytes(count: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def human_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
