"""Shared fixtures. Paths to the real data in ../shared/testdata live here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.kubesim.fixtures import kubesim, kubesim_factory, kubesim_ha  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("KUBECTL_AUDIT_SHARED", ROOT.parent / "shared"))
TESTDATA = SHARED / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA} (set KUBECTL_AUDIT_SHARED)")
    return TESTDATA


_CLUSTER_FIXTURES = {"kubesim", "kubesim_ha", "kubesim_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a simulated cluster are `cluster` tests (`-m "not cluster"` skips)."""
    for item in items:
        if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)
