"""A node's audit log through the node-agent pod: filtered and gzipped on the node.

For logs the kubelet does not serve (outside /var/log) or with `--via debug-pod`. One exec
reads the chosen backups (gunzipping those lumberjack compressed), one the current log; each
pipes the lines through `grep -F` stages built from the filters' literal fragments (a
superset of the matches: the exact filter runs here again) and then `gzip`, so the exec
stream carries a fraction of the matching bytes. Output is consumed as it arrives.

`-f` runs `tail -c +N -F` on the current log: it reopens the file after lumberjack's rename.
It is neither filtered nor compressed on the node, because grep and gzip hold back their
output in buffers and `-f` is about seeing events as they happen.
"""

from __future__ import annotations

import posixpath
import queue
import shlex
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from kubectl_audit.errors import NodeError
from kubectl_audit.kube.errors import api_error
from kubectl_audit.logs.nodefiles import LogFiles, new_backups
from kubectl_audit.logs.sources import Block, BrokenInput, LogName, gunzip_chunks, read_blocks
from kubectl_audit.node.debugpod import DebugPod, DebugPodOptions
from kubectl_audit.node.podexec import ExecStream

# The exec URL carries argv: literals beyond this are not worth a longer URL (<~6 KiB).
MAX_LITERAL_BYTES = 3000
READ_TIMEOUT = 1800.0  # seconds for one file (grep on a 1 GiB log takes seconds)
_SIZE_MARK = b"kubectl-audit-size "
_ROTATED_MARK = b"kubectl-audit-rotated"
ROTATION_RETRIES = 5


def _filtered(read: str, stages: Sequence[Sequence[bytes]]) -> str:
    """`read` (a command writing log lines) piped through the prefilter and gzip: a
    `grep -F` per stage (each ORs its literals; the pipeline ANDs the stages)."""
    kept: list[Sequence[bytes]] = []
    budget = MAX_LITERAL_BYTES
    for literals in stages:
        cost = sum(len(lit) + 8 for lit in literals)
        if cost <= budget:  # the exact filter runs on our side: a stage left out only
            kept.append(literals)  # lets more bytes through
            budget -= cost
    if not kept:
        return f"{{ {read}; }} | gzip -c"
    # -a where grep has it (GNU grep prints "Binary file matches" for a line with a NUL);
    # LC_ALL=C keeps GNU grep -F on its byte-level fast path.
    probe = "a=; echo x | grep -a -F x >/dev/null 2>&1 && a=-a; "
    greps = " | ".join(
        "LC_ALL=C grep $a -F "
        + " ".join(f"-e {shlex.quote(lit.decode('utf-8', 'replace'))}" for lit in literals)
        for literals in kept
    )
    return f"{probe}{{ {read}; }} | {greps} | gzip -c"


def backup_regex(log: LogFiles) -> str:
    """An ERE for the names of the log's lumberjack backups (for `grep -E` on the node)."""
    name = LogName.of(PurePosixPath(log.current_name))  # type: ignore[arg-type]
    stamp = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}[.][0-9]{3}"
    return f"^{_ere(name.stem)}-{stamp}{_ere(name.ext)}([.]gz)?$"


def _ere(text: str) -> str:
    # Bracket every special character: newer GNU greps warn about stray backslashes.
    # (`^` cannot be bracketed: first in a bracket it negates.)
    return "".join("\\^" if c == "^" else f"[{c}]" if c in ".[]()*+?{}|$\\" else c for c in text)


# The backups of the log in $1 (a directory), by their uncompressed names, oldest first.
_BACKUPS = 'ls -1 -- "$1" | LC_ALL=C grep -E -e "$2" | sed "s/[.]gz$//" | LC_ALL=C sort -u'


def backups_command(
    directory: str, pattern: str, first: str, last: str, literals: Sequence[Sequence[bytes]]
) -> list[str]:
    """argv (in the node's root): the candidate lines of the backups `first`..`last` (by
    name, inclusive) in time order, gzipped. One exec for them all: a node can have
    hundreds. Each is read as `X.log` or, once lumberjack compressed it, as `X.log.gz`;
    one that maxbackup pruning deleted meanwhile is skipped (the apiserver dropped it).
    """
    read = (
        f'{_BACKUPS} | awk -v a="$3" -v b="$4" \'$0 >= a && $0 <= b\' | '
        'while IFS= read -r n; do f="$1/$n"; '
        'if [ -e "$f" ]; then cat -- "$f"; '
        'elif [ -e "$f.gz" ]; then gzip -dc -- "$f.gz"; fi; done'
    )
    return ["sh", "-c", _filtered(read, literals), "sh", directory, pattern, first, last]


def current_command(
    path: str, pattern: str, newest_backup: str, literals: Sequence[Sequence[bytes]]
) -> list[str]:
    """argv (in the node's root): the current log's candidate lines, gzipped.

    The file is opened first, then the directory is checked to still have `newest_backup`
    as its newest backup; otherwise the log rotated after our listing, which the command
    reports (`kubectl-audit-rotated` on stderr, no output) so that the caller reads the
    new backups first. Then it is read up to its size at that moment, reported on stderr
    (`kubectl-audit-size N`): `-f` continues from exactly there. Anything else on stderr
    means it could not be read.
    """
    check = (
        f'[ "$({_BACKUPS} | tail -n 1)" = "$3" ] '
        f'|| {{ echo "{_ROTATED_MARK.decode()}" >&2; exit 0; }}'
    )
    head = (
        f'exec 3< "$4" || exit 1; {check}; n=$(wc -c < "$4"); n=$((n)); {check}; '
        f'echo "{_SIZE_MARK.decode()}$n" >&2; '
    )
    script = head + _filtered('head -c "$n" <&3', literals)
    directory = posixpath.dirname(path)
    return ["sh", "-c", script, "sh", directory, pattern, newest_backup, path]


def follow_command(path: str, start: int | None) -> list[str]:
    """argv that prints the log from byte `start` (None: its end) on and keeps following
    it by name."""
    return ["tail", "-c", "0" if start is None else f"+{start + 1}", "-F", path]


def list_command(directory: str) -> list[str]:
    return ["ls", "-1a", "--", directory]


@dataclass(frozen=True)
class ReadReport:
    """What `read_command` said on stderr besides the data."""

    size: int | None  # bytes of the current log read
    rotated: bool  # the current log was rotated after the listing: nothing was read
    errors: bytes  # anything else: why a file could not be read (to its end)

    @classmethod
    def parse(cls, stderr: bytes) -> ReadReport:
        size = None
        rotated = False
        rest = []
        for line in stderr.splitlines(keepends=True):
            if line.startswith(_SIZE_MARK) and line[len(_SIZE_MARK) :].strip().isdigit():
                size = int(line[len(_SIZE_MARK) :].strip())
            elif line.strip() == _ROTATED_MARK:
                rotated = True
            else:
                rest.append(line)
        return cls(size, rotated, b"".join(rest))


@contextmanager
def exec_errors(node: str) -> Iterator[None]:
    """The client's refusals of an exec as our errors (as DebugPod.run does)."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as error:
        raise api_error(error, f"exec in the node-agent pod on {node}") from None
    except TimeoutError as error:
        raise NodeError(f"{error} on node {node}") from None


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
        """An exec of argv in the node's root; iterate it inside `exec_errors(node)`."""
        return self.pod().stream(argv, timeout=timeout)

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
    literals: tuple[tuple[bytes, ...], ...]  # grep -F stages (see _filtered)
    since: datetime | None = None
    until: datetime | None = None
    read_up_to: int | None = None  # bytes of the current log the scan covered
    wire_bytes: int = 0  # exec stdout bytes received (what crossed the network)

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        names = self.agent.list_names(self.log.directory)
        chosen, _ = self.log.choose(names, self.since, self.until)
        seen = self.log.backups(names)
        self.read_up_to = None
        yield from self._backups([n for n in chosen if n != self.log.current_name])
        if self.log.current_name not in chosen:
            return
        for _ in range(ROTATION_RETRIES):
            newest = seen[-1].removesuffix(".gz") if seen else ""
            report = yield from self._read(
                current_command(
                    posixpath.join(self.log.directory, self.log.current_name),
                    backup_regex(self.log),
                    newest,
                    self.literals,
                ),
                posixpath.join(self.log.directory, self.log.current_name),
            )
            if not report.rotated:
                self.read_up_to = report.size
                return
            names = self.agent.list_names(self.log.directory)
            yield from self._backups(new_backups(self.log, seen, names))
            seen = self.log.backups(names)
        where = f"{self.node}:{self.log.directory}/{self.log.current_name}"
        reason = f"{where}: rotated {ROTATION_RETRIES} times while being read"
        yield Block(b"", where, -1, tail=True, broken=reason)

    def _backups(self, names: list[str]) -> Iterator[Block]:
        if not names:
            return
        first, last = names[0].removesuffix(".gz"), names[-1].removesuffix(".gz")
        argv = backups_command(
            self.log.directory, backup_regex(self.log), first, last, self.literals
        )
        where = posixpath.join(self.log.directory, first if first == last else f"{first}..{last}")
        yield from self._read(argv, where)

    def _read(self, argv: list[str], what: str) -> Generator[Block, None, ReadReport]:
        where = f"{self.node}:{what}"
        with exec_errors(self.node), self.agent.stream(argv, timeout=READ_TIMEOUT) as stream:
            try:
                yield from read_blocks(_gunzipped(stream, where), where, head_sniff=False)
            finally:
                self.wire_bytes += stream.received
        report = ReadReport.parse(stream.stderr)
        if report.errors.strip() or stream.exit_code not in (0, None):
            detail = report.errors.decode("utf-8", "replace").strip()
            yield Block(b"", where, -1, tail=True, broken=f"{where}: {detail or stream.exit_code}")
        return report


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
            with exec_errors(self.node):
                self._run_stream()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, raised there
            if not self._stop.is_set():
                self._queue.put(error)

    def _run_stream(self) -> None:
        self._stream = self.agent.stream(follow_command(self.path, self.start), timeout=None)
        for chunk in self._stream:
            while not self._stop.is_set():
                try:
                    self._queue.put(chunk, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set():
                return
        raise NodeError(f"{self.node}: following {self.path} ended (exit {self._stream.exit_code})")

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
