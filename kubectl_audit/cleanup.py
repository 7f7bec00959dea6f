"""`kubectl audit cleanup`: node-agent pods left behind, and node locks of runs that died."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from kubectl_audit.durations import parse_rfc3339
from kubectl_audit.kube.errors import NotFound, api_call
from kubectl_audit.kube.rest import Rest, core_path
from kubectl_audit.node.agent import NodeAgent
from kubectl_audit.node.debugpod import MANAGED_SELECTOR, DebugPod, DebugPodOptions

log = logging.getLogger(__name__)

# enable's longest run: start, then up to 4 x --timeout (30m at most) on the node, plus margin.
STALE_LOCK_SECONDS = 2 * 60 * 60 + 10 * 60
# The kubelet enforces activeDeadlineSeconds on its own schedule; allow it a minute.
_DEADLINE_SLACK = 60


def is_stray(pod: dict[str, Any], now: datetime) -> bool:
    """A node-agent pod that can no longer be doing anything: finished, or past its deadline.

    A running one may carry an enable's node-side watcher (left there on purpose when the
    client was interrupted after the swap): deleting it would kill the watcher mid-way.
    """
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = _timestamp(status.get("startTime") or pod["metadata"].get("creationTimestamp"))
    if deadline is None or started is None:
        return True
    return (now - started).total_seconds() > deadline + _DEADLINE_SLACK


def _timestamp(text: str | None) -> datetime | None:
    """An API timestamp (RFC 3339, `...Z`); None when absent or unreadable, which makes the
    pod a stray as a pod without one always was."""
    if not text:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        return None


def remove_stray_pods(api_client: Any, *, include_active: bool = False) -> list[str]:
    """Delete our labelled pods in every namespace that are strays (or all of them with
    `include_active`); return `namespace/name`s."""
    rest = Rest(api_client)
    with api_call("list pods in all namespaces"):
        pods = rest.list(core_path("pods"), query=[("labelSelector", MANAGED_SELECTOR)])
    deleted = []
    now = datetime.now(timezone.utc)
    for pod in pods:
        if not include_active and not is_stray(pod, now):
            continue
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            with api_call(f"delete pod {namespace}/{name}"):
                rest.delete(
                    core_path("pods", name, namespace=namespace),
                    query=[("gracePeriodSeconds", 0)],
                )
        except NotFound:
            # Gone already (its deadline, or another cleanup): what we wanted anyway.
            log.debug("pod %s/%s was already gone", namespace, name)
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
