"""`kubectl audit cleanup`: node-agent pods left behind, and node locks of runs that died."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kubectl_audit.kube.errors import api_error
from kubectl_audit.node.agent import NodeAgent
from kubectl_audit.node.debugpod import MANAGED_SELECTOR, DebugPod, DebugPodOptions

# enable's longest run: start, then up to 4 x --timeout (30m at most) on the node, plus margin.
STALE_LOCK_SECONDS = 2 * 60 * 60 + 10 * 60


def remove_stray_pods(api_client: Any) -> list[str]:
    """Delete every pod labelled as ours, in every namespace; return `namespace/name`s."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    try:
        pods = core.list_pod_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    except ApiException as error:
        raise api_error(error, "list pods in all namespaces") from None
    deleted = []
    for pod in pods:
        namespace, name = pod.metadata.namespace, pod.metadata.name
        try:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as error:
            if error.status != 404:
                raise api_error(error, f"delete pod {namespace}/{name}") from None
        deleted.append(f"{namespace}/{name}")
    return deleted


def remove_stale_locks(
    api_client: Any,
    nodes: Iterable[dict[str, Any]],
    options: DebugPodOptions,
    progress: Callable[[str], None],
) -> list[str]:
    """Remove node locks older than the longest possible run; return `node: owner` lines."""
    removed = []
    for node in nodes:
        with DebugPod(api_client, node, options, progress=progress) as pod:
            owner = NodeAgent(pod).cleanup_locks(STALE_LOCK_SECONDS)
        if owner:
            removed.append(f"{node['metadata']['name']}: {owner}")
    return removed
