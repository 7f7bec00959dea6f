"""Can the apiserver reach its audit files? Paths in the container vs hostPath volumes.

A static pod sees the node only through hostPath volumes. The policy file must be inside
one (or the apiserver does not start), the log must be written inside one (or events stay
in the container and die with it), and the log's *directory* must be the mount: rotation
renames the file, which fails on a single-file bind mount ("device or resource busy").
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_audit.apiserver.flags import parse_command
from kubectl_audit.apiserver.problems import Problem, error, warning

FILE_TYPES = frozenset({"File", "FileOrCreate"})
DIRECTORY_TYPES = frozenset({"Directory", "DirectoryOrCreate"})


@dataclass(frozen=True)
class Reach:
    """How a path inside the container reaches storage: through which mount and volume."""

    path: str
    mount: Mapping[str, Any]
    volume: Mapping[str, Any] | None  # None: the mount names a volume that does not exist
    host_path: str | None  # where it lives on the node, when the volume is a hostPath

    @property
    def exact(self) -> bool:
        """The mount is the path itself (a single-file mount when the path is a file)."""
        return _norm(str(self.mount.get("mountPath", ""))) == _norm(self.path)

    @property
    def host_path_type(self) -> str:
        hp = (self.volume or {}).get("hostPath") or {}
        return str(hp.get("type") or "")

    @property
    def is_host_path(self) -> bool:
        return self.host_path is not None

    @property
    def read_only(self) -> bool:
        return bool(self.mount.get("readOnly"))


def container_args(container: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in (container.get("args") or [])
    ]


def resolve(
    path: str, volumes: Sequence[Mapping[str, Any]], mounts: Sequence[Mapping[str, Any]]
) -> Reach | None:
    """The deepest volumeMount holding `path` (as the kernel would pick it), or None."""
    target = _norm(path)
    best: Mapping[str, Any] | None = None
    best_len = -1
    for mount in mounts:
        mount_path = _norm(str(mount.get("mountPath") or ""))
        if not mount_path.startswith("/"):
            continue
        if _is_within(target, mount_path) and len(mount_path) > best_len:
            best, best_len = mount, len(mount_path)
    if best is None:
        return None
    volume = next((v for v in volumes if v.get("name") == best.get("name")), None)
    host_path = None
    if volume is not None and isinstance(volume.get("hostPath"), Mapping):
        base = str(volume["hostPath"].get("path") or "")
        sub = str(best.get("subPath") or "")
        rel = posixpath.relpath(target, _norm(str(best["mountPath"])))
        parts = [base, sub] + ([] if rel == "." else [rel])
        host_path = _norm(posixpath.join(*[p for p in parts if p]))
    return Reach(path, best, volume, host_path)


def check_paths_reachable(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any]
) -> list[Problem]:
    """Problems with how the audit policy and log paths of `container` reach the node."""
    values = {f.name: f.value for f in parse_command(container_args(container))}
    volumes = pod_spec.get("volumes") or []
    mounts = container.get("volumeMounts") or []
    out: list[Problem] = []
    policy = values.get("--audit-policy-file") or ""
    if policy:
        out.extend(_policy_problems(policy, resolve(policy, volumes, mounts)))
    webhook = values.get("--audit-webhook-config-file") or ""
    if webhook and resolve(webhook, volumes, mounts) is None:
        out.append(
            error(
                "webhook-config-not-mounted",
                f"--audit-webhook-config-file={webhook} is not inside any volumeMount, so "
                "the apiserver cannot read it and will not start",
                flag="--audit-webhook-config-file",
                hint="add a read-only hostPath volume (type File) and volumeMount for it",
            )
        )
    log_path = values.get("--audit-log-path") or ""
    # `-` (stdout) and relative paths are reported by flags.validate_audit_flags.
    if log_path.startswith("/"):
        out.extend(_log_problems(log_path, resolve(log_path, volumes, mounts)))
    return out


def _policy_problems(policy: str, reach: Reach | None) -> list[Problem]:
    flag = "--audit-policy-file"
    if reach is None or reach.volume is None:
        return [
            error(
                "policy-not-mounted",
                f"policy path not mounted: {flag}={policy} is not inside any volumeMount, "
                "so the apiserver cannot read it and will not start",
                flag=flag,
                hint="add a hostPath volume (type File) and a read-only volumeMount for it",
            )
        ]
    if not reach.is_host_path:
        return [
            error(
                "policy-not-host-path",
                f"{flag}={policy} is on volume {reach.volume.get('name')!r}, which is not a "
                "hostPath: a static pod cannot get it from anywhere else",
                flag=flag,
            )
        ]
    kind = reach.host_path_type
    if reach.exact and kind in DIRECTORY_TYPES:
        return [
            error(
                "policy-mounted-as-directory",
                f"{flag}={policy} is mounted with hostPath type {kind}: the kubelet refuses a "
                "file there, or creates a directory the apiserver cannot load",
                flag=flag,
                hint="use type: File for a single-file policy mount",
            )
        ]
    out = []
    if reach.exact and kind == "FileOrCreate":
        out.append(
            warning(
                "policy-file-or-create",
                f"{flag}={policy} is mounted as FileOrCreate: if the file is missing the "
                "kubelet creates it empty and the apiserver fails to load it",
                flag=flag,
                hint="use type: File so a missing policy is reported by the kubelet",
            )
        )
    if not reach.read_only:
        out.append(
            warning(
                "policy-writable",
                f"{flag}={policy} is mounted read-write; the apiserver only reads it",
                flag=flag,
                hint="set readOnly: true on its volumeMount",
            )
        )
    return out


def _log_problems(log_path: str, reach: Reach | None) -> list[Problem]:
    flag = "--audit-log-path"
    if reach is None or reach.volume is None or not reach.is_host_path:
        return [
            error(
                "log-not-mounted",
                f"log path not mounted: {flag}={log_path} is not on a hostPath volumeMount, "
                "so events are written inside the container and lost with it",
                flag=flag,
                hint="mount the log's directory from the host (hostPath, DirectoryOrCreate)",
            )
        ]
    out: list[Problem] = []
    if reach.exact or reach.host_path_type in FILE_TYPES:
        out.append(
            error(
                "log-file-mounted",
                f"{flag}={log_path} is mounted as a single file "
                f"({reach.host_path_type or 'hostPath'}): rotation cannot rename it "
                "(device or resource busy) and the log grows past its limit",
                flag=flag,
                hint=f"mount the directory {posixpath.dirname(_norm(log_path))} instead "
                "(type DirectoryOrCreate)",
            )
        )
    if reach.read_only:
        out.append(
            error(
                "log-read-only",
                f"{flag}={log_path} is on a read-only volumeMount: the apiserver cannot "
                "create the log and will not start",
                flag=flag,
                hint="drop readOnly from the log directory's volumeMount",
            )
        )
    return out


def _norm(path: str) -> str:
    return posixpath.normpath(path) if path else path


def _is_within(path: str, directory: str) -> bool:
    return path == directory or directory == "/" or path.startswith(directory + "/")
