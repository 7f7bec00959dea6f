"""The exec websocket protocol end to end: the real `kubernetes` client (and a raw websocket
client for wire details) against `handle_exec` mounted on the real exec URL of a small
aiohttp server, over a real PodSandbox."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import websocket
from aiohttp import web
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from tests.kubesim.execstream import handle_exec, parse_exec_query
from tests.kubesim.fixtures import skip_reason
from tests.kubesim.sandbox import Mount, PodSandbox, reap_children
from tests.kubesim.userland import install_busybox

# Root and working mount namespaces, probed once by the simulator's fixtures.
pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

EXEC_PATH = "/api/v1/namespaces/default/pods/debugger/exec"


class LoopThread:
    """One asyncio loop in a background thread, as the simulator's Cluster runs it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    work = tmp_path_factory.mktemp("exec")
    node_root = work / "node"
    install_busybox(node_root)
    loop = LoopThread()
    sandbox = PodSandbox(name="debugger", workdir=work, mounts=[Mount(node_root, "/host")])
    handlers: set[asyncio.Task] = set()

    async def exec_route(request: web.Request) -> web.StreamResponse:
        options = parse_exec_query(request.query)
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            return await handle_exec(
                request,
                sandbox,
                options.command,
                stdin=options.stdin,
                stdout=options.stdout,
                stderr=options.stderr,
                tty=options.tty,
            )
        finally:
            handlers.discard(task)

    async def start() -> tuple[web.AppRunner, int]:
        await sandbox.start(["sleep", "3600"])
        app = web.Application()
        app.router.add_route("*", EXEC_PATH, exec_route)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    async def cancel_handlers() -> None:
        """What the simulated API server does to open exec streams when it goes down."""
        tasks = list(handlers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    runner, port = loop.run(start())
    url = f"http://127.0.0.1:{port}"
    configuration = client.Configuration()
    configuration.host = url
    api = client.CoreV1Api(client.ApiClient(configuration))
    yield SimpleNamespace(
        url=url,
        ws_url=f"ws://127.0.0.1:{port}{EXEC_PATH}",
        api=api,
        sandbox=sandbox,
        node_root=node_root,
        loop=loop,
        cancel_handlers=lambda: loop.run(cancel_handlers()),
    )
    loop.run(runner.cleanup())
    loop.run(sandbox.terminate())
    # Execs cut by cancel_handlers: their transports must close before the loop does.
    loop.run(reap_children())
    loop.stop()


def open_exec(server, command: list[str], *, stdin: bool = False, stderr: bool = True, **kw):
    return stream(
        server.api.connect_get_namespaced_pod_exec,
        "debugger",
        "default",
        command=command,
        stdin=stdin,
        stdout=True,
        stderr=stderr,
        tty=False,
        binary=True,
        _preload_content=False,
        **kw,
    )


def collect(ws, timeout: float = 60.0) -> tuple[bytes, bytes]:
    """Read stdout and stderr until the server closes the connection."""
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while ws.is_open():
        assert time.monotonic() < deadline, "exec did not finish in time"
        ws.update(timeout=1)
        out += ws.read_channel(1, timeout=0)
        err += ws.read_channel(2, timeout=0)
    out += ws.read_channel(1, timeout=0)
    err += ws.read_channel(2, timeout=0)
    # WSClient leaves its socket open after the server's close message; a socket left to
    # the garbage collector warns at a random later point of the run.
    ws.sock.shutdown()
    return bytes(out), bytes(err)


def raw_exec(server, query: str, protocols: list[str] | None):
    """A bare websocket client, to look at the exact messages."""
    return websocket.create_connection(
        f"{server.ws_url}?{query}", subprotocols=protocols, timeout=10
    )


def messages(ws, *, closed_cleanly: bool = True) -> list[tuple[int, bytes]]:
    """All (opcode, data) the server sends until it closes (with a close message or not)."""
    received = []
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                assert closed_cleanly, "expected the connection to be aborted"
                return received
            received.append((opcode, data))
    except websocket.WebSocketConnectionClosedException:
        assert not closed_cleanly, "connection ended without a close message"
    finally:
        ws.shutdown()  # as in collect()
    return received


def test_stdout_stderr_and_success_status_with_v5(server):
    ws = open_exec(server, ["sh", "-c", "echo out; echo err >&2"])
    assert ws.subprotocol == "v5.channel.k8s.io"
    out, err = collect(ws)
    assert (out, err) == (b"out\n", b"err\n")
    assert ws.returncode == 0


def test_non_zero_exit_code_is_reported_like_the_real_server(server):
    ws = open_exec(server, ["sh", "-c", "exit 3"])
    collect(ws)
    status = json.loads(ws.peek_channel(3))
    assert ws.returncode == 3
    assert status == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: "
        "error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }


def test_preloaded_text_call_returns_all_output(server):
    result = stream(
        server.api.connect_get_namespaced_pod_exec,
        "debugger",
        "default",
        command=["sh", "-c", "printf 'a b\\n'; printf 'c\\n' >&2"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert sorted(result.splitlines()) == ["a b", "c"]


def test_stdin_is_binary_safe_and_v5_close_ends_it(server):
    payload = bytes(range(256)) * 64
    ws = open_exec(server, ["cat"], stdin=True)
    ws.write_stdin(payload)
    ws.close_channel(0)
    out, _ = collect(ws)
    assert out == payload
    assert ws.returncode == 0


def test_text_mode_client_stdin_and_stdout_are_utf8(server):
    ws = stream(
        server.api.connect_get_namespaced_pod_exec,
        "debugger",
        "default",
        command=["cat"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    ws.write_stdin("héllo ✓\n")
    ws.close_channel(0)
    ws.run_forever(timeout=20)
    ws.sock.shutdown()  # as in collect()
    assert ws.read_stdout() == "héllo ✓\n"
    assert ws.returncode == 0


def collect_frames(ws, timeout: float = 60.0) -> dict[int, bytearray]:
    """Read the client's websocket frame by frame into bytearrays.

    WSClient.update() appends each frame with `bytes +=`, quadratic in the output size:
    with the real server's 32 KiB messages, 50 MB take minutes through it. Reading the same
    connection (websocket-client, as the kubernetes client opened it) frame by frame is
    linear; the bytes on the wire are the same.
    """
    channels: dict[int, bytearray] = {}
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "exec did not finish in time"
        opcode, frame = ws.sock.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.sock.shutdown()  # as in collect()
            return channels
        if frame.data:
            channels.setdefault(frame.data[0], bytearray()).extend(frame.data[1:])


def test_fifty_megabytes_of_random_bytes_through_stdout_arrive_intact(server):
    blob = os.urandom(50 * 1024 * 1024)
    (server.node_root / "tmp" / "blob").write_bytes(blob)
    try:
        ws = open_exec(server, ["cat", "/host/tmp/blob"])
        channels = collect_frames(ws)
    finally:
        (server.node_root / "tmp" / "blob").unlink()
    out = bytes(channels.get(1, b""))
    assert channels.get(2, b"") == b""
    assert len(out) == len(blob)
    assert hashlib.sha256(out).digest() == hashlib.sha256(blob).digest()
    assert json.loads(channels[3]) == {"metadata": {}, "status": "Success"}


def test_fifty_megabytes_of_random_bytes_through_stdin_arrive_intact(server):
    blob = os.urandom(50 * 1024 * 1024)
    ws = open_exec(server, ["sha256sum"], stdin=True)
    for offset in range(0, len(blob), 1 << 20):
        ws.write_stdin(blob[offset : offset + (1 << 20)])
    ws.close_channel(0)
    out, _ = collect(ws)
    assert out.split()[0].decode() == hashlib.sha256(blob).hexdigest()


def test_v4_is_negotiated_when_offered_first_and_cannot_close_stdin(server):
    ws = open_exec(
        server,
        ["sh", "-c", "echo v4; exit 7"],
        stdin=True,
        _request_timeout=30,
        _headers={"sec-websocket-protocol": "v4.channel.k8s.io,v5.channel.k8s.io"},
    )
    assert ws.subprotocol == "v4.channel.k8s.io"
    out, _ = collect(ws)
    assert out == b"v4\n"
    assert ws.returncode == 7


def test_unsupported_subprotocol_is_refused_with_403(server):
    with pytest.raises(ApiException) as caught:
        open_exec(server, ["true"], _headers={"sec-websocket-protocol": "v9.channel.k8s.io"})
    assert "403" in str(caught.value)


def test_one_empty_message_on_the_lowest_writable_channel_first(server):
    ws = raw_exec(server, "command=true&stdout=true&stderr=true", ["v5.channel.k8s.io"])
    assert messages(ws)[0] == (websocket.ABNF.OPCODE_BINARY, b"\x01")
    ws = raw_exec(server, "command=true&stdin=true&stdout=false&stderr=false", None)
    received = messages(ws)
    # No subprotocol: the pre-v4 binary protocol, which reports success by saying nothing.
    assert received == [(websocket.ABNF.OPCODE_BINARY, b"\x03")]


def test_base64_protocol_uses_text_messages_with_digit_channels(server):
    ws = raw_exec(server, "command=cat&stdin=true&stderr=false", ["v4.base64.channel.k8s.io"])
    ws.send("0" + base64.b64encode(b"\x00\xffhello").decode())
    ws.close()  # v4 cannot close stdin alone: closing the connection ends it (and the output)
    ws = raw_exec(
        server,
        "command=sh&command=-c&command=" + quote("printf '\\377'") + "&stderr=false",
        ["v4.base64.channel.k8s.io"],
    )
    received = messages(ws)
    assert received[0] == (websocket.ABNF.OPCODE_TEXT, b"1")
    assert received[1] == (websocket.ABNF.OPCODE_TEXT, b"1" + base64.b64encode(b"\xff"))
    assert received[2][1][:1] == b"3"
    assert json.loads(base64.b64decode(received[2][1][1:])) == {"metadata": {}, "status": "Success"}


def test_command_that_cannot_start_gives_an_internal_error_status(server):
    ws = open_exec(server, ["no-such-command"])
    collect(ws)
    status = json.loads(ws.read_channel(3))
    assert status["reason"] == "InternalError"
    assert status["code"] == 500
    assert status["message"].startswith("Internal error occurred: error executing command")
    assert 'exec: "no-such-command": executable file not found in $PATH' in status["message"]


def test_incoming_message_over_32_mib_ends_the_connection(server):
    ws = raw_exec(server, "command=cat&stdin=true", ["v5.channel.k8s.io"])
    try:
        ws.send_binary(b"\x00" + bytes(33 << 20))
        # aiohttp closes with 1009 (message too big); x/net/websocket just hangs up.
        received = messages(ws)
    except ConnectionResetError:
        received = []
        ws.shutdown()
    assert all(data[:1] != b"\x03" for _, data in received)  # no status: connection ended


def test_cancelled_exec_aborts_the_socket_and_kills_only_its_process_group(server):
    marker = server.node_root / "tmp" / "detached-started"
    # The detached process itself leaves the marker, after setsid: only then is it out of
    # the exec's process group (a fork not yet past setsid would die with the group).
    script = (
        "setsid sh -c 'touch /host/tmp/detached-started; exec sleep 4242' "
        "</dev/null >/dev/null 2>&1 & "
        "while [ ! -e /host/tmp/detached-started ]; do sleep 0.01; done; "
        "echo started; exec sleep 4343"
    )
    ws = raw_exec(server, "command=sh&command=-c&command=" + quote(script), ["v5.channel.k8s.io"])
    assert ws.recv_data()[1] == b"\x01"  # connected
    assert ws.recv_data()[1] == b"\x01started\n"  # the detached process exists now
    assert marker.exists()
    server.cancel_handlers()
    assert messages(ws, closed_cleanly=False) == []  # aborted: no status, no close message
    check = open_exec(server, ["ps", "-o", "args"])
    processes, _ = collect(check)
    assert b"sleep 4242" in processes
    assert b"sleep 4343" not in processes
    kill = open_exec(
        server, ["sh", "-c", "kill $(ps -o pid,args | awk '/[s]leep 4242/ {print $1}')"]
    )
    collect(kill)
    marker.unlink()


def test_tty_sends_stderr_on_stdout_and_ignores_resize_messages(server):
    script = quote("read line; echo out $line; echo err >&2")
    ws = raw_exec(
        server,
        f"command=sh&command=-c&command={script}&stdin=true&tty=true&stderr=true",
        ["v5.channel.k8s.io"],
    )
    ws.send_binary(b'\x04{"Width":80,"Height":24}')
    ws.send_binary(b"\x00hello\n")
    received = messages(ws)
    output = b"".join(data[1:] for _, data in received if data[:1] == b"\x01")
    assert output == b"out hello\nerr\n"
    assert not [data for _, data in received if data[:1] == b"\x02"]
    assert json.loads(received[-1][1][1:])["status"] == "Success"
