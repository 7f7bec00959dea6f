"""kubesim: a Kubernetes cluster simulator for kubectl-audit's tests (see DESIGN.md §5).

A `Cluster` serves a real HTTPS API on loopback with a kubeconfig that `kubectl` and the
`kubernetes` client use unchanged; its nodes have root directories seeded like kubeadm nodes,
kubelets that run the static pods, and debug pods whose exec runs real commands.

In tests, take the `kubesim` fixture (1 control plane + 1 worker) or `kubesim_ha` (3 + 1), or
`kubesim_factory(ClusterSpec(...), **knobs)`; they skip where the simulator cannot run (not
root, no `unshare`) and always shut the cluster down::

    def test_status(kubesim):
        # the plugin / kubectl / kubernetes client get --kubeconfig kubesim.kubeconfig
        node = kubesim.control_plane_nodes[0]
        manifest = kubesim.node_root(node) / "etc/kubernetes/manifests/kube-apiserver.yaml"
        kubesim.forbid("create", "pods/exec")       # 403 for everyone (user=... for one)
        kubesim.stop_apiserver(node)                # connections refused
        kubesim.start_apiserver(node)
        kubesim.wait_for(kubesim.api_up, timeout=10)
        alice = kubesim.kubeconfig_for("alice", ("devs",))   # a bearer-token user

Other handles: `make_image_unpullable`, `set_latency`, `break_kubelet`, `delay_kubelet`,
`kubelet_needs_restart`, `set_knob`, `get_object`, `call` (run a function on the loop).
By hand: `python -m tests.kubesim --control-planes 1 --workers 1`.
"""

from tests.kubesim.cluster import Cluster, ClusterError, ClusterSpec, Knobs

__all__ = ["Cluster", "ClusterError", "ClusterSpec", "Knobs"]
