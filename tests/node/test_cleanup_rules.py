"""Which node-agent pods `kubectl audit cleanup` may delete without --all."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from kubectl_audit.cleanup import is_stray

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def pod(phase: str, started_ago: float | None, deadline: int | None = 900) -> dict[str, Any]:
    """A pod as the API sends it: RFC 3339 times, empty fields left out."""
    metadata: dict[str, Any] = {"name": "kubectl-audit-cp-abc123"}
    spec: dict[str, Any] = {"containers": []}
    status: dict[str, Any] = {"phase": phase}
    if started_ago is not None:
        start = (NOW - timedelta(seconds=started_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata["creationTimestamp"] = start
        status["startTime"] = start
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"metadata": metadata, "spec": spec, "status": status}


def test_finished_pods_are_strays() -> None:
    assert is_stray(pod("Failed", 30), NOW)
    assert is_stray(pod("Succeeded", 30), NOW)


def test_a_running_pod_inside_its_deadline_may_carry_a_watcher() -> None:
    assert not is_stray(pod("Running", 300), NOW)
    assert not is_stray(pod("Pending", 10), NOW)


def test_a_pod_past_its_deadline_is_a_stray() -> None:
    assert is_stray(pod("Running", 900 + 61), NOW)
    assert not is_stray(pod("Running", 900 + 30), NOW)


def test_a_pod_without_deadline_or_start_is_ours_to_remove() -> None:
    assert is_stray(pod("Running", 10, deadline=None), NOW)
    assert is_stray(pod("Pending", None), NOW)


def test_a_pod_not_yet_scheduled_counts_from_its_creation() -> None:
    created = pod("Pending", 900 + 61)
    del created["status"]["startTime"]
    assert is_stray(created, NOW)
    created["metadata"]["creationTimestamp"] = "2026-11-28T11:59:00Z"
    assert not is_stray(created, NOW)
