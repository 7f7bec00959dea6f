"""Fixtures for the audit log tests: the real logs in shared/testdata/audit-logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TESTDATA

AUDIT_LOGS = TESTDATA / "audit-logs"
MINIKUBE = AUDIT_LOGS / "minikube-v1.34-audit-extract.jsonl"
V1BETA1 = AUDIT_LOGS / "audit2rbac-demo-v1beta1.log"
OPENSHIFT = AUDIT_LOGS / "openshift-cluster-logging-operator"
FALCO = AUDIT_LOGS / "falco-k8s-audit"


def json_lines(path: Path) -> list[dict]:
    """Independent oracle: every line parsed with the standard library."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def audit_logs(testdata: Path) -> Path:
    return testdata / "audit-logs"
