"""Run the real gunicorn (webhook/gunicorn_conf.py) with TLS on loopback for a test.

Certificates live in a kubelet-style Secret volume: `tls.crt -> ..data/tls.crt` and
`..data -> ..<version>`, replaced by an atomic symlink flip as the kubelet does.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trustme

from tests.conftest import ROOT

SERVICE_DNS = "kubectl-audit-webhook.kubectl-audit.svc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SecretVolume:
    """A directory laid out like a mounted Secret, with kubelet-style atomic updates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0
        root.mkdir(parents=True, exist_ok=True)

    def publish(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.version += 1
        target = self.root / f"..v{self.version}"
        target.mkdir()
        (target / "tls.crt").write_bytes(cert_pem)
        (target / "tls.key").write_bytes(key_pem)
        os.chmod(target / "tls.key", 0o600)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(target.name)
        os.replace(tmp_link, self.root / "..data")
        for name in ("tls.crt", "tls.key"):
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")

    @property
    def certfile(self) -> Path:
        return self.root / "tls.crt"

    @property
    def keyfile(self) -> Path:
        return self.root / "tls.key"


def issue(ca: trustme.CA) -> tuple[bytes, bytes]:
    cert = ca.issue_cert(SERVICE_DNS, "127.0.0.1")
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    return chain, cert.private_key_pem.bytes()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class ServiceConnection(http.client.HTTPSConnection):
    """Dials 127.0.0.1 but sends SNI for, and verifies, the Service name (as the API server)."""

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=SERVICE_DNS)  # type: ignore[attr-defined]


@dataclass
class Gunicorn:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_dir: Path
    volume: SecretVolume
    extra: dict[str, Any] = field(default_factory=dict)

    def connect(self, ca: trustme.CA, timeout: float = 5.0) -> ServiceConnection:
        return ServiceConnection(
            "127.0.0.1", self.port, context=client_context(ca), timeout=timeout
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.add(int(stat.parent.name))
        return pids


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, bytes, http.client.HTTPResponse]:
    data = body if body is None or isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, response.read(), response


def start(
    tmp: Path,
    ca: trustme.CA,
    *,
    workers: int = 2,
    threads: int = 2,
    ready_timeout: float = 30.0,
    env_extra: dict[str, str] | None = None,
) -> Gunicorn:
    volume = SecretVolume(tmp / "tls")
    volume.publish(*issue(ca))
    port = free_port()
    metrics_dir = tmp / "metrics"
    log_path = tmp / "gunicorn.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WEBHOOK_BIND": f"127.0.0.1:{port}",
        "WEBHOOK_TLS_CERT": str(volume.certfile),
        "WEBHOOK_TLS_KEY": str(volume.keyfile),
        "WEBHOOK_WORKERS": str(workers),
        "WEBHOOK_THREADS": str(threads),
        "WEBHOOK_WORKER_TMP_DIR": str(tmp),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **(env_extra or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "webhook" / "gunicorn_conf.py")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Gunicorn(port, process, log_path, metrics_dir, volume)
    try:
        _wait_ready(server, ca, ready_timeout)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(server: Gunicorn, ca: trustme.CA, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        try:
            connection = server.connect(ca, timeout=2)
            status, _, _ = request(connection, "GET", "/readyz")
            connection.close()
            if status == 200 and len(server.worker_pids()) >= 1:
                return
        except (OSError, http.client.HTTPException) as error:
            last_error = error  # not listening yet; the deadline bounds the wait
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn not ready within {timeout} s ({last_error}):\n{server.log()}")


def stop(server: Gunicorn, timeout: float = 15.0) -> None:
    """SIGTERM (graceful), then SIGKILL to the group we started if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)
