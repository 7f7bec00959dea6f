"""Nothing the simulator's loop owns outlives it: subprocess, pipe and socket transports.

A transport still open when the loop closes is finalised later by the garbage collector, at
a random point of the test run: "unclosed transport" ResourceWarnings, "RuntimeError: Event
loop is closed" from BaseSubprocessTransport.__del__, and on Python 3.11.7 a pytest crash at
exit ("AST constructor recursion depth mismatch") when the finaliser runs inside ast.parse.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.kubesim import Cluster, ClusterSpec
from tests.kubesim.fixtures import skip_reason
from tests.kubesim.sandbox import PodSandbox, reap_children, release
from tests.kubesim.tests.test_exec_cluster import core, exec_in, host_pids, start_debug_pod
from tests.kubesim.tests.test_exec_protocol import collect

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@contextmanager
def finaliser_complaints() -> Iterator[list[str]]:
    """Warnings and exceptions raised by finalisers (__del__) inside the block."""
    complaints: list[str] = []
    previous_hook = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        complaints.append(f"{unraisable.exc_type.__name__}: {unraisable.exc_value}")

    gc.collect()  # what earlier tests left behind is not this block's doing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.unraisablehook = hook
        try:
            yield complaints
        finally:
            sys.unraisablehook = previous_hook
    complaints += [f"{w.category.__name__}: {w.message}" for w in caught]


def open_transports(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Transports of `loop` that were never closed (the test's own client is synchronous)."""
    # Transports keep their loop in `_loop` (asyncio has no public accessor): other tests'
    # leftovers must not fail this one.
    return [
        repr(obj)
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.BaseTransport)
        and getattr(obj, "_loop", None) is loop
        and not obj.is_closing()
    ]


def open_subprocesses(loop: asyncio.AbstractEventLoop) -> int:
    return sum("SubprocessTransport" in t for t in open_transports(loop))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_execs_finished_cut_and_running_leave_nothing_open_after_shutdown() -> None:
    cluster = Cluster(ClusterSpec(control_planes=1, workers=1))
    try:
        cluster.start()
        api = core(cluster)
        pod = start_debug_pod(cluster, api, cluster.worker_nodes[0])
        # Finished, but the client never closes its socket (the kubernetes client's WSClient
        # does not after the server's close message): the server must not wait for it.
        finished = exec_in(api, pod, ["sh", "-c", "echo done"])
        assert collect(finished) == (b"done\n", b"")
        # Still running when the simulator stops, its stdout held by a detached grandchild.
        running = exec_in(api, pod, ["sh", "-c", "setsid sleep 4242 & echo up; sleep 4343"])
        running.update(timeout=5)
        wait_until(lambda: host_pids(b"sleep 4242") and host_pids(b"sleep 4343"), "the exec")
        with finaliser_complaints() as complaints:
            cluster.shutdown()
            finished.sock.shutdown()  # the test client's own sockets are not under test
            running.sock.shutdown()
            api.api_client.close()
            gc.collect()
            left_open = open_transports(cluster.loop)
        assert complaints == []
        assert left_open == []
        assert not host_pids(b"sleep 4242") and not host_pids(b"sleep 4343")
    finally:
        cluster.shutdown()


def test_exec_cut_by_an_outage_is_reaped_before_the_loop_closes() -> None:
    cluster = Cluster(ClusterSpec(control_planes=1, workers=1))
    try:
        cluster.start()
        api = core(cluster)
        pod = start_debug_pod(cluster, api, cluster.worker_nodes[0])
        cut = exec_in(api, pod, ["sh", "-c", "setsid sleep 4444 & echo up; sleep 4545"])
        cut.update(timeout=5)
        wait_until(lambda: host_pids(b"sleep 4444") and host_pids(b"sleep 4545"), "the exec")
        cluster.stop_apiserver(cluster.control_plane_nodes[0])
        # The exec's process group dies with the cut; its detached child lives on with the pod,
        # holding the exec's stdout: the exec's transport must not wait for the pod's end.
        wait_until(lambda: not host_pids(b"sleep 4545"), "the cut exec killed")
        wait_until(lambda: open_subprocesses(cluster.loop) == 1, "only the pod's process open")
        assert host_pids(b"sleep 4444")
        with finaliser_complaints() as complaints:
            cluster.shutdown()
            cut.sock.shutdown()
            api.api_client.close()
            gc.collect()
            left_open = open_transports(cluster.loop)
        assert complaints == []
        assert left_open == []
    finally:
        cluster.shutdown()


def test_a_released_exec_closes_its_pipes_while_a_detached_child_holds_them(
    tmp_path: Path,
) -> None:
    """An exec nobody waits for (cut) must not keep its transport until the pod dies."""
    loop = asyncio.new_event_loop()
    sandbox = PodSandbox(name="default/leak", workdir=tmp_path, mounts=())

    async def scenario() -> list[str]:
        await sandbox.start(["sleep", "3600"])
        process = await sandbox.exec(["sh", "-c", "setsid sleep 4646 & echo up; sleep 4747"],
                                     stdin=False)  # fmt: skip
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 10) == b"up\n"
        for _ in range(200):  # `sleep` runs once setsid is done: the group kill misses it
            if host_pids(b"sleep 4646"):
                break
            await asyncio.sleep(0.05)
        release(process)
        # Before the pod ends: the detached `sleep 4646` still holds the exec's stdout.
        await asyncio.wait_for(process.wait(), 10)
        assert host_pids(b"sleep 4646")
        await reap_children()
        transports = open_transports(loop)
        await sandbox.terminate()
        return transports

    with finaliser_complaints() as complaints:
        try:
            still_open = loop.run_until_complete(scenario())
        finally:
            loop.run_until_complete(reap_children())
            loop.close()
        gc.collect()
    assert still_open == []
    assert complaints == []
