"""Per control-plane node: is audit on, how, is it healthy, what CIS says (pure, no I/O).

Everything here comes from API objects: the apiserver's mirror pod (what is *running*)
and its status. The policy's content is not in the API; when the running policy's sha256
(our annotation) is one of the shipped presets we know its content and evaluate CIS 3.2.2
on it, otherwise 3.2.2 waits for `--deep`, which reads the file on the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from kubectl_audit.apiserver.cis import WARN, CisResult, benchmark_for, check_policy
from kubectl_audit.apiserver.distribution import AKS, EKS, GKE, K3S, RKE2, Distribution
from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.apiserver.mounts import resolve
from kubectl_audit.apiserver.problems import Problem, error
from kubectl_audit.apiserver.state import AuditState, audit_state
from kubectl_audit.apiserver.staticpod import StaticPod, pod_from_object
from kubectl_audit.errors import AuditError
from kubectl_audit.status.deep import DeepStatus
from kubectl_audit.status.health import Health, health_of

API_VERSION = "kubectl-audit.io/v1"
CIS_POLICY_ID = "3.2.2"


@dataclass(frozen=True)
class NodeStatus:
    node: str
    pod_name: str | None
    pod: StaticPod | None
    state: AuditState | None
    health: Health | None
    policy_preset: str | None  # the shipped preset the running policy is, by its sha256
    cis: tuple[CisResult, ...]
    problems: tuple[Problem, ...]
    deep: DeepStatus | None = None
    runs_as: str = "static-pod"  # or "k3s": in the k3s process on the host, paths are host paths

    @property
    def enabled(self) -> bool:
        return bool(self.state and self.state.enabled)

    @property
    def ok(self) -> bool:
        """Audit on, nothing wrong enough to lose events or stop the apiserver, and ready."""
        return (
            self.enabled
            and self.health is not None
            and self.health.ready is True
            and not any(p.is_error for p in self.all_problems)
        )

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        return self.problems + (self.deep.problems if self.deep else ())

    def audit_flags(self) -> list[tuple[str, str | None]]:
        if self.pod is None:
            return []
        return [(f.name, f.value) for f in self.pod.flags if f.name.startswith("--audit-")]

    def mount(self, path: str) -> dict[str, Any] | None:
        """How `path` reaches the node: the volumeMount and hostPath volume holding it."""
        if self.pod is None or not path.startswith("/") or self.runs_as != "static-pod":
            return None
        reach = resolve(path, self.pod.volumes, self.pod.mounts)
        if reach is None:
            return None
        return {
            "volume": reach.mount.get("name"),
            "mountPath": reach.mount.get("mountPath"),
            "hostPath": reach.host_path,
            "type": reach.host_path_type or None,
            "readOnly": reach.read_only,
        }

    def with_deep(self, deep: DeepStatus) -> NodeStatus:
        """Add what the node said; the policy file, when read, decides CIS 3.2.2."""
        cis = self.cis
        if deep.policy is not None and deep.policy.cis is not None:
            on_disk = replace(
                deep.policy.cis,
                detail=deep.policy.cis.detail + f" (evaluated on {deep.policy.path} on the node)",
            )
            cis = tuple(on_disk if c.id == CIS_POLICY_ID else c for c in cis)
        return replace(self, deep=deep, cis=cis)

    def to_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "node": self.node,
            "ok": self.ok,
            "pod": self.pod_name,
            "runsAs": self.runs_as,
            "audit": _audit_dict(state),
            "flags": [{"name": n, "value": v} for n, v in self.audit_flags()],
            "mounts": {
                "policy": self.mount(state.policy_file) if state else None,
                "log": self.mount(state.log_path) if state else None,
            },
            "apiserver": self.health.to_dict() if self.health else None,
            "policy": {
                "sha256": state.policy_sha256 if state else None,
                "identifiedAs": f"preset:{self.policy_preset}" if self.policy_preset else None,
                "source": _policy_source(self),
            },
            "cis": [c.to_dict() for c in self.cis],
            "problems": [p.to_dict() for p in self.all_problems],
            "deep": self.deep.to_dict() if self.deep else None,
        }


@dataclass(frozen=True)
class ClusterStatus:
    server_version: str
    distribution: Distribution
    nodes: tuple[NodeStatus, ...]

    @property
    def ok(self) -> bool:
        """Exit 0 only when audit is on and healthy on every control-plane node we can see."""
        return bool(self.nodes) and all(n.ok for n in self.nodes)

    @property
    def cannot_see_apiservers(self) -> bool:
        """k3s without --deep, managed clusters: no apiserver to read, the answer is elsewhere."""
        return not self.nodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "AuditStatus",
            "ok": self.ok,
            "serverVersion": self.server_version,
            "distribution": {
                "kind": self.distribution.kind,
                "evidence": list(self.distribution.evidence),
                "instructions": self.distribution.instructions,
            },
            "nodes": [n.to_dict() for n in self.nodes],
        }


def node_status(
    node: str,
    pod: Mapping[str, Any] | None,
    *,
    server_version: str,
    distribution: str = "kubeadm",
) -> NodeStatus:
    """The status of one control-plane node from its kube-apiserver mirror pod (or its absence)."""
    if pod is None:
        return NodeStatus(
            node,
            None,
            None,
            None,
            None,
            None,
            (),
            (
                error(
                    "no-apiserver-pod",
                    f"no kube-apiserver mirror pod for node {node}: the kubelet is not running "
                    "an apiserver from /etc/kubernetes/manifests there",
                    hint="look at the kubelet's log on the node (journalctl -u kubelet) and "
                    "at /etc/kubernetes/manifests/kube-apiserver.yaml",
                ),
            ),
        )
    name = str((pod.get("metadata") or {}).get("name") or f"kube-apiserver-{node}")
    try:
        static_pod = pod_from_object(pod)
    except AuditError as exc:
        problem = error("unreadable-apiserver-pod", f"{name}: {exc.message}")
        return NodeStatus(node, name, None, None, None, None, (), (problem,))
    version = static_pod.kube_version or _version_or_none(server_version)
    state = audit_state(static_pod, version, distribution)
    health = health_of(static_pod.pod, str(static_pod.container.get("name") or ""))
    preset = preset_for_sha256(state.policy_sha256) if state.policy_sha256 else None
    cis = (*state.cis, policy_cis(state, preset))
    problems = [*_audit_off(state, distribution), *state.problems, *health.problems(name)]
    return NodeStatus(node, name, static_pod, state, health, preset, cis, tuple(problems))


def cluster_status(
    nodes: Sequence[Mapping[str, Any]],
    pods_by_node: Mapping[str, Mapping[str, Any] | None],
    *,
    server_version: str,
    distribution: Distribution,
) -> ClusterStatus:
    """Every selected control-plane node's status; k3s and managed clusters have none to read."""
    statuses = []
    if distribution.kind not in (K3S, EKS, GKE, AKS):
        for node in nodes:
            name = str(node["metadata"]["name"])
            statuses.append(
                node_status(
                    name,
                    pods_by_node.get(name),
                    server_version=server_version,
                    distribution=distribution.kind,
                )
            )
    return ClusterStatus(server_version, distribution, tuple(statuses))


# -- CIS 3.2.2 without reading the node ------------------------------------------------------


@cache
def _preset_digests() -> dict[str, str]:
    from kubectl_audit.policy.presets import list_presets, read_preset

    return {hashlib.sha256(read_preset(name).encode()).hexdigest(): name for name in list_presets()}


def preset_for_sha256(sha256: str) -> str | None:
    """The name of the shipped preset whose bytes have this sha256, if any."""
    return _preset_digests().get(sha256)


def policy_cis(state: AuditState, preset: str | None) -> CisResult:
    # The benchmark the flag checks used (it depends on the distribution, too).
    bench = state.cis[0].benchmark if state.cis else benchmark_for(state.kube_version).name
    if preset is not None:
        from kubectl_audit.policy.loader import load_policy
        from kubectl_audit.policy.presets import read_preset

        loaded = load_policy(read_preset(preset))
        if loaded.policy is not None:
            result = check_policy(loaded.policy, bench)
            return replace(
                result,
                detail=result.detail + f" (the running policy is preset {preset!r}, by its sha256)",
            )
    if not state.policy_file:
        detail = "--audit-policy-file is not set: nothing is recorded"
        status = "FAIL"
    else:
        detail = (
            "the policy's content is not visible through the API; `--deep` reads "
            f"{state.policy_file} on the node and evaluates it"
        )
        status = WARN
    return CisResult(
        CIS_POLICY_ID,
        bench,
        "Ensure that the audit policy covers key security concerns (Manual)",
        status,
        detail,
    )


def _audit_off(state: AuditState, distribution: str) -> list[Problem]:
    if state.enabled or state.policy_file or state.log_path or state.webhook:
        return []  # half-configured: flags.validate_audit_flags says which half is missing
    if distribution == RKE2:
        # RKE2 regenerates the static pod; its config file is the place (rancher/rke2#5142).
        hint = "set audit-policy-file in /etc/rancher/rke2/config.yaml (steps below)"
    else:
        hint = "kubectl audit enable turns it on (kubectl audit enable --dry-run shows how)"
    return [
        error(
            "audit-off",
            "audit logging is off: kube-apiserver runs without --audit-policy-file and "
            "--audit-log-path",
            hint=hint,
        )
    ]


def _audit_dict(state: AuditState | None) -> dict[str, Any] | None:
    """AuditState's dict without its problems and CIS results: those are the node's own."""
    if state is None:
        return None
    return {k: v for k, v in state.to_dict().items() if k not in ("problems", "cis")}


def _policy_source(status: NodeStatus) -> str:
    if status.deep is not None and status.deep.policy is not None:
        return "node"
    if status.policy_preset:
        return "preset"
    return "unknown"


def _version_or_none(text: str) -> KubeVersion | None:
    try:
        return parse_version(text)
    except AuditError:
        return None
