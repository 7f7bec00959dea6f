"""PodSandbox: one pod's processes in private mount + PID namespaces over a busybox root."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.kubesim.fixtures import skip_reason
from tests.kubesim.sandbox import (
    USERLAND_TEMPLATE,
    ExecutableNotFound,
    Mount,
    PodSandbox,
    SandboxError,
)
from tests.kubesim.userland import install_busybox

# Root and working mount namespaces, probed once by the simulator's fixtures.
pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    install_busybox(root)
    (root / "etc/hostname").write_text("cp-1\n")
    (root / "etc/kubernetes/manifests").mkdir(parents=True)
    (root / "etc/kubernetes/manifests/kube-apiserver.yaml").write_text("kind: Pod\n")
    return root


async def run(sandbox: PodSandbox, argv: Sequence[str], stdin: bytes | None = None):
    process = await sandbox.exec(argv, stdin=stdin is not None)
    out, err = await asyncio.wait_for(process.communicate(stdin), 20)
    return process.returncode, out.decode("utf-8", "surrogateescape"), err.decode()


def host_mount_table() -> str:
    return Path("/proc/self/mountinfo").read_text()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def pod(tmp_path: Path, mounts: Sequence[Mount] = (), **kw) -> PodSandbox:
    return PodSandbox(name="kube-system/debug-cp-1", workdir=tmp_path, mounts=mounts, **kw)


def test_main_process_is_pid_1_and_exec_shares_the_pod(tmp_path: Path) -> None:
    async def scenario() -> None:
        sandbox = pod(tmp_path, env={"GREETING": "hi there"})
        await sandbox.start(["sleep", "3600"])
        try:
            assert sandbox.running
            code, out, _ = await run(sandbox, ["sh", "-c", 'ps -o pid,args; echo "$GREETING"'])
            assert code == 0
            assert "    1 sleep 3600" in out.splitlines()[1]
            assert out.endswith("hi there\n")
            code, out, err = await run(sandbox, ["cat"], stdin=b"\x00\xffbinary")
            assert (code, out.encode("utf-8", "surrogateescape"), err) == (0, b"\x00\xffbinary", "")
            assert (await run(sandbox, ["sh", "-c", "exit 42"]))[0] == 42
        finally:
            await sandbox.terminate()
        assert not sandbox.running
        assert await sandbox.wait() == 137  # SIGKILL, as the runtime reports it
        assert not sandbox.dir.exists()

    asyncio.run(scenario())


def test_main_process_exit_code_and_output_go_to_the_container_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        sandbox = pod(tmp_path)
        await sandbox.start(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 5"])
        assert await asyncio.wait_for(sandbox.wait(), 10) == 5
        assert sandbox.log_path.read_text() == "to-stdout\nto-stderr\n"
        await sandbox.terminate()

    asyncio.run(scenario())


def test_host_view_read_only_mounts_and_chroot_host(tmp_path: Path, node_root: Path) -> None:
    logs = node_root / "var/log/kubernetes/audit"
    logs.mkdir(parents=True)

    async def scenario() -> None:
        sandbox = pod(
            tmp_path,
            [
                Mount(node_root, "/host"),
                Mount(node_root / "etc/kubernetes", "/etc/kubernetes", read_only=True),
                Mount(logs, "/var/log/audit"),
            ],
        )
        await sandbox.start(["sleep", "3600"])
        try:
            code, out, _ = await run(sandbox, ["cat", "/host/etc/hostname"])
            assert (code, out) == (0, "cp-1\n")
            code, _, err = await run(
                sandbox, ["sh", "-c", "echo x > /etc/kubernetes/manifests/evil.yaml"]
            )
            assert code != 0 and "Read-only file system" in err
            assert not (node_root / "etc/kubernetes/manifests/evil.yaml").exists()
            code, _, _ = await run(sandbox, ["sh", "-c", "echo entry > /var/log/audit/a.log"])
            assert code == 0 and (logs / "a.log").read_text() == "entry\n"
            # A node admin's view: the node's own shell, /dev and files through chroot /host.
            code, out, err = await run(
                sandbox,
                [
                    "chroot",
                    "/host",
                    "sh",
                    "-c",
                    "echo quiet >/dev/null; cat /etc/hostname; ls /etc/kubernetes/manifests;"
                    " mkdir -p /etc/kubernetes/audit && echo policy > /etc/kubernetes/audit/p",
                ],
            )
            assert (code, out, err) == (0, "cp-1\nkube-apiserver.yaml\n", "")
            assert (node_root / "etc/kubernetes/audit/p").read_text() == "policy\n"
            # The pod's own root is not the node's.
            assert (await run(sandbox, ["cat", "/etc/hostname"]))[0] != 0
        finally:
            await sandbox.terminate()
        assert (node_root / "etc/hostname").read_text() == "cp-1\n"  # node root untouched

    asyncio.run(scenario())


def test_setsid_process_outlives_its_exec_and_dies_with_the_pod(
    tmp_path: Path, node_root: Path
) -> None:
    async def scenario() -> None:
        sandbox = pod(tmp_path, [Mount(node_root, "/host")])
        await sandbox.start(["sleep", "3600"])
        code, _, _ = await run(
            sandbox,
            ["sh", "-c", "setsid nohup sleep 7777 </dev/null >/dev/null 2>&1 &"],
        )
        assert code == 0
        await asyncio.sleep(0.1)
        detached = [p for p in pids_running("sleep 7777") if alive(p)]
        assert len(detached) == 1, "the setsid'ed process must survive its exec"
        await sandbox.terminate()
        deadline = time.monotonic() + 5
        while alive(detached[0]):
            assert time.monotonic() < deadline, "setsid'ed process survived its pod"
            await asyncio.sleep(0.02)

    asyncio.run(scenario())


def pids_running(args: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
            except OSError:
                continue
            if cmdline == args.encode():
                found.append(int(entry.name))
    return found


def test_everything_dies_when_the_main_process_exits(tmp_path: Path) -> None:
    async def scenario() -> None:
        sandbox = pod(tmp_path)
        await sandbox.start(["sleep", "3600"])
        await run(sandbox, ["sh", "-c", "setsid sleep 8888 </dev/null >/dev/null 2>&1 &"])
        await asyncio.sleep(0.1)
        (detached,) = pids_running("sleep 8888")
        main = sandbox.pid
        assert main is not None
        os.kill(main, 9)
        assert await asyncio.wait_for(sandbox.wait(), 10) == 137
        deadline = time.monotonic() + 5
        while alive(detached):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await sandbox.terminate()

    asyncio.run(scenario())


def test_nothing_leaks_into_the_host_mount_table(tmp_path: Path, node_root: Path) -> None:
    before = host_mount_table()

    async def scenario() -> None:
        sandbox = pod(tmp_path, [Mount(node_root, "/host", read_only=True)])
        await sandbox.start(["sleep", "3600"])
        try:
            code, out, _ = await run(sandbox, ["cat", "/proc/self/mountinfo"])
            assert code == 0 and " /host " in out  # mounted, but only in the pod's namespace
            assert str(sandbox.dir) not in host_mount_table()
        finally:
            await sandbox.terminate()
        assert not sandbox.dir.exists()

    asyncio.run(scenario())
    assert host_mount_table() == before
    assert sorted(p.name for p in tmp_path.iterdir()) in (["node"], [USERLAND_TEMPLATE, "node"])


def test_commands_that_cannot_start_are_refused_like_runc(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(ExecutableNotFound, match=r'exec: "kube-nothing": executable file'):
            await pod(tmp_path).start(["kube-nothing"])
        sandbox = pod(tmp_path)
        await sandbox.start(["sleep", "3600"])
        try:
            with pytest.raises(ExecutableNotFound, match="stat /opt/tool: no such file"):
                await sandbox.exec(["/opt/tool"], stdin=False)
            assert (await run(sandbox, ["/bin/true"]))[0] == 0
        finally:
            await sandbox.terminate()
        with pytest.raises(SandboxError, match="not running"):
            await sandbox.exec(["true"], stdin=False)

    asyncio.run(scenario())


def test_bad_mounts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"without '\.\.'"):
        pod(tmp_path, [Mount(tmp_path, "/host/../etc")])
    with pytest.raises(SandboxError, match="does not exist"):
        asyncio.run(pod(tmp_path, [Mount(tmp_path / "missing", "/data")]).start(["true"]))


def test_terminate_during_start_leaves_nothing_running(tmp_path: Path) -> None:
    async def scenario() -> None:
        sandbox = pod(tmp_path)
        starting = asyncio.create_task(sandbox.start(["sleep", "9191"]))
        await asyncio.sleep(0)  # start is under way
        await sandbox.terminate()
        with pytest.raises(SandboxError, match="terminated while starting"):
            await starting
        assert not sandbox.running
        assert not sandbox.dir.exists()

    asyncio.run(scenario())
    assert pids_running("sleep 9191") == []
