"""A node's audit log through the node-agent pod: filtered and gzipped on the node.

For logs the kubelet does not serve (outside /var/log) or with `--via debug-pod`. Per file,
one exec runs `grep -F` with the filters' literal fragments on the node (a superset of the
matches: the exact filter runs here again) and pipes what passes through `gzip`, so the exec
stream carries a fraction of the matching bytes. Backups already gzipped by lumberjack are
unpacked on the node first (to grep them), or sent as they are when there is nothing to grep.

`-f` runs `tail -c +N -F` on the current log: it reopens the file after lumberjack's rename.
It is neither filtered nor compressed on the node, because grep and gzip hold back their
output in buffers and `-f` is about seeing events as they happen.
"""

from __future__ import annotations

import posixpath
import queue
import shlex
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubectl_audit.errors import NodeError
from kubectl_audit.logs.nodefiles import LogFiles, coalesce, gunzip_chunks, is_gzip_name
from kubectl_audit.logs.sources import Block, BrokenInput, read_blocks
from kubectl_audit.node.debugpod import CONTAINER, HOST_ROOT, DebugPod, DebugPodOptions
from kubectl_audit.node.podexec import ExecStream

# The exec URL carries argv: literals beyond this are not worth a longer URL (<~6 KiB).
MAX_LITERAL_BYTES = 3000
READ_TIMEOUT = 1800.0  # seconds for one file (grep on a 1 GiB log takes seconds)
_SIZE_MARK = b"kubectl-audit-size "


def _patterns(literals: Sequence[bytes]) -> str:
    return " ".join(f"-e {shlex.quote(lit.decode('utf-8', 'replace'))}" for lit in literals)


def read_command(
    path: str, *, compressed: bool, current: bool, literals: Sequence[bytes]
) -> list[str]:
    """argv (in the node's root) that writes the file's candidate lines, gzipped, to stdout.

    The current log is read up to its size when the command starts, which it reports on
    stderr (`kubectl-audit-size N`): `-f` continues from exactly there. Anything else on
    stderr means the file could not be read to its end.
    """
    if sum(len(lit) + 6 for lit in literals) > MAX_LITERAL_BYTES:
        literals = ()  # the exact filter still runs on our side; only the bytes grow
    if current:
        source = (
            f'n=$(wc -c < "$1") && n=$((n)) && echo "{_SIZE_MARK.decode()}$n" >&2 '
            '&& head -c "$n" -- "$1"'
        )
    elif compressed:
        source = 'gzip -dc -- "$1"'
    else:
        source = 'cat -- "$1"'
    if not literals:
        script = 'cat -- "$1"' if compressed and not current else f"{source} | gzip -c"
    else:
        # -a where grep has it (GNU grep prints "Binary file matches" for a line with a
        # NUL); LC_ALL=C keeps GNU grep -F on its byte-level fast path.
        probe = "a=; echo x | grep -a -F x >/dev/null 2>&1 && a=-a; "
        script = f"{probe}{{ {source}; }} | LC_ALL=C grep $a -F {_patterns(literals)} | gzip -c"
    return ["sh", "-c", script, "sh", path]


def follow_command(path: str, start: int | None) -> list[str]:
    """argv that prints the log from byte `start` (None: its end) on and keeps following
    it by name."""
    return ["tail", "-c", "0" if start is None else f"+{start + 1}", "-F", path]


def list_command(directory: str) -> list[str]:
    return ["ls", "-1a", "--", directory]


def split_size(stderr: bytes) -> tuple[int | None, bytes]:
    """The size reported by `read_command` on stderr, and the rest of stderr."""
    size = None
    rest = []
    for line in stderr.splitlines(keepends=True):
        if line.startswith(_SIZE_MARK):
            try:
                size = int(line[len(_SIZE_MARK) :].strip())
                continue
            except ValueError:
                pass
        rest.append(line)
    return size, b"".join(rest)


@dataclass
class NodeAgent:
    """The node-agent pod of one node, started on first use and deleted by `close()`."""

    api_client: Any
    node_object: dict[str, Any]
    options: DebugPodOptions
    _pod: DebugPod | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def node(self) -> str:
        return str(self.node_object["metadata"]["name"])

    def pod(self) -> DebugPod:
        with self._lock:
            if self._pod is None:
                pod = DebugPod(self.api_client, self.node_object, self.options)
                pod.__enter__()
                self._pod = pod
            return self._pod

    def stream(self, argv: Sequence[str], *, timeout: float | None) -> ExecStream:
        pod = self.pod()
        return ExecStream(
            pod.core,
            pod.options.namespace,
            pod.name,
            CONTAINER,
            ["chroot", HOST_ROOT, *argv],
            timeout=timeout,
        )

    def list_names(self, directory: str) -> list[str]:
        result = self.pod().run(list_command(directory), timeout=60)
        if not result.ok:
            detail = result.stderr.decode("utf-8", "replace").strip()
            raise NodeError(f"{self.node}: cannot list {directory}: {detail}")
        names = result.stdout.decode("utf-8", "surrogateescape").splitlines()
        return [n for n in names if n not in (".", "..")]

    def close(self) -> None:
        with self._lock:
            if self._pod is not None:
                self._pod.__exit__(None, None, None)
                self._pod = None


@dataclass
class DebugPodSource:
    """One node's audit log read by its node-agent pod, prefiltered and gzipped there."""

    node: str
    agent: NodeAgent
    log: LogFiles
    literals: tuple[bytes, ...]
    since: datetime | None = None
    until: datetime | None = None
    read_up_to: int | None = None  # bytes of the current log the scan covered
    wire_bytes: int = 0  # exec stdout bytes received (what crossed the network)

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        names = self.agent.list_names(self.log.directory)
        chosen, _ = self.log.choose(names, self.since, self.until)
        self.read_up_to = None
        for name in chosen:
            yield from self._file(name)

    def _file(self, name: str) -> Iterator[Block]:
        path = posixpath.join(self.log.directory, name)
        where = f"{self.node}:{path}"
        current = name == self.log.current_name
        compressed = is_gzip_name(name)
        argv = read_command(path, compressed=compressed, current=current, literals=self.literals)
        with self.agent.stream(argv, timeout=READ_TIMEOUT) as stream:
            try:
                yield from read_blocks(_gunzipped(stream, where), where, head_sniff=False)
            finally:
                self.wire_bytes += stream.received
            size, errors = split_size(stream.stderr)
            if current:
                self.read_up_to = size
            if errors.strip() or stream.exit_code not in (0, None):
                detail = errors.decode("utf-8", "replace").strip() or f"exit {stream.exit_code}"
                yield Block(b"", where, -1, tail=True, broken=f"{where}: {detail}")


def _gunzipped(stream: ExecStream, where: str) -> Iterator[bytes]:
    try:
        yield from gunzip_chunks(stream, where)
    except BrokenInput:
        if stream.stderr:  # the command failed: its stderr says why (reported by the caller)
            return
        raise


@dataclass
class PodTail:
    """`-f` through the node-agent pod: `tail -F` in a thread, polled without blocking."""

    node: str
    agent: NodeAgent
    path: str
    start: int | None  # None: the scan did not read the current log; follow from its end
    _queue: queue.Queue[bytes | BaseException] = field(default_factory=lambda: queue.Queue(64))
    _stream: ExecStream | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _partial: bytes = b""
    _offset: int = 0

    def _run(self) -> None:
        try:
            self._stream = self.agent.stream(follow_command(self.path, self.start), timeout=None)
            for chunk in coalesce(self._stream, 1):
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, raised there
            if not self._stop.is_set():
                self._queue.put(error)

    def poll(self) -> Iterator[Block]:
        if self._thread is None:
            self._offset = self.start or 0
            self._thread = threading.Thread(target=self._run, daemon=True, name=f"tail-{self.node}")
            self._thread.start()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            data = self._partial + item
            cut = data.rfind(b"\n") + 1
            if cut:
                yield Block(data[:cut], f"{self.node}:{self.path}", self._offset)
                self._offset += cut
            self._partial = data[cut:]

    def close(self) -> None:
        self._stop.set()
        if self._stream is not None:
            self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
