"""ReloadingContext on its own: a server that built its context once still serves renewals.

The server below wraps every connection with the *first* context it got, so a renewed
certificate can only reach clients through the context's SNI callback swap.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from tests.webhook.gunicorn_server import SERVICE_DNS, SecretVolume, client_context, issue
from webhook.tls import ReloadingContext, server_context_builder

pytestmark = pytest.mark.timeout(30)


class OneContextServer:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # so the loop notices `stopped` promptly
        self.stopped = threading.Event()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            with raw:
                try:
                    with self.context.wrap_socket(raw, server_side=True) as tls:
                        tls.sendall(b"ok")
                except (ssl.SSLError, OSError):
                    continue  # a client that refused our certificate

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.listener.close()


def served_serial(port: int, ca: trustme.CA) -> int:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client_context(ca).wrap_socket(raw, server_hostname=SERVICE_DNS) as tls,
    ):
        assert tls.recv(2) == b"ok"
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


@pytest.fixture
def volume(tmp_path: Path) -> SecretVolume:
    return SecretVolume(tmp_path / "tls")


@pytest.fixture
def first_ca(volume: SecretVolume) -> trustme.CA:
    ca = trustme.CA()
    volume.publish(*issue(ca))
    return ca


@pytest.fixture
def reloader(volume: SecretVolume, first_ca: trustme.CA) -> ReloadingContext:
    build = server_context_builder(str(volume.certfile), str(volume.keyfile))
    return ReloadingContext(build, str(volume.certfile), str(volume.keyfile), retry_seconds=0)


@pytest.fixture
def server(reloader: ReloadingContext) -> Iterator[OneContextServer]:
    running = OneContextServer(reloader.context())
    yield running
    running.close()


def test_renewal_reaches_a_server_that_built_its_context_once(
    server: OneContextServer, volume: SecretVolume, first_ca: trustme.CA, reloader: ReloadingContext
) -> None:
    first_pem = volume.certfile.read_bytes()
    assert served_serial(server.port, first_ca) == serial(first_pem)
    new_ca = trustme.CA()
    new_cert, new_key = issue(new_ca)
    volume.publish(new_cert, new_key)
    assert served_serial(server.port, new_ca) == serial(new_cert)
    assert reloader.reloads == 1
    with pytest.raises(ssl.SSLCertVerificationError):
        served_serial(server.port, first_ca)


def test_unchanged_files_keep_the_same_context(reloader: ReloadingContext) -> None:
    assert reloader.context() is reloader.context()
    assert reloader.reloads == 0


def test_mismatched_pair_keeps_the_last_good_context(
    reloader: ReloadingContext, volume: SecretVolume
) -> None:
    good = reloader.context()
    cert, _ = issue(trustme.CA())
    _, other_key = issue(trustme.CA())
    volume.publish(cert, other_key)
    assert reloader.context() is good
    volume.publish(*issue(trustme.CA()))
    assert reloader.context() is not good and reloader.reloads == 1


def test_first_load_failure_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crt")
    reloader = ReloadingContext(server_context_builder(missing, missing), missing, missing)
    with pytest.raises(FileNotFoundError):
        reloader.context()
