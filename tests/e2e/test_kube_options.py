"""kubectl's connection options behave as in kubectl: --request-timeout, --context."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import kubectl_audit
from tests.kubesim.cluster import Cluster


@pytest.mark.cluster
def test_request_timeout_bounds_every_request(kubesim: Cluster) -> None:
    kubesim.set_latency(3.0)
    slow = kubectl_audit(kubesim.kubeconfig, "status", "--request-timeout", "1s", timeout=60)
    assert slow.returncode == 1
    assert "timed out" in slow.stderr.lower()
    assert "Traceback" not in slow.stderr
    kubesim.set_latency(0.0)
    assert kubectl_audit(kubesim.kubeconfig, "status", "--request-timeout", "30s").returncode == 1
    # (1: audit is off in a fresh cluster; the point is that it answered)


@pytest.mark.cluster
def test_unknown_context_is_named(kubesim: Cluster) -> None:
    result = kubectl_audit(kubesim.kubeconfig, "status", "--context", "nope")
    assert result.returncode == 1
    assert "nope" in result.stderr and "Traceback" not in result.stderr
