"""SimNode: one simulated node - its root directory, kubelet and kube-apiserver model.

The root is seeded like a kubeadm node (``kubeadm init`` output layout): the four
control-plane static pods in ``/etc/kubernetes/manifests`` (the kube-apiserver one is the
real kind v1.32.2 manifest from /work/shared/testdata/apiserver-manifests/
``kind-v1.32.2-austintalbot-before-audit.yaml``, re-addressed to this node; etcd,
controller-manager and scheduler in kubeadm's shape), placeholder files in
``/etc/kubernetes/pki`` (never real key material), ``/etc/kubernetes/tmp``, ``/var/log/pods``,
``/var/lib/kubelet/config.yaml``, a busybox userland and the crictl/systemctl stand-ins,
which talk to this node's kubelet endpoint on 127.0.0.1.
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

if TYPE_CHECKING:
    from tests.kubesim.sandbox import PodSandbox

log = logging.getLogger(__name__)

TESTDATA_MANIFEST = "apiserver-manifests/kind-v1.32.2-austintalbot-before-audit.yaml"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
UNREACHABLE = "node.kubernetes.io/unreachable"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
ETCD_IMAGE = "registry.k8s.io/etcd:3.5.21-0"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.0"

_PLACEHOLDER_CERT = (
    "-----BEGIN CERTIFICATE-----\n"
    "a2ltdWxhdG9yIHBsYWNlaG9sZGVyOiBub3QgYSBjZXJ0aWZpY2F0ZQ==\n"
    "-----END CERTIFICATE-----\n"
)
_PLACEHOLDER_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "a2ltdWxhdG9yIHBsYWNlaG9sZGVyOiBub3QgYSBrZXk=\n"
    "-----END PRIVATE KEY-----\n"
)
_PKI_PAIRS = (
    "ca",
    "apiserver",
    "apiserver-kubelet-client",
    "apiserver-etcd-client",
    "front-proxy-ca",
    "front-proxy-client",
    "etcd/ca",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
)


def _shared_testdata() -> Path:
    """The same location tests/conftest.py uses (KUBECTL_AUDIT_SHARED or ../shared)."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("KUBECTL_AUDIT_SHARED", repo.parent / "shared")) / "testdata"


# ---------------------------------------------------------------- manifests


def apiserver_manifest(ip: str, version: str, port: int) -> str:
    """The real kind manifest, with this node's address, version and serving port."""
    text = (_shared_testdata() / TESTDATA_MANIFEST).read_text()
    # The file's endpoint annotation (.4) and flag (.6) disagree; a fresh node agrees.
    text = text.replace("192.168.97.4", ip).replace("192.168.97.6", ip)
    text = text.replace("kube-apiserver:v1.32.2", f"kube-apiserver:{version}")
    text = text.replace(":6443", f":{port}").replace("--secure-port=6443", f"--secure-port={port}")
    text = text.replace("port: 6443", f"port: {port}")
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"


def _probe(host: str, path: str, port: int, scheme: str, failures: int, delay: bool = True) -> str:
    lines = [
        f"      failureThreshold: {failures}",
        "      httpGet:",
        f"        host: {host}",
        f"        path: {path}",
        f"        port: {port}",
        f"        scheme: {scheme}",
    ]
    if delay:
        lines.append("      initialDelaySeconds: 10")
    lines += ["      periodSeconds: 10", "      timeoutSeconds: 15"]
    return "\n".join(lines) + "\n"


def _volumes(entries: list[tuple[str, str, str, bool]]) -> tuple[str, str]:
    """(mounts, volumes) YAML blocks for (name, path, type, readOnly), sorted like kubeadm."""
    mounts = "".join(
        f"    - mountPath: {path}\n      name: {name}\n" + ("      readOnly: true\n" if ro else "")
        for name, path, _, ro in sorted(entries, key=lambda e: e[1])
    )
    volumes = "".join(
        f"  - hostPath:\n      path: {path}\n      type: {kind}\n    name: {name}\n"
        for name, path, kind, _ in sorted(entries, key=lambda e: e[0])
    )
    return mounts, volumes


def _static_pod(
    component: str,
    command: list[str],
    image: str,
    probes: str,
    volumes: list,
    extra_meta: str = "",
    requests: str = "cpu: 200m",
) -> str:
    mounts, vols = _volumes(volumes)
    annotations = f"  annotations:\n{extra_meta}" if extra_meta else ""
    flags = "".join(f"    - {arg}\n" for arg in command)
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n"
        f"{annotations}  creationTimestamp: null\n  labels:\n    component: {component}\n"
        f"    tier: control-plane\n  name: {component}\n  namespace: kube-system\n"
        "spec:\n  containers:\n  - command:\n"
        f"{flags}    image: {image}\n    imagePullPolicy: IfNotPresent\n"
        f"{probes}    name: {component}\n    resources:\n      requests:\n        {requests}\n"
        f"    volumeMounts:\n{mounts}"
        "  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n"
        "  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n"
        f"  volumes:\n{vols}status: {{}}\n"
    )


def etcd_manifest(name: str, ip: str) -> str:
    command = [
        "etcd",
        f"--advertise-client-urls=https://{ip}:2379",
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/var/lib/etcd",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        f"--initial-advertise-peer-urls=https://{ip}:2380",
        f"--initial-cluster={name}=https://{ip}:2380",
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        f"--listen-client-urls=https://127.0.0.1:2379,https://{ip}:2379",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        f"--listen-peer-urls=https://{ip}:2380",
        f"--name={name}",
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--snapshot-count=10000",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    ]
    probes = "    livenessProbe:\n" + _probe("127.0.0.1", "/livez", 2381, "HTTP", 8)
    probes += "    readinessProbe:\n" + _probe("127.0.0.1", "/readyz", 2381, "HTTP", 3, delay=False)
    probes += "    startupProbe:\n" + _probe("127.0.0.1", "/readyz", 2381, "HTTP", 24)
    return _static_pod(
        "etcd",
        command,
        ETCD_IMAGE,
        probes,
        [
            ("etcd-certs", "/etc/kubernetes/pki/etcd", "DirectoryOrCreate", False),
            ("etcd-data", "/var/lib/etcd", "DirectoryOrCreate", False),
        ],
        extra_meta=f"    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://{ip}:2379\n",
        requests="cpu: 100m\n        memory: 100Mi",
    )


_CA_VOLUMES = [
    ("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate", True),
    ("etc-ca-certificates", "/etc/ca-certificates", "DirectoryOrCreate", True),
    ("k8s-certs", "/etc/kubernetes/pki", "DirectoryOrCreate", True),
    (
        "usr-local-share-ca-certificates",
        "/usr/local/share/ca-certificates",
        "DirectoryOrCreate",
        True,
    ),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates", "DirectoryOrCreate", True),
]


def controller_manager_manifest(version: str) -> str:
    command = [
        "kube-controller-manager",
        "--allocate-node-cidrs=true",
        "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--bind-address=127.0.0.1",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-cidr=10.244.0.0/16",
        "--cluster-name=kubernetes",
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--leader-elect=true",
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--use-service-account-credentials=true",
    ]
    probes = "    livenessProbe:\n" + _probe("127.0.0.1", "/healthz", 10257, "HTTPS", 8)
    probes += "    startupProbe:\n" + _probe("127.0.0.1", "/healthz", 10257, "HTTPS", 24)
    volumes = [
        *_CA_VOLUMES,
        (
            "flexvolume-dir",
            "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
            "DirectoryOrCreate",
            False,
        ),
        ("kubeconfig", "/etc/kubernetes/controller-manager.conf", "FileOrCreate", True),
    ]
    return _static_pod(
        "kube-controller-manager",
        command,
        f"registry.k8s.io/kube-controller-manager:{version}",
        probes,
        volumes,
    )


def scheduler_manifest(version: str) -> str:
    command = [
        "kube-scheduler",
        "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf",
        "--leader-elect=true",
    ]
    probes = "    livenessProbe:\n" + _probe("127.0.0.1", "/livez", 10259, "HTTPS", 8)
    probes += "    readinessProbe:\n" + _probe(
        "127.0.0.1", "/readyz", 10259, "HTTPS", 3, delay=False
    )
    probes += "    startupProbe:\n" + _probe("127.0.0.1", "/livez", 10259, "HTTPS", 24)
    return _static_pod(
        "kube-scheduler",
        command,
        f"registry.k8s.io/kube-scheduler:{version}",
        probes,
        [("kubeconfig", "/etc/kubernetes/scheduler.conf", "FileOrCreate", True)],
        requests="cpu: 100m",
    )


def _kubeconfig_placeholder(user: str, port: int) -> str:
    return (
        'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ""\n'
        f"    server: https://127.0.0.1:{port}\n  name: kubernetes\ncontexts:\n- context:\n"
        f"    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\n"
        f"current-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n"
        f"- name: {user}\n  user: {{}}  # simulator placeholder: nodes hold no credentials\n"
    )


_KUBELET_CONFIG = """apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
fileCheckFrequency: 20s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
logging: {}
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
syncFrequency: 1m0s
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def seed_root(
    root: Path, *, name: str, ip: str, control_plane: bool, version: str, port: int
) -> None:
    """Lay out a kubeadm node's files under ``root``."""
    for rel in (
        "etc/kubernetes/manifests",
        "etc/kubernetes/tmp",
        "var/log/pods",
        "var/log/containers",
        "var/lib/kubelet/pki",
        "run/containerd",
        "etc/ssl/certs",
        "usr/share/ca-certificates",
    ):
        (root / rel).mkdir(parents=True, exist_ok=True)
    _write(root / "etc/hostname", name + "\n")
    _write(
        root / "etc/os-release",
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    )
    _write(root / "var/lib/kubelet/config.yaml", _KUBELET_CONFIG)
    _write(
        root / "etc/kubernetes/kubelet.conf",
        _kubeconfig_placeholder(f"system:node:{name}", port),
        0o600,
    )
    _write(root / "etc/kubernetes/pki/ca.crt", _PLACEHOLDER_CERT)
    if not control_plane:
        return
    (root / "var/lib/etcd").mkdir(parents=True, exist_ok=True)
    os.chmod(root / "var/lib/etcd", 0o700)
    for pair in _PKI_PAIRS:
        _write(root / f"etc/kubernetes/pki/{pair}.crt", _PLACEHOLDER_CERT)
        _write(root / f"etc/kubernetes/pki/{pair}.key", _PLACEHOLDER_KEY, 0o600)
    _write(root / "etc/kubernetes/pki/sa.key", _PLACEHOLDER_KEY, 0o600)
    _write(
        root / "etc/kubernetes/pki/sa.pub",
        "-----BEGIN PUBLIC KEY-----\nplaceholder\n-----END PUBLIC KEY-----\n",
    )
    for conf, user in (
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
    ):
        _write(root / "etc/kubernetes" / conf, _kubeconfig_placeholder(user, port), 0o600)
    manifests = root / "etc/kubernetes/manifests"
    _write(manifests / "etcd.yaml", etcd_manifest(name, ip), 0o600)
    _write(manifests / "kube-apiserver.yaml", apiserver_manifest(ip, version, port), 0o600)
    _write(manifests / "kube-controller-manager.yaml", controller_manager_manifest(version), 0o600)
    _write(manifests / "kube-scheduler.yaml", scheduler_manifest(version), 0o600)


# ---------------------------------------------------------------- the kubelet endpoint


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
