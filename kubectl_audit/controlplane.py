"""Finding the control plane from the API: its nodes, and the kube-apiserver mirror pods.

Cheap paths first (DESIGN §3.5): everything here is read from the API, no privileged pod.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_audit.errors import UsageError
from kubectl_audit.kube.errors import NotFound, api_call
from kubectl_audit.kube.rest import Rest, core_path

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
APISERVER_PREFIX = "kube-apiserver-"


@dataclass(frozen=True)
class ControlPlane:
    """The cluster as seen from the API: all nodes, and kube-system's apiserver mirror pods."""

    nodes: tuple[dict[str, Any], ...]
    kube_system_pods: tuple[dict[str, Any], ...]
    server_version: str

    def apiserver_pod(self, node: str) -> dict[str, Any] | None:
        """The mirror pod the kubelet on `node` created for kube-apiserver, if any."""
        for pod in self.kube_system_pods:
            meta = pod.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            if (
                (pod.get("spec") or {}).get("nodeName") == node
                and str(meta.get("name", "")).startswith(APISERVER_PREFIX)
                and (CONFIG_MIRROR in annotations or CONFIG_HASH in annotations)
            ):
                return pod
        return None

    def control_plane_nodes(self) -> tuple[dict[str, Any], ...]:
        """Nodes labelled as control plane, plus any node running an apiserver mirror pod."""
        found = []
        for node in self.nodes:
            labels = (node.get("metadata") or {}).get("labels") or {}
            name = node["metadata"]["name"]
            if any(label in labels for label in CONTROL_PLANE_LABELS) or self.apiserver_pod(name):
                found.append(node)
        return tuple(found)

    def select(self, names: Sequence[str]) -> tuple[dict[str, Any], ...]:
        """The control-plane nodes to act on: all of them, or those named by --node."""
        nodes = self.control_plane_nodes()
        if not names:
            return nodes
        by_name = {node["metadata"]["name"]: node for node in nodes}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)) or "none found"
            raise UsageError(
                f"not a control-plane node: {', '.join(unknown)}",
                hint=f"control-plane nodes: {known}",
            )
        return tuple(by_name[name] for name in dict.fromkeys(names))


def config_hash(pod: dict[str, Any] | None) -> str | None:
    if pod is None:
        return None
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH)


def read_control_plane(api_client: Any) -> ControlPlane:
    """Nodes, kube-system pods and the server version, as plain dicts."""
    rest = Rest(api_client)
    with api_call("read nodes and kube-system pods"):
        nodes = rest.list(core_path("nodes"))
        pods = rest.list(core_path("pods", namespace="kube-system"))
        version = rest.get("/version").get("gitVersion")
    return ControlPlane(tuple(nodes), tuple(pods), str(version))


def read_apiserver_pod(api_client: Any, node: str) -> dict[str, Any] | None:
    name = f"{APISERVER_PREFIX}{node}"
    try:
        with api_call(f"read pod kube-system/{name}"):
            return Rest(api_client).get(core_path("pods", name, namespace="kube-system"))
    except NotFound:
        return None
