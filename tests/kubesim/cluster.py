"""Cluster: one simulated Kubernetes cluster on its own event loop thread.

Tests talk to it over HTTPS with the real `kubernetes` client and `kubectl`; the synchronous
methods here (fault handles, waits) are for the test thread and run their work on the loop,
so the simulator's state is only ever touched from one thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.kubesim import certs
from tests.kubesim.requestinfo import RequestRecord
from tests.kubesim.sandbox import reap_children
from tests.kubesim.server import ApiServer
from tests.kubesim.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CALL_TIMEOUT = 30.0


class ClusterError(RuntimeError):
    """The simulator could not do what a test asked (start, a fault handle, a wait)."""


@dataclass(frozen=True)
class ClusterSpec:
    control_planes: int = 1
    workers: int = 1
    version: str = "v1.36.0"
    name: str = "kubesim"
    # Seconds the cluster may take to serve its first request before start() gives up.
    start_timeout: float = 20.0


@dataclass
class Knobs:
    """Timing and fault settings every component reads live (set through Cluster's handles)."""

    kubelet_period: float = 0.05
    apiserver_restart_delay: float = 0.3
    apiserver_ready_delay: float = 0.0
    bytes_per_mb: int = 1048576
    pullable_images: set[str] | None = None
    unpullable_images: set[str] = field(default_factory=set)
    kubelet_broken: bool = False
    kubelet_needs_restart: bool = False
    latency: float = 0.0
    # seconds between BOOKMARK events on idle watches that allow them (the real apiserver
    # sends one about every minute)
    watch_bookmark_interval: float = 60.0
    # (user or None for everyone, verb or "*", resource[/subresource] or path or "*")
    forbidden: set[tuple[str | None, str, str]] = field(default_factory=set)


def node_names(spec: ClusterSpec) -> list[tuple[str, bool]]:
    """kind's naming: <name>-control-plane, <name>-control-plane2, <name>-worker, ..."""
    names = []
    for i in range(spec.control_planes):
        names.append((f"{spec.name}-control-plane{i + 1 if i else ''}", True))
    for i in range(spec.workers):
        names.append((f"{spec.name}-worker{i + 1 if i else ''}", False))
    return names


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve())
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(mount_point)
    return found


class Cluster:
    def __init__(
        self,
        spec: ClusterSpec | None = None,
        *,
        workdir: Path | None = None,
        node_factory: Callable[..., Any] | None = None,
        **knobs: Any,
    ) -> None:
        self.spec = spec or ClusterSpec()
        self.knobs = Knobs(**knobs)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubesim-"))
        self._node_factory = node_factory
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name=f"kubesim-{self.spec.name}", daemon=True
        )
        self.store: Store
        self.server: ApiServer
        self.nodes: dict[str, Any] = {}
        self.kubeconfig = self.workdir / "kubeconfig"
        self._tokens: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._apiservers_seen: set[str] = set()
        self._availability_task: asyncio.Task | None = None
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Cluster:
        self._thread.start()
        self._started = True
        try:
            self._run(self._astart(), timeout=self.spec.start_timeout + 10)
            self.wait_for(self.api_up, timeout=self.spec.start_timeout, what="an apiserver up")
        except BaseException:
            self.shutdown()
            raise
        return self

    async def _astart(self) -> None:
        creds = certs.credentials()
        self.store = Store()
        for name in SEED_NAMESPACES:
            self.store.create(
                "namespaces",
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        self.server = ApiServer(self, certs.server_ssl_context(creds, self.workdir / "pki"))
        # Bind first: the port must be known before nodes write it into their manifests,
        # and it stays the same across outages.
        await self.server.start()
        certs.write_kubeconfig(self.kubeconfig, self.api_url, creds)
        factory = self._node_factory or _default_node_factory()
        for name, control_plane in node_names(self.spec):
            root = self.workdir / "nodes" / name
            root.mkdir(parents=True, exist_ok=True)
            node = factory(self, name, control_plane=control_plane, root=root)
            self.nodes[name] = node
            self.store.create("nodes", node.node_object())
        await asyncio.gather(*(node.start() for node in self.nodes.values()))
        self.api_availability_changed()

    def shutdown(self) -> None:
        """Stops nodes, server and loop; removes the work directory. Idempotent."""
        if not self._started:
            self._remove_workdir()
            return
        self._started = False
        try:
            if self.loop.is_running():
                self._run(self._astop(), timeout=CALL_TIMEOUT)
        finally:
            if self.loop.is_running():
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT)
            if self._thread.is_alive():
                raise ClusterError("the simulator's event loop thread did not stop")
            self.loop.close()
            self._remove_workdir()

    async def _astop(self) -> None:
        results = await asyncio.gather(
            *(node.stop() for node in self.nodes.values()), return_exceptions=True
        )
        if hasattr(self, "server"):
            await self.server.close()
        if hasattr(self, "store"):
            self.store.close_watches()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Cancelled execs and pod starts leave killed processes nobody waits for: their
        # transports must be closed while the loop still runs (see sandbox.reap_children).
        await reap_children()
        await asyncio.get_running_loop().shutdown_default_executor()
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise ClusterError(f"node shutdown failed: {failures[0]!r}") from failures[0]

    def _remove_workdir(self) -> None:
        if not self._own_workdir or not self.workdir.exists():
            return
        mounted = _mounts_under(self.workdir)
        if mounted:
            # Deleting through a leaked bind mount would delete the mount's source.
            raise ClusterError(f"not removing {self.workdir}: still mounted: {mounted}")
        shutil.rmtree(self.workdir)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- running things on the loop -----------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        if threading.current_thread() is self._thread:
            raise ClusterError("synchronous Cluster methods cannot be called on its loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs `fn` on the loop (awaiting it if it is a coroutine) and returns its result."""

        async def invoke() -> T:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return self._run(invoke())

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Polls `predicate` (on the test thread) until true; ClusterError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    # -- what tests read ----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def node_root(self, name: str) -> Path:
        if name not in self.nodes:
            raise ClusterError(f"no node {name!r}; nodes: {sorted(self.nodes)}")
        return self.nodes[name].root

    @property
    def control_plane_nodes(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.control_plane]

    @property
    def worker_nodes(self) -> list[str]:
        return [name for name, node in self.nodes.items() if not node.control_plane]

    def api_up(self) -> bool:
        return self.call(lambda: self.server.listening)

    def get_object(self, resource: str, namespace: str | None, name: str) -> dict | None:
        return self.call(self.store.get, resource, namespace, name)

    # -- users ---------------------------------------------------------------------------

    def add_user(self, user: str, groups: tuple[str, ...] = ()) -> str:
        """Registers a bearer token for `user` (with `groups`) and returns it."""
        token = secrets.token_urlsafe(24)
        self.call(self._tokens.__setitem__, token, (user, tuple(groups)))
        return token

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig acting as `user` through a bearer token."""
        token = self.add_user(user, groups)
        path = self.workdir / f"kubeconfig-{user.replace(':', '-')}"
        return certs.write_kubeconfig(
            path, self.api_url, certs.credentials(), user=user, token=token
        )

    def user_for_token(self, token: str) -> tuple[str, tuple[str, ...]] | None:
        return self._tokens.get(token)

    def is_forbidden(self, user: str, verb: str, resource: str) -> bool:
        return any(
            (who is None or who == user) and what_verb in (verb, "*") and what in (resource, "*")
            for who, what_verb, what in self.knobs.forbidden
        )

    # -- what nodes call (on the loop) ---------------------------------------------------

    def apiservers_up(self) -> list[str]:
        return sorted(
            name for name, node in self.nodes.items() if node.control_plane and node.apiserver_up
        )

    def kubelet_reachable(self, name: str) -> bool:
        node = self.nodes.get(name)
        kubelet = getattr(node, "kubelet", None)
        broken = getattr(kubelet, "is_broken", False)
        return node is not None and not broken

    def api_availability_changed(self) -> None:
        """Follows the apiservers: listener closed (connections refused) while none is up,
        connections served by a stopped apiserver cut, listener reopened on the same port."""
        up = set(self.apiservers_up())
        for gone in self._apiservers_seen - up:
            self.server.drop_connections(gone)
        self._apiservers_seen = up
        if not up:
            self.server.stop_listening()
        elif not self.server.listening and (
            self._availability_task is None or self._availability_task.done()
        ):
            self._availability_task = self.loop.create_task(self._reopen())

    async def _reopen(self) -> None:
        if self.apiservers_up():
            await self.server.start_listening()
        if not self.apiservers_up():  # it went down again while the socket was opening
            self.server.stop_listening()

    def record_request(self, record: RequestRecord, node: str | None = None) -> None:
        """Hands the served request to the apiserver that served it (for its audit log)."""
        up = self.apiservers_up()
        target = node if node in up else (up[0] if up else None)
        if target is not None:
            self.nodes[target].record_request(record)

    def version_info(self) -> dict:
        major, minor = self.spec.version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(max(int(minor) - 1, 0)),
            "gitVersion": self.spec.version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-04-22T00:00:00Z",
            "goVersion": "go1.25.3",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # -- fault handles (test thread) -----------------------------------------------------

    def _node_call(self, name: str, method: str, *args: Any) -> Any:
        node = self.nodes.get(name)
        if node is None:
            raise ClusterError(f"no node {name!r}; nodes: {sorted(self.nodes)}")
        return self.call(getattr(node, method), *args)

    def stop_apiserver(self, node: str) -> None:
        self._node_call(node, "stop_apiserver")

    def start_apiserver(self, node: str) -> None:
        self._node_call(node, "start_apiserver")

    def break_kubelet(self, node: str, broken: bool = True) -> None:
        self._node_call(node, "set_kubelet_broken", broken)

    def delay_kubelet(self, node: str, seconds: float) -> None:
        self._node_call(node, "set_kubelet_delay", seconds)

    def kubelet_needs_restart(self, node: str, needed: bool = True) -> None:
        self._node_call(node, "set_kubelet_needs_restart", needed)

    def make_image_unpullable(self, image: str) -> None:
        self.call(self.knobs.unpullable_images.add, image)

    def forbid(self, verb: str, resource: str, user: str | None = None) -> None:
        """From now on `user` (everyone when None) gets 403 for `verb` on `resource`
        (`pods`, `pods/exec`, a non-resource path, or `*`)."""
        self.call(self.knobs.forbidden.add, (user, verb, resource))

    def allow(self, verb: str, resource: str, user: str | None = None) -> None:
        self.call(self.knobs.forbidden.discard, (user, verb, resource))

    def set_latency(self, seconds: float) -> None:
        self.call(setattr, self.knobs, "latency", seconds)

    def set_knob(self, name: str, value: Any) -> None:
        if not hasattr(self.knobs, name):
            raise ClusterError(f"no knob {name!r}")
        self.call(setattr, self.knobs, name, value)


def _default_node_factory() -> Callable[..., Any]:
    from tests.kubesim.node import SimNode

    return SimNode
