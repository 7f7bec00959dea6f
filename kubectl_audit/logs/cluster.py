"""`kubectl audit logs` from the cluster: find each control plane's log, read them in parallel.

Where the log is comes from the running apiserver (its mirror pod's `--audit-log-path`,
mapped through its hostPath volume to the path on the node), never from a guess. Per node
the log is read through the kubelet `/logs` proxy when it lies under /var/log (no privileged
pod), else, or with `--via debug-pod`, through the node-agent pod with a `grep -F` prefilter
and gzip on the node. Each node's source runs in its own thread a few blocks ahead of the
merge, so the nodes download (and their pods start) in parallel while memory stays bounded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kubectl_audit.errors import AuditError, UsageError
from kubectl_audit.kube.errors import ApiUnreachable
from kubectl_audit.logs.events import Event
from kubectl_audit.logs.filters import Matcher
from kubectl_audit.logs.nodefiles import LogFiles
from kubectl_audit.logs.output import Renderer
from kubectl_audit.logs.proxy import (
    KubeletFiles,
    ProxyRefused,
    ProxySource,
    ProxyTail,
    log_files_for,
)
from kubectl_audit.logs.scan import Problems, Scanner
from kubectl_audit.logs.sources import Block, LogSource
from kubectl_audit.node.debugpod import DebugPodOptions
from kubectl_audit.status.logproxy import under_var_log

log = logging.getLogger(__name__)

VIAS = ("auto", "node-proxy", "debug-pod")
PREFETCH_BLOCKS = 4
POLL_INTERVAL = 1.0


class AuditOff(AuditError):
    """No selected control-plane node writes an audit log file (exit 1)."""


@dataclass(frozen=True)
class NodeLog:
    """Where one control-plane node's audit log is, or why there is none to read."""

    node: str
    host_path: str | None  # the current log as a path on the node
    off: str | None = None  # the reason there is nothing to read, when host_path is None


def locate_log(node: str, pod: dict[str, Any] | None, version: str) -> NodeLog:
    """The audit log file of `node` from its running kube-apiserver mirror pod (pure)."""
    from kubectl_audit.apiserver.state import audit_state
    from kubectl_audit.apiserver.staticpod import ManifestError, pod_from_object

    if pod is None:
        return NodeLog(node, None, "no kube-apiserver mirror pod runs on it")
    try:
        state = audit_state(pod_from_object(pod), version)
    except ManifestError as error:
        return NodeLog(node, None, error.message)
    if not state.policy_file:
        return NodeLog(node, None, "audit logging is off (no --audit-policy-file)")
    if not state.log_path:
        backend = " (events go to the webhook only)" if state.webhook else ""
        return NodeLog(node, None, f"no --audit-log-path: no log file is written{backend}")
    if state.log_path == "-":
        return NodeLog(
            node,
            None,
            "--audit-log-path=- writes events to the apiserver's stdout: read them with "
            f"`kubectl logs -n kube-system kube-apiserver-{node}`",
        )
    if state.log_host_path is None:
        return NodeLog(
            node,
            None,
            f"--audit-log-path={state.log_path} is not on a hostPath volume: the events stay "
            "inside the container",
        )
    return NodeLog(node, state.log_host_path)


def node_prefilter(matcher: Matcher) -> tuple[tuple[bytes, ...], ...]:
    """The `grep -F` stages of the node-side prefilter: one per needle set (grep ORs the
    patterns of one stage, the pipeline ANDs the stages), so what crosses the network is
    close to the matches themselves. A set with an empty literal matches every line and is
    left out; no usable set: no prefilter (everything is sent, gzipped)."""
    return tuple(
        tuple(dict.fromkeys(s.loose)) for s in matcher.needle_sets if s.loose and all(s.loose)
    )


def via_for(log_file: NodeLog, via: str) -> str:
    """`node-proxy` or `debug-pod` for this node (`auto`: the proxy when it can)."""
    assert log_file.host_path is not None
    served = under_var_log(log_file.host_path) is not None
    if via == "auto":
        return "node-proxy" if served else "debug-pod"
    if via == "node-proxy" and not served:
        raise UsageError(
            f"{log_file.node}: the audit log is {log_file.host_path}, outside /var/log, "
            "which is all the kubelet /logs proxy serves",
            hint="use --via debug-pod (or --via auto)",
        )
    return via


def all_off_error(logs: Sequence[NodeLog]) -> AuditOff:
    reasons = "; ".join(f"{n.node}: {n.off}" for n in logs)
    return AuditOff(
        f"no audit log to read on any selected control-plane node ({reasons})",
        hint="turn audit logging on with `kubectl audit enable`",
    )


class _Tail(Protocol):
    node: str

    def poll(self) -> Iterator[Block]: ...

    def close(self) -> None: ...


@dataclass
class ClusterLogs:
    """The sources of one query and what they hold open (node-agent pods); close() it."""

    sources: list[LogSource]
    skipped: list[NodeLog]
    _tails: list[_Tail] = field(default_factory=list)
    _agents: list[Any] = field(default_factory=list)  # nodeshell.NodeAgent

    def close(self) -> None:
        """Stop the followers and readers first, then delete the pods they used."""
        for tail in self._tails:
            tail.close()
        for source in self.sources:
            if isinstance(source, Prefetched):
                source.close()
        for agent in self._agents:
            agent.close()

    def check(self, warn: Callable[[str], None]) -> None:
        """A warning per node that could not be read; the first error if none could."""
        failed = [s for s in self.sources if isinstance(s, Prefetched) and s.failure]
        if failed and len(failed) == len(self.sources):
            assert failed[0].failure is not None
            raise failed[0].failure
        for source in failed:
            assert source.failure is not None
            warn(f"warning: {source.node}: cannot read its audit log: {source.failure.message}")

    def tails(self) -> list[_Tail]:
        """Followers that continue each node's log where its scan stopped."""
        from kubectl_audit.logs.nodeshell import DebugPodSource, PodTail

        for prefetched in self.sources:
            if getattr(prefetched, "failure", None) is not None:
                continue  # said so already; following it would only fail again
            source = getattr(prefetched, "source", prefetched)
            if isinstance(source, ProxyOrPod):
                source = source.used
            if isinstance(source, ProxySource):
                self._tails.append(
                    ProxyTail(
                        source.node,
                        source.files,
                        source.log,
                        source.read_up_to,
                        source.backups_seen,
                        source.current_first_line,
                    )
                )
            elif isinstance(source, DebugPodSource):
                path = f"{source.log.directory}/{source.log.current_name}"
                self._tails.append(PodTail(source.node, source.agent, path, source.read_up_to))
        return self._tails


def open_cluster(
    api_client: Any,
    nodes: Sequence[str],
    via: str,
    prefilter: tuple[tuple[bytes, ...], ...],
    *,
    since: datetime | None,
    until: datetime | None,
    pod_options: DebugPodOptions,
    follow: bool = False,
    warn: Callable[[str], None] = lambda message: None,
) -> ClusterLogs:
    """One prefetching LogSource per selected control-plane node that writes a log file.

    A node without one gets a warning; none at all is an AuditOff error (exit 1).
    """
    from kubectl_audit.controlplane import read_control_plane

    control_plane = read_control_plane(api_client)
    selected = control_plane.select(nodes)
    if not selected:
        raise UsageError("no control-plane nodes found", hint="name them with --node")
    found: list[tuple[dict[str, Any], NodeLog]] = []
    for node in selected:
        name = node["metadata"]["name"]
        found.append(
            (
                node,
                locate_log(name, control_plane.apiserver_pod(name), control_plane.server_version),
            )
        )
    readable = [(node, where) for node, where in found if where.host_path is not None]
    skipped = [where for _, where in found if where.host_path is None]
    if not readable:
        raise all_off_error(skipped)
    for where in skipped:
        warn(f"warning: {where.node}: {where.off}")
    logs = ClusterLogs([], skipped)
    for node, where in readable:
        assert where.host_path is not None
        # One shared client: exec goes through kube/rest.py's websocket call, which leaves the
        # client as it is, and only this client carries --request-timeout.
        node_client = api_client
        files = log_files_for(where.host_path)
        chosen = via_for(where, via)

        def pod_source(
            node: dict[str, Any] = node, client: Any = node_client, files: LogFiles = files
        ) -> LogSource:
            from kubectl_audit.logs.nodeshell import DebugPodSource, NodeAgent

            agent = NodeAgent(client, node, pod_options)
            logs._agents.append(agent)
            return DebugPodSource(agent.node, agent, files, prefilter, since, until)

        source: LogSource
        if chosen == "debug-pod":
            source = pod_source()
        else:
            proxy = ProxySource(
                where.node, KubeletFiles(node_client, where.node), files, since, until
            )
            proxy.leave_tail_to_follower = follow
            source = proxy if via == "node-proxy" else ProxyOrPod(proxy, pod_source, warn)
        logs.sources.append(Prefetched(source))
    return logs


# Answers of the kubelet /logs proxy after which the node-agent pod may still get the log:
# RBAC without `nodes/proxy`, a kubelet that does not serve /logs (enableSystemLogHandler).
_FALL_BACK_ON = frozenset({403, 404})


@dataclass
class ProxyOrPod:
    """`--via auto` for a log under /var/log: the proxy; the node-agent pod when the proxy
    refuses the node before serving anything (not when the node is down: no pod would
    start there either)."""

    proxy: ProxySource
    make_pod_source: Callable[[], LogSource]
    warn: Callable[[str], None]
    used: LogSource | None = None

    @property
    def node(self) -> str:
        return self.proxy.node

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        self.used = self.proxy
        served = False
        try:
            for block in self.proxy.blocks():
                served = True
                yield block
        except ProxyRefused as error:
            if served or error.status not in _FALL_BACK_ON:
                raise
            self.warn(
                f"note: {self.node}: the kubelet /logs proxy refused ({error.message}); "
                "reading through a node-agent pod instead"
            )
            self.used = self.make_pod_source()
            yield from self.used.blocks()


_DONE = object()


class Prefetched:
    """Runs a source's `blocks()` in a thread, a few blocks ahead of the consumer.

    The merge pulls one node at a time; without this, each node's network reads (and its
    pod's start) would wait for the others. Errors are raised in the consumer's thread.
    """

    def __init__(self, source: LogSource, depth: int = PREFETCH_BLOCKS) -> None:
        self.source = source
        self.node = source.node
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: AuditError | None = None

    def size(self) -> int | None:
        return self.source.size()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._produce, name=f"logs-{self.node}", daemon=True
            )
            self._thread.start()

    def _produce(self) -> None:
        blocks = self.source.blocks()
        try:
            for block in blocks:
                if not self._put(block):
                    return
            self._put(_DONE)
        except AuditError as error:
            # One node that cannot be read (kubelet down, pod refused) must not hide the
            # others: a warning for it, unless every node fails (ClusterLogs.check).
            self.failure = error
            self._put(_DONE)
        except BaseException as error:  # noqa: BLE001 - raised again in the consumer
            self._put(error)
        finally:
            # A consumer that stopped early (--limit): end the exec or HTTP stream now.
            close = getattr(blocks, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def blocks(self) -> Iterator[Block]:
        self.start()
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_all(sources: Sequence[LogSource]) -> None:
    """Start every node's reader at once (the merge would start them one by one)."""
    for source in sources:
        if isinstance(source, Prefetched):
            source.start()


def follow(
    tails: Sequence[_Tail],
    matcher: Matcher,
    renderer: Renderer,
    problems: Problems,
    *,
    limit: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    interval: float = POLL_INTERVAL,
    warn: Callable[[str], None] = lambda message: None,
) -> None:
    """Poll every node's tail; the events of one round are written in time order.

    A node that cannot be reached for a while (its apiserver or kubelet restarting) is
    polled again the next round, from where it stopped; that is said once per outage.
    """
    scanners = [Scanner(matcher, tail.node, problems) for tail in tails]
    away: set[str] = set()
    while not stop():
        found: list[Event] = []
        for tail, scanner in zip(tails, scanners, strict=True):
            try:
                for block in tail.poll():
                    found.extend(scanner.block_events(block))
            except (ApiUnreachable, ProxyRefused) as error:
                if isinstance(error, ProxyRefused) and (error.status or 0) < 500:
                    raise
                if tail.node not in away:
                    warn(f"warning: {tail.node}: {error.message}; retrying")
                    away.add(tail.node)
                continue
            away.discard(tail.node)
        found.sort(key=lambda e: e.key)
        for event in found:
            if limit is not None and renderer.count >= limit:
                return
            renderer.write(event)
        renderer.flush()
        if limit is not None and renderer.count >= limit:
            return
        if not found:
            time.sleep(interval)
