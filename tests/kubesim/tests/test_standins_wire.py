"""crictl/systemctl stand-ins: the wire format, and the real scripts run with busybox in a node
root against a tiny aiohttp kubelet endpoint that answers with encode_reply/decode_args."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from tests.kubesim.fixtures import skip_reason
from tests.kubesim.sandbox import Mount, PodSandbox
from tests.kubesim.standins import (
    decode_args,
    decode_reply,
    encode_args,
    encode_reply,
    install_standins,
    standin_script,
)
from tests.kubesim.tests.test_exec_protocol import LoopThread
from tests.kubesim.userland import install_busybox

needs_root = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# Arguments are C strings: anything but NUL, including bytes that are not UTF-8.
c_strings = (
    st.binary(max_size=40)
    .filter(lambda b: b"\0" not in b)
    .map(lambda b: b.decode("utf-8", "surrogateescape"))
)


@given(st.lists(c_strings, max_size=8))
def test_args_round_trip(args: list[str]) -> None:
    assert decode_args(encode_args(args)) == args


@given(st.integers(0, 255), st.binary(max_size=300), st.binary(max_size=300))
def test_reply_round_trip(code: int, out: bytes, err: bytes) -> None:
    assert decode_reply(encode_reply(code, out, err)) == (code, out, err)


def test_malformed_bodies_are_refused() -> None:
    with pytest.raises(ValueError, match="JSON array"):
        decode_args(b"ps\0-a")
    with pytest.raises(ValueError, match="array of strings"):
        decode_args(b'["ps", 1]')
    with pytest.raises(ValueError, match=r"0\.\.255"):
        encode_reply(256, b"", b"")
    with pytest.raises(ValueError, match="header"):
        decode_reply(b"0 1\nx")
    with pytest.raises(ValueError, match="length"):
        decode_reply(b"0 1 1\nx")
    with pytest.raises(ValueError, match="plain http"):
        standin_script("crictl", "http://127.0.0.1:1/'; rm -rf /")


@pytest.fixture(scope="module")
def kubelet(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A node root with busybox + stand-ins, and an endpoint answering what a test sets."""
    root = tmp_path_factory.mktemp("standins") / "node"
    install_busybox(root)
    state = SimpleNamespace(requests=[], reply=(0, b"", b""), raw=None, status=200)

    async def answer(request: web.Request) -> web.Response:
        state.requests.append((request.path, decode_args(await request.read())))
        if state.raw is not None:
            return web.Response(body=state.raw, status=state.status)
        return web.Response(body=encode_reply(*state.reply))

    loop = LoopThread()

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/crictl", answer)
        app.router.add_post("/systemctl", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = loop.run(start())
    install_standins(root, f"http://127.0.0.1:{port}")
    state.root = root
    yield state
    loop.run(runner.cleanup())
    loop.stop()


def run_on_node(root: Path, *argv: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, timeout=30)


def fresh(kubelet: SimpleNamespace, reply=(0, b"", b""), raw=None, status=200) -> None:
    kubelet.requests.clear()
    kubelet.reply, kubelet.raw, kubelet.status = reply, raw, status


@needs_root
def test_arguments_with_spaces_quotes_newlines_and_empties_arrive_unchanged(kubelet) -> None:
    fresh(kubelet, reply=(0, b"ok\n", b""))
    args = ["logs", "--tail", "1", "a b", 'it\'s "quoted"', "line1\nline2", "", "$HOME", "*"]
    args += ["back\\slash", "tab\tand\x01ctl", "héllo", '["json"]', "-o=json"]
    result = run_on_node(kubelet.root, "crictl", *args)
    assert result.returncode == 0, result.stderr
    assert kubelet.requests == [("/crictl", args)]
    assert result.stdout == b"ok\n"


@needs_root
def test_non_utf8_argument_bytes_survive(kubelet) -> None:
    fresh(kubelet)
    run_on_node(kubelet.root, "crictl", b"\xff\xfe")
    assert kubelet.requests == [("/crictl", [b"\xff\xfe".decode("utf-8", "surrogateescape")])]


@needs_root
def test_no_arguments_is_an_empty_list(kubelet) -> None:
    fresh(kubelet)
    run_on_node(kubelet.root, "systemctl")
    assert kubelet.requests == [("/systemctl", [])]


@needs_root
def test_stdout_stderr_and_exit_code_are_reproduced_byte_for_byte(kubelet) -> None:
    out = bytes(range(256)) * 8 + os.urandom(256 * 1024)
    err = b"E1128 warning\n\x00\xff"
    fresh(kubelet, reply=(3, out, err))
    result = run_on_node(kubelet.root, "systemctl", "restart", "kubelet")
    assert (result.returncode, result.stdout, result.stderr) == (3, out, err)
    assert kubelet.requests == [("/systemctl", ["restart", "kubelet"])]


@needs_root
def test_garbage_or_http_errors_from_the_endpoint_fail_like_a_dead_daemon(kubelet) -> None:
    for raw, status in ((b"not a reply", 200), (b"boom", 500), (b"", 200)):
        fresh(kubelet, raw=raw, status=status)
        result = run_on_node(kubelet.root, "crictl", "ps")
        assert result.returncode == 1
        assert b"level=fatal" in result.stderr and result.stdout == b""


@needs_root
def test_unreachable_endpoint_fails_like_crictl_and_systemctl_without_their_daemon(
    tmp_path,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "node"
    install_busybox(root)
    install_standins(root, f"http://127.0.0.1:{port}")
    crictl = run_on_node(root, "crictl", "ps", "-a")
    assert crictl.returncode == 1 and crictl.stdout == b""
    assert crictl.stderr.startswith(b'time="')
    assert b'level=fatal msg="validate service connection' in crictl.stderr
    assert b"connect: connection refused" in crictl.stderr
    systemctl = run_on_node(root, "systemctl", "restart", "kubelet")
    assert (systemctl.returncode, systemctl.stderr) == (
        1,
        b"Failed to connect to bus: Connection refused\n",
    )


def test_install_replaces_a_busybox_link_without_writing_through_it(tmp_path) -> None:
    root = tmp_path / "node"
    install_busybox(root)
    busybox = (root / "bin/busybox").read_bytes()
    os.link(root / "bin/busybox", root / "usr/bin/systemctl")
    install_standins(root, "http://127.0.0.1:10250")
    assert (root / "bin/busybox").read_bytes() == busybox
    script = (root / "usr/bin/systemctl").read_text()
    assert script.startswith("#!/bin/sh") and "url='http://127.0.0.1:10250/systemctl'" in script
    assert (root / "usr/local/bin/crictl").stat().st_mode & 0o777 == 0o755


@needs_root
def test_works_from_a_pod_with_the_node_root_mounted_read_only(kubelet, tmp_path) -> None:
    fresh(kubelet, reply=(0, b"CONTAINER ID\n", b""))

    async def scenario() -> tuple[int | None, bytes, bytes]:
        pod = PodSandbox(
            name="debug", workdir=tmp_path, mounts=[Mount(kubelet.root, "/host", read_only=True)]
        )
        await pod.start(["sleep", "60"])
        try:
            process = await pod.exec(["chroot", "/host", "crictl", "ps", "-a"], stdin=False)
            out, err = await asyncio.wait_for(process.communicate(), 30)
            return process.returncode, out, err
        finally:
            await pod.terminate()

    assert asyncio.run(scenario()) == (0, b"CONTAINER ID\n", b"")
    assert kubelet.requests == [("/crictl", ["ps", "-a"])]
