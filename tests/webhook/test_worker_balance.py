"""New connections are spread over gunicorn's workers, not piled onto one.

The API server keeps a few keep-alive connections to the webhook. With one listening socket
shared by all workers, the worker that wakes first accepts a whole burst of them, and every
review then runs on that worker's one core (a load test went from ~600 to ~260 reviews/s).
Each worker has its own SO_REUSEPORT socket instead, and the kernel spreads connections.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.webhook.gunicorn_server import SERVICE_DNS, Gunicorn, client_context, start, stop

pytestmark = pytest.mark.timeout(90)

CONNECTIONS = 32
_ESTABLISHED, _LISTEN = "01", "0A"


def _tcp_sockets(port: int) -> dict[int, str]:
    """inode -> TCP state of every IPv4 socket whose local port is `port`."""
    found: dict[int, str] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], int(fields[9])
        if int(local.rsplit(":", 1)[1], 16) == port:
            found[inode] = state
    return found


def _sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _by_worker(server: Gunicorn, state: str) -> dict[int, int]:
    sockets = _tcp_sockets(server.port)
    return {
        pid: sum(1 for inode in _sockets_of(pid) if sockets.get(inode) == state)
        for pid in server.worker_pids()
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Gunicorn, trustme.CA]]:
    ca = trustme.CA()
    running = start(tmp_path, ca, workers=2, threads=2)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every worker binds its own socket as it boots
            listening = _by_worker(running, _LISTEN)
            if len(listening) == 2 and all(listening.values()):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"both workers never listened: {_by_worker(running, _LISTEN)}")
        yield running, ca
    finally:
        stop(running)


def test_each_worker_listens_on_a_socket_of_its_own(server: tuple[Gunicorn, trustme.CA]) -> None:
    running, _ = server
    listening = _tcp_sockets(running.port)
    sockets = [
        {inode for inode in _sockets_of(pid) if listening.get(inode) == _LISTEN}
        for pid in running.worker_pids()
    ]
    assert len(sockets) == 2 and all(sockets), sockets
    # An inherited shared socket would be the same inode in both workers.
    assert not sockets[0] & sockets[1], sockets


def test_a_burst_of_connections_is_spread_over_both_workers(
    server: tuple[Gunicorn, trustme.CA],
) -> None:
    running, ca = server
    context = client_context(ca)
    # All TCP connections first, as a client opening its pool at once, then TLS and a
    # request on each so that every one has surely been accepted.
    raw = [
        socket.create_connection(("127.0.0.1", running.port), timeout=10)
        for _ in range(CONNECTIONS)
    ]
    tls = [context.wrap_socket(sock, server_hostname=SERVICE_DNS) for sock in raw]
    try:
        for sock in tls:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: webhook\r\n\r\n")
        for sock in tls:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        counts = _by_worker(running, _ESTABLISHED)
        assert sum(counts.values()) == CONNECTIONS, counts
        # Hashing 32 connections over 2 sockets leaves fewer than 4 on one with probability
        # ~3e-6; a shared socket typically gives one worker all or nearly all of them.
        assert min(counts.values()) >= 4, counts
    finally:
        for sock in tls:
            sock.close()
