"""What `status` reports about one apiserver, computed from its pod alone (no I/O).

The pod is the mirror pod the API returns (what is *running*, not what a file says:
kubernetes-sigs/kubespray#9874) or the manifest on the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kubectl_audit.apiserver.cis import CisResult, check_audit_flags
from kubectl_audit.apiserver.flags import audit_options, validate_audit_flags
from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.apiserver.mounts import check_paths_reachable, resolve
from kubectl_audit.apiserver.problems import Problem
from kubectl_audit.apiserver.staticpod import StaticPod

MIB = 1 << 20


@dataclass(frozen=True)
class AuditState:
    enabled: bool  # a policy and at least one backend: events are being recorded
    policy_file: str
    log_path: str  # "" = no log backend, "-" = stdout
    log_host_path: str | None  # the log on the node, when it is on a hostPath mount
    webhook: bool
    max_size_mib: int
    max_backup: int
    max_age_days: int
    compress: bool
    rotates: bool
    managed: bool  # enabled by kubectl-audit (its annotation is present)
    policy_sha256: str | None
    kube_version: KubeVersion
    problems: tuple[Problem, ...]
    cis: tuple[CisResult, ...]

    @property
    def capacity_bytes(self) -> int | None:
        """Most bytes kept on disk (current file + backups); None when unbounded by count."""
        if not self.rotates or self.max_backup == 0:
            return None
        # maxsize 0 only rotates before 1.36, at lumberjack's default of 100 MiB.
        return (self.max_size_mib or 100) * MIB * (self.max_backup + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "policyFile": self.policy_file,
            "logPath": self.log_path,
            "logHostPath": self.log_host_path,
            "webhook": self.webhook,
            "maxSizeMiB": self.max_size_mib,
            "maxBackup": self.max_backup,
            "maxAgeDays": self.max_age_days,
            "compress": self.compress,
            "rotates": self.rotates,
            "capacityBytes": self.capacity_bytes,
            "managedByKubectlAudit": self.managed,
            "policySha256": self.policy_sha256,
            "kubernetesVersion": str(self.kube_version),
            "problems": [p.to_dict() for p in self.problems],
            "cis": [c.to_dict() for c in self.cis],
        }


def audit_state(
    pod: StaticPod, version: KubeVersion | str | None = None, distribution: str = "kubeadm"
) -> AuditState:
    """Everything status says about one apiserver; `version` defaults to the image tag."""
    kube_version = parse_version(version) if version else pod.kube_version
    if kube_version is None:
        kube_version = parse_version("v1.36.0")
    options, _ = audit_options(pod.flags, kube_version)  # parse errors come again below
    problems = [
        *validate_audit_flags(pod.flags, kube_version),
        *check_paths_reachable(pod.spec, pod.container),
    ]
    log_path = options.log_path
    reach = resolve(log_path, pod.volumes, pod.mounts) if log_path.startswith("/") else None
    return AuditState(
        enabled=bool(options.policy_file and (log_path or options.webhook_config_file)),
        policy_file=options.policy_file,
        log_path=log_path,
        log_host_path=reach.host_path if reach else None,
        webhook=bool(options.webhook_config_file),
        max_size_mib=options.number("--audit-log-maxsize"),
        max_backup=options.number("--audit-log-maxbackup"),
        max_age_days=options.number("--audit-log-maxage"),
        compress=bool(options["--audit-log-compress"]),
        rotates=options.rotates,
        managed=pod.record is not None,
        policy_sha256=pod.policy_sha256,
        kube_version=kube_version,
        problems=tuple(problems),
        cis=tuple(check_audit_flags(pod.flags, kube_version, distribution)),
    )


def estimated_retention(state: AuditState, growth_bytes_per_hour: float) -> timedelta | None:
    """How far back the log reaches at the observed growth rate (None: no bound known).

    The smaller of what fits in maxsize x (maxbackup + 1) and maxage; before 1.36 a
    maxsize of 0 still rotated at lumberjack's 100 MiB.
    """
    bounds: list[timedelta] = []
    capacity = state.capacity_bytes
    if capacity is not None and growth_bytes_per_hour > 0:
        bounds.append(timedelta(hours=capacity / growth_bytes_per_hour))
    if state.rotates and state.max_age_days > 0:
        bounds.append(timedelta(days=state.max_age_days))
    return min(bounds) if bounds else None
