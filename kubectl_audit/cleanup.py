"""`kubectl audit cleanup`: node-agent pods left behind, and node locks of runs that died."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from kubectl_audit.kube.errors import api_error
from kubectl_audit.node.agent import NodeAgent
from kubectl_audit.node.debugpod import MANAGED_SELECTOR, DebugPod, DebugPodOptions

# enable's longest run: start, then up to 4 x --timeout (30m at most) on the node, plus margin.
STALE_LOCK_SECONDS = 2 * 60 * 60 + 10 * 60
# The kubelet enforces activeDeadlineSeconds on its own schedule; allow it a minute.
_DEADLINE_SLACK = 60


def is_stray(pod: Any, now: datetime) -> bool:
    """A node-agent pod that can no longer be doing anything: finished, or past its deadline.

    A running one may carry an enable's node-side watcher (left there on purpose when the
    client was interrupted after the swap): deleting it would kill the watcher mid-way.
    """
    if pod.status and pod.status.phase in ("Succeeded", "Failed"):
        return True
    deadline = pod.spec.active_deadline_seconds if pod.spec else None
    started = (pod.status and pod.status.start_time) or pod.metadata.creation_timestamp
    if deadline is None or started is None:
        return True
    return (now - started).total_seconds() > deadline + _DEADLINE_SLACK


def remove_stray_pods(api_client: Any, *, include_active: bool = False) -> list[str]:
    """Delete our labelled pods in every namespace that are strays (or all of them with
    `include_active`); return `namespace/name`s."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    try:
        pods = core.list_pod_for_all_namespaces(label_selector=MANAGED_SELECTOR).items
    except ApiException as error:
        raise api_error(error, "list pods in all namespaces") from None
    deleted = []
    now = datetime.now(timezone.utc)
    for pod in pods:
        if not include_active and not is_stray(pod, now):
            continue
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
