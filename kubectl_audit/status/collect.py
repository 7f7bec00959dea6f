"""Gathering `status` from the cluster: the API first, the node only with `--deep`.

Without `--deep` this is three API reads (nodes, kube-system pods, version). With it, per
node: the log through the kubelet `/logs` proxy when it lives under /var/log (no privileged
pod), then the policy file, free disk (and the log, if the proxy could not serve it)
through the short-lived node-agent pod, unless `--no-pod` forbids that. On k3s, where
there is no apiserver pod at all, `--deep` starts the node-agent pod on each server node
and reads the apiserver's flags from the k3s service log first.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from kubectl_audit.apiserver.distribution import (
    AKS,
    EKS,
    GKE,
    K3S,
    KUBEADM,
    RKE2,
    detect_distribution,
)
from kubectl_audit.apiserver.mounts import resolve
from kubectl_audit.apiserver.problems import error
from kubectl_audit.errors import AuditError
from kubectl_audit.status.deep import (
    DeepLog,
    DeepStatus,
    PolicyOnDisk,
    analyse_log,
    analyse_manifest,
    analyse_policy,
)
from kubectl_audit.status.logproxy import KubeletLogs, under_var_log
from kubectl_audit.status.report import ClusterStatus, NodeStatus, cluster_status

if TYPE_CHECKING:
    from kubectl_audit.apiserver.state import AuditState
    from kubectl_audit.status.deep import LogSample
    from kubectl_audit.status.nodefacts import NodeFacts

Progress = Callable[[str], None]
# Where the kubelet reads the apiserver's static pod, per distribution (k3s has none).
MANIFESTS = {
    KUBEADM: "/etc/kubernetes/manifests/kube-apiserver.yaml",
    RKE2: "/var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml",
}


@dataclass(frozen=True)
class DeepOptions:
    use_pod: bool  # may start the privileged node-agent pod
    pod: Any  # node.debugpod.DebugPodOptions
    request_timeout: float | None = 30.0


def collect_status(
    api_client: Any,
    names: Sequence[str],
    *,
    deep: DeepOptions | None,
    progress: Progress,
) -> ClusterStatus:
    from kubectl_audit.controlplane import read_control_plane

    control_plane = read_control_plane(api_client)
    distribution = detect_distribution(control_plane.nodes, control_plane.kube_system_pods)
    if distribution.kind == K3S and deep is not None and deep.use_pod:
        servers = control_plane.select(names)
        return ClusterStatus(
            control_plane.server_version,
            distribution,
            tuple(_k3s_node(api_client, node, deep, progress) for node in servers),
        )
    if distribution.kind in (K3S, EKS, GKE, AKS):
        selected: tuple[dict[str, Any], ...] = ()
    else:
        selected = control_plane.select(names)
    pods = {
        node["metadata"]["name"]: control_plane.apiserver_pod(node["metadata"]["name"])
        for node in selected
    }
    status = cluster_status(
        selected, pods, server_version=control_plane.server_version, distribution=distribution
    )
    if deep is None:
        return status
    by_name = {node["metadata"]["name"]: node for node in selected}
    manifest = MANIFESTS.get(distribution.kind, "")
    deepened = tuple(
        _deepen(api_client, by_name[n.node], n, deep, progress, manifest) for n in status.nodes
    )
    return replace(status, nodes=deepened)


def _deepen(
    api_client: Any,
    node: dict[str, Any],
    status: NodeStatus,
    options: DeepOptions,
    progress: Progress,
    manifest_path: str,
) -> NodeStatus:
    state = status.state
    if state is None or not state.enabled:
        return status.with_deep(DeepStatus(None, None, ("audit is off: nothing to read",)))
    skipped: list[str] = []
    proxied = None
    now = datetime.now(timezone.utc)
    log_on_node = state.log_host_path if _log_reaches_node(status) else None
    if log_on_node is None:
        skipped.append(_why_no_log_file(state))
    elif under_var_log(log_on_node) is not None:
        progress(f"[{status.node}] reading {posixpath.dirname(log_on_node)} through the kubelet")
        try:
            kubelet = KubeletLogs(api_client, status.node, timeout=options.request_timeout)
            proxied = kubelet.samples(log_on_node)
        except AuditError as exc:
            skipped.append(f"the kubelet /logs proxy: {exc.message}")
    policy_on_node = _policy_host_path(status)
    if not options.use_pod:
        skipped.append("the policy file and free disk: they need the node-agent pod (--no-pod)")
        if proxied is None and log_on_node is not None:
            skipped.append(f"{log_on_node}: only the node-agent pod can read it")
        return status.with_deep(DeepStatus(_log(state, proxied, None, now), None, tuple(skipped)))
    try:
        facts = _node_facts(
            api_client, node, policy_on_node, log_on_node, manifest_path, options, progress
        )
    except AuditError as exc:
        skipped.append(f"the node-agent pod: {exc.message}")
        return status.with_deep(DeepStatus(_log(state, proxied, None, now), None, tuple(skipped)))
    deep = _deep_from_facts(state, facts, policy_on_node, log_on_node, proxied, skipped, now)
    if not manifest_path:
        return status.with_deep(deep)
    if facts.manifest is None:
        skipped.append(f"{manifest_path}: not on the node (or too large to be a manifest)")
        return status.with_deep(replace(deep, skipped=tuple(skipped)))
    on_disk = analyse_manifest(
        status.audit_flags(), state.policy_sha256, manifest_path, facts.manifest
    )
    return status.with_deep(replace(deep, manifest=on_disk))


def _deep_from_facts(
    state: AuditState,
    facts: NodeFacts,
    policy_on_node: str | None,
    log_on_node: str | None,
    proxied: list[LogSample] | None,
    skipped: list[str],
    now: datetime,
) -> DeepStatus:
    policy: PolicyOnDisk | None = None
    if policy_on_node is None:
        skipped.append("the policy file: it is not on a hostPath mount")
    elif facts.policy_sha256 is not None and facts.policy is None:
        skipped.append(f"{policy_on_node}: larger than any audit policy, not read")
    else:
        policy = analyse_policy(state, policy_on_node, facts.policy)
    log = None
    if log_on_node is not None:
        # What the kubelet served is what `logs` reads too; the pod adds the free disk.
        log = _log(state, proxied, facts.free_bytes, now)
        if log is None:
            log = analyse_log(
                state, facts.samples, via="node-agent pod", free_bytes=facts.free_bytes, now=now
            )
    return DeepStatus(log, policy, tuple(skipped))


def _k3s_node(
    api_client: Any, node: dict[str, Any], options: DeepOptions, progress: Progress
) -> NodeStatus:
    """One k3s server: its apiserver flags from the service log, then the files they name."""
    from kubectl_audit.node.debugpod import DebugPod
    from kubectl_audit.status.k3s import k3s_node_status, read_k3s_apiserver_line
    from kubectl_audit.status.nodefacts import read_node_facts

    name = node["metadata"]["name"]
    try:
        with DebugPod(api_client, node, options.pod, progress=progress) as shell:
            status = k3s_node_status(node, read_k3s_apiserver_line(shell))
            state = status.state
            if state is None or not state.enabled:
                return status
            policy_on_node = _policy_host_path(status)
            log_on_node = state.log_host_path
            facts = read_node_facts(shell, policy_on_node or "", log_on_node or "")
    except AuditError as exc:
        problem = error(
            "k3s-unreadable",
            f"cannot read the k3s service log on {name}: {exc.message}",
            hint=exc.hint,
        )
        return NodeStatus(name, None, None, None, None, None, (), (problem,), runs_as="k3s")
    now = datetime.now(timezone.utc)
    return status.with_deep(
        _deep_from_facts(state, facts, policy_on_node, log_on_node, None, [], now)
    )


def _log(
    state: AuditState, proxied: list[LogSample] | None, free_bytes: int | None, now: datetime
) -> DeepLog | None:
    if proxied is None:
        return None
    return analyse_log(state, proxied, via="kubelet /logs proxy", free_bytes=free_bytes, now=now)


def _node_facts(
    api_client: Any,
    node: dict[str, Any],
    policy_path: str | None,
    log_path: str | None,
    manifest_path: str,
    options: DeepOptions,
    progress: Progress,
) -> NodeFacts:
    from kubectl_audit.node.debugpod import DebugPod
    from kubectl_audit.status.nodefacts import read_node_facts

    with DebugPod(api_client, node, options.pod, progress=progress) as shell:
        return read_node_facts(
            shell, policy_path or "", log_path or "", manifest_path=manifest_path
        )


def _log_reaches_node(status: NodeStatus) -> bool:
    state = status.state
    if state is None or not state.log_host_path:
        return False
    return not any(p.code == "log-not-mounted" for p in state.problems)


def _policy_host_path(status: NodeStatus) -> str | None:
    if status.pod is None or status.state is None or not status.state.policy_file:
        return None
    if status.runs_as == "k3s":  # a host process: the path is the node's
        return status.state.policy_file if status.state.policy_file.startswith("/") else None
    reach = resolve(status.state.policy_file, status.pod.volumes, status.pod.mounts)
    return reach.host_path if reach else None


def _why_no_log_file(state: AuditState) -> str:
    if state.log_path == "-":
        return "the log: it goes to the apiserver container's stdout (--audit-log-path=-)"
    if not state.log_path:
        return "the log: there is none, events go to the audit webhook only"
    return "the log: it is not on a hostPath mount, so it is not on the node"
