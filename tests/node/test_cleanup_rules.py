"""Which node-agent pods `kubectl audit cleanup` may delete without --all."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kubernetes.client import V1ObjectMeta, V1Pod, V1PodSpec, V1PodStatus

from kubectl_audit.cleanup import is_stray

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def pod(phase: str, started_ago: float | None, deadline: int | None = 900) -> V1Pod:
    start = NOW - timedelta(seconds=started_ago) if started_ago is not None else None
    return V1Pod(
        metadata=V1ObjectMeta(name="kubectl-audit-cp-abc123", creation_timestamp=start),
        spec=V1PodSpec(containers=[], active_deadline_seconds=deadline),
        status=V1PodStatus(phase=phase, start_time=start),
    )


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
