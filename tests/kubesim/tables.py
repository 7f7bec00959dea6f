"""Server-side printing: `meta.k8s.io/v1` Table responses, the way `kubectl get` asks for them.

Columns and cell texts follow kubernetes `pkg/printers/internalversion/printers.go` for the
resources we serve; ages use apimachinery's `duration.HumanDuration`.
"""

from __future__ import annotations

from datetime import datetime, timezone

_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = {
    "name": "Age",
    "type": "string",
    "format": "",
    "description": "CreationTimestamp is a timestamp representing the server time when this"
    " object was created.",
    "priority": 0,
}


def _column(name: str, priority: int = 0, kind: str = "string") -> dict:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}


COLUMNS: dict[str, list[dict]] = {
    "pods": [
        _NAME,
        _column("Ready"),
        _column("Status"),
        _column("Restarts", kind="string"),
        _AGE,
        _column("IP", 1),
        _column("Node", 1),
        _column("Nominated Node", 1),
        _column("Readiness Gates", 1),
    ],
    "nodes": [
        _NAME,
        _column("Status"),
        _column("Roles"),
        _AGE,
        _column("Version"),
        _column("Internal-IP", 1),
        _column("External-IP", 1),
        _column("OS-Image", 1),
        _column("Kernel-Version", 1),
        _column("Container-Runtime", 1),
    ],
    "configmaps": [_NAME, _column("Data", kind="integer"), _AGE],
    "namespaces": [_NAME, _column("Status"), _AGE],
    "events": [
        _column("Last Seen"),
        _column("Type"),
        _column("Reason"),
        _column("Object"),
        _column("Message"),
    ],
}


def human_duration(seconds: float) -> str:
    """apimachinery duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return human_duration((datetime.now(timezone.utc) - created).total_seconds())


def _pod_cells(pod: dict) -> list:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase") or "Unknown"
    restarts, last_restart = 0, ""
    for cs in statuses:
        restarts += cs.get("restartCount", 0)
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            terminated = state["terminated"]
            reason = terminated.get("reason") or (
                f"Signal:{terminated['signal']}"
                if terminated.get("signal")
                else f"ExitCode:{terminated.get('exitCode', 0)}"
            )
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and cs.get("restartCount"):
            last_restart = finished
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restart_text = str(restarts)
    if last_restart:
        restart_text += f" ({_age(last_restart)} ago)"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restart_text,
        _age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _node_cells(node: dict) -> list:
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = (
        "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    )
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        key.split("/", 1)[1]
        for key in labels
        if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        _age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _configmap_cells(cm: dict) -> list:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [cm["metadata"]["name"], count, _age(cm["metadata"].get("creationTimestamp"))]


def _namespace_cells(ns: dict) -> list:
    return [
        ns["metadata"]["name"],
        (ns.get("status") or {}).get("phase", ""),
        _age(ns["metadata"].get("creationTimestamp")),
    ]


def _event_cells(event: dict) -> list:
    involved = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
    )
    return [
        _age(last[:19] + "Z" if last else None),
        event.get("type", ""),
        event.get("reason", ""),
        f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


_CELLS = {
    "pods": _pod_cells,
    "nodes": _node_cells,
    "configmaps": _configmap_cells,
    "namespaces": _namespace_cells,
    "events": _event_cells,
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def to_table(
    resource: str, objects: list[dict], resource_version: str, include_object: str = "Metadata"
) -> dict:
    """A Table of `objects`; each row carries the object as `includeObject` asks."""
    rows = []
    for obj in objects:
        if include_object == "Object":
            row_object: dict | None = obj
        elif include_object == "None":
            row_object = None
        else:
            row_object = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        row = {"cells": _CELLS[resource](obj)}
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": COLUMNS[resource],
        "rows": rows,
    }
