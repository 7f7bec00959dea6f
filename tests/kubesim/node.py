"""SimNode: one simulated node - its root directory, kubelet and kube-apiserver model.

The root is seeded like a kubeadm node (tests/kubesim/noderoot.py) plus a busybox userland
and the crictl/systemctl stand-ins, which talk to this node's kubelet endpoint on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.kubesim import apiserver, podrunner
from tests.kubesim.kubelet import Kubelet
from tests.kubesim.noderoot import (
    CONTROL_PLANE_LABEL,
    COREDNS_IMAGE,
    ETCD_IMAGE,
    PAUSE_IMAGE,
    UNREACHABLE,
    seed_root,
)

if TYPE_CHECKING:
    from tests.kubesim.sandbox import PodSandbox

log = logging.getLogger(__name__)


class SimNode:
    def __init__(
        self, cluster: Any, name: str, *, control_plane: bool, root: Path, ip: str | None = None
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.control_plane = control_plane
        self.root = Path(root)
        self.ip = ip or f"172.18.0.{2 + len(getattr(cluster, 'nodes', {}))}"
        self.kubelet = Kubelet(self)
        self.kubelet_url = ""
        self._runner: web.AppRunner | None = None

    @property
    def version(self) -> str:
        spec = getattr(self.cluster, "spec", None)
        return getattr(spec, "version", "v1.36.0")

    @property
    def api_port(self) -> int:
        server = getattr(self.cluster, "server", None)
        return int(getattr(server, "port", 6443) or 6443)

    # -- the Node object ---------------------------------------------------------------

    def images(self) -> list[dict[str, Any]]:
        version = self.version
        images = [
            (PAUSE_IMAGE, 320368),
            (COREDNS_IMAGE, 20939036),
            (f"registry.k8s.io/kube-proxy:{version}", 30917898),
        ]
        if self.control_plane:
            images += [
                (ETCD_IMAGE, 57680541),
                (f"registry.k8s.io/kube-apiserver:{version}", 28838282),
                (f"registry.k8s.io/kube-controller-manager:{version}", 26259392),
                (f"registry.k8s.io/kube-scheduler:{version}", 20518014),
            ]
        return [{"names": [image], "sizeBytes": size} for image, size in images]

    def node_object(self) -> dict[str, Any]:
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
        }
        spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
        if self.control_plane:
            labels[CONTROL_PLANE_LABEL] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
            spec["taints"] = [{"effect": "NoSchedule", "key": CONTROL_PLANE_LABEL}]
        conditions = [
            {
                "type": kind,
                "status": "False",
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": None,
                "lastTransitionTime": None,
            }
            for kind, reason, message in (
                (
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": None,
                "lastTransitionTime": None,
            }
        )
        capacity = {
            "cpu": "2",
            "ephemeral-storage": "61202244Ki",
            "hugepages-2Mi": "0",
            "memory": "8029324Ki",
            "pods": "110",
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {
                    "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": spec,
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": self.ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "allocatable": dict(capacity),
                "capacity": capacity,
                "conditions": conditions,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "images": self.images(),
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "",
                    "containerRuntimeVersion": "containerd://2.0.3",
                    "kernelVersion": os.uname().release,
                    "kubeProxyVersion": self.version,
                    "kubeletVersion": self.version,
                    "machineID": "",
                    "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "systemUUID": "",
                },
            },
        }

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._seed)
        await self._serve_kubelet_endpoint()
        self._install_standins()
        await self.kubelet.start()

    def _seed(self) -> None:
        from tests.kubesim.userland import install_busybox

        seed_root(
            self.root,
            name=self.name,
            ip=self.ip,
            control_plane=self.control_plane,
            version=self.version,
            port=self.api_port,
        )
        install_busybox(self.root)

    def _install_standins(self) -> None:
        try:
            from tests.kubesim.standins import install_standins
        except ImportError:
            log.warning("tests.kubesim.standins is missing: no crictl/systemctl in %s", self.root)
            return
        install_standins(self.root, self.kubelet_url)

    async def _serve_kubelet_endpoint(self) -> None:
        app = web.Application()
        app.router.add_post("/crictl", self._handle_crictl)
        app.router.add_post("/systemctl", self._handle_systemctl)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.kubelet_url = f"http://127.0.0.1:{port}"

    async def _reply(self, request: web.Request, run: Any) -> web.Response:
        from tests.kubesim.standins import decode_args, encode_reply

        try:
            argv = decode_args(await request.read())
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        if self.kubelet.is_broken and run is self.kubelet.run_crictl:
            code, out, err = (
                1,
                b"",
                (
                    b'time="" level=fatal msg="validate service connection: validate CRI v1 '
                    b"runtime API "
                    b'for endpoint \\"unix:///run/containerd/containerd.sock\\": rpc error: code = '
                    b'Unavailable"\n'
                ),
            )
        else:
            code, out, err = run(argv)
        return web.Response(
            body=encode_reply(code, out, err), content_type="application/octet-stream"
        )

    async def _handle_crictl(self, request: web.Request) -> web.Response:
        return await self._reply(request, self.kubelet.run_crictl)

    async def _handle_systemctl(self, request: web.Request) -> web.Response:
        return await self._reply(request, self.kubelet.run_systemctl)

    async def stop(self) -> None:
        await self.kubelet.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what the cluster asks -------------------------------------------------------------

    @property
    def apiserver_up(self) -> bool:
        worker = self.kubelet.apiserver
        return self.control_plane and worker is not None and worker.serving and not worker.held

    def apiserver_changed(self) -> None:
        notify = getattr(self.cluster, "api_availability_changed", None)
        if notify is not None:
            notify()

    def sandbox_for(self, namespace: str, pod: str) -> PodSandbox | None:
        return podrunner.sandbox_of(self.kubelet, namespace, pod)

    def record_request(self, record: Any) -> None:
        worker = self.kubelet.apiserver
        if worker is None or worker.sink is None or not worker.serving:
            return
        apiserver.record_request(worker.sink, record)

    # -- faults ----------------------------------------------------------------------------

    async def stop_apiserver(self) -> None:
        worker = self.kubelet.apiserver
        if worker is not None:
            await worker.hold()

    def start_apiserver(self) -> None:
        worker = self.kubelet.apiserver
        if worker is not None:
            worker.release()

    def set_kubelet_broken(self, broken: bool) -> None:
        """A dead kubelet stops posting status: the node lifecycle controller marks the node
        Unknown and taints it unreachable (NoSchedule + NoExecute); both go when it is back."""
        self.kubelet.broken = broken
        store = self.cluster.store
        node = store.get("nodes", None, self.name)
        if node is None:
            return
        fresh = self.node_object()
        taints = [
            t for t in node.get("spec", {}).get("taints") or [] if t.get("key") != UNREACHABLE
        ]
        conditions = fresh["status"]["conditions"]
        if broken:
            taints += [
                {"key": UNREACHABLE, "effect": effect} for effect in ("NoSchedule", "NoExecute")
            ]
            for condition in conditions:
                condition.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                )
        node.setdefault("spec", {})["taints"] = taints
        if not taints:
            node["spec"].pop("taints")
        node.setdefault("status", {})["conditions"] = conditions
        store.update("nodes", node)

    def set_kubelet_delay(self, seconds: float) -> None:
        self.kubelet.delay = max(float(seconds), 0.0)

    def set_kubelet_needs_restart(self, needed: bool) -> None:
        self.kubelet.needs_restart = needed
