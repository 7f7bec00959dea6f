"""kubesim: a Kubernetes cluster simulator for kubectl-audit's tests (see DESIGN.md §5).

`Cluster(ClusterSpec(control_planes=1, workers=1)).start()` serves a real HTTPS API on
loopback with a kubeconfig for `kubectl` and the `kubernetes` client; the pytest fixtures
`kubesim` and `kubesim_ha` (tests/kubesim/fixtures.py) hand one to a test.
"""

from tests.kubesim.cluster import Cluster, ClusterError, ClusterSpec, Knobs

__all__ = ["Cluster", "ClusterError", "ClusterSpec", "Knobs"]
