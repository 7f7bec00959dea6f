"""pytest fixtures: a fresh simulated cluster per test, always shut down afterwards.

`kubesim`: one control plane + one worker. `kubesim_ha`: three control planes + one worker.
`kubesim_factory`: start clusters with any ClusterSpec and knobs. They skip (with the reason)
where the simulator cannot run: it needs root and `unshare` for the pods' mount namespaces.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kubesim.cluster import Cluster, ClusterError, ClusterSpec


@functools.cache
def skip_reason() -> str | None:
    """Why the simulator cannot run here, or None."""
    if os.geteuid() != 0:
        return f"tests/kubesim needs root for mount namespaces (running as uid {os.geteuid()})"
    if shutil.which("unshare") is None:
        return "tests/kubesim needs `unshare` (util-linux) for mount namespaces"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if probe.returncode != 0:
        return f"tests/kubesim: `unshare --mount` does not work here: {probe.stderr.strip()}"
    return None


def _require_simulator() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def kubesim_factory() -> Iterator[Callable[..., Cluster]]:
    """Starts clusters on demand: `kubesim_factory(ClusterSpec(...), latency=0.1)`."""
    _require_simulator()
    started: list[Cluster] = []

    def start(spec: ClusterSpec | None = None, **knobs: Any) -> Cluster:
        cluster = Cluster(spec, **knobs)
        started.append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        errors = []
        for cluster in reversed(started):
            try:
                cluster.shutdown()
            except ClusterError as exc:  # keep shutting the others down, then report
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def kubesim(kubesim_factory: Callable[..., Cluster]) -> Cluster:
    return kubesim_factory(ClusterSpec(control_planes=1, workers=1))


@pytest.fixture
def kubesim_ha(kubesim_factory: Callable[..., Cluster]) -> Cluster:
    return kubesim_factory(ClusterSpec(control_planes=3, workers=1))
