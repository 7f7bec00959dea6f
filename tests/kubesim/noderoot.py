"""Seed a directory to look like a kubeadm node's root file system.

The layout of ``kubeadm init`` output: the four control-plane static pods in
``/etc/kubernetes/manifests`` (the kube-apiserver one is the real kind v1.32.2 manifest from
/work/shared/testdata/apiserver-manifests/``kind-v1.32.2-austintalbot-before-audit.yaml``,
re-addressed to the node; etcd, controller-manager and scheduler written in kubeadm's
shape), placeholder files in ``/etc/kubernetes/pki`` and the kubeconfigs (never real key
material or credentials), ``/etc/kubernetes/tmp``, ``/var/log/pods``,
``/var/lib/kubelet/config.yaml``. Workers get no static pods.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

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


@functools.lru_cache(maxsize=1)
def _real_manifest() -> str:
    return (_shared_testdata() / TESTDATA_MANIFEST).read_text()


def apiserver_manifest(ip: str, version: str, port: int) -> str:
    """The real kind manifest, with this node's address, version and serving port."""
    text = _real_manifest()
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
    """Create a file with its final mode from the start (no window with looser bits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.chmod(path, mode)  # the umask may have narrowed it


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
