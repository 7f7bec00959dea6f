"""End-to-end tests: the real CLI, through the real `kubernetes` client, against tests/kubesim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Small waits so a rollout takes seconds: a new apiserver must run 1s to count as healthy.
FAST = ("--timeout", "20s", "--settle", "1", "--kubelet-period", "1")


def kubectl_audit(
    kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubectl_audit", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
    )


@pytest.fixture
def run():
    return kubectl_audit
