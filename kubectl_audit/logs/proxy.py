"""A node's audit log through the kubelet `/logs` endpoint (no privileged pod).

`GET /api/v1/nodes/<node>/proxy/logs/<path under /var/log>`: the kubelet serves /var/log
with Go's http.FileServer, so the directory is an HTML listing (which finds the lumberjack
backups) and every file answers HTTP byte ranges (which `-f` uses to fetch only what was
appended since the last poll). Bodies are streamed in 1 MiB reads, never held whole.
Needs RBAC `get` on `nodes/proxy`.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote

from kubectl_audit.errors import ClusterError
from kubectl_audit.kube.errors import api_call, api_error
from kubectl_audit.logs.nodefiles import LogFiles, is_gzip_name, new_backups
from kubectl_audit.logs.sources import BLOCK_SIZE, Block, BrokenInput, gunzip_chunks, read_blocks
from kubectl_audit.status.logproxy import VAR_LOG

ROTATION_RETRIES = 5
HEAD_BYTES = 64 << 10
_HREF = re.compile(r'<a href="([^"]*)">')
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")


@dataclass(frozen=True)
class ContentRange:
    """`Content-Range: bytes a-b/size` (`first` None for `bytes */size`, a 416's answer)."""

    first: int | None
    last: int | None
    size: int

    @classmethod
    def parse(cls, header: str | None) -> ContentRange | None:
        match = _CONTENT_RANGE.fullmatch((header or "").strip())
        if not match:
            return None
        first, last, size = match.groups()
        return cls(
            int(first) if first is not None else None,
            int(last) if last is not None else None,
            int(size),
        )


class ProxyRefused(ClusterError):
    """The kubelet `/logs` endpoint did not serve a file (gone, forbidden, unreachable)."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status  # the HTTP status, when there was an answer


class KubeletFiles:
    """Streams files under one node's /var/log through the API server's node proxy."""

    def __init__(self, api_client: Any, node: str, *, timeout: float | None = 30.0) -> None:
        self.api_client = api_client
        self.node = node
        self.timeout = timeout
        self.wire_bytes = 0  # file bytes received (what crossed the network)

    def list_names(self, directory: str) -> list[str]:
        """File names in `directory` (an absolute path under /var/log): Go's FileServer
        lists a directory as `<a href="NAME">` lines, subdirectories ending in `/`."""
        path = directory.rstrip("/") + "/"
        page = b"".join(self.chunks(path))
        hrefs = _HREF.findall(page.decode("utf-8", "replace"))
        return [unquote(href) for href in hrefs if not href.endswith("/")]

    def open(self, path: str, *, start: int = 0) -> Any:
        """The unread response for `path` from byte `start` (status 200, 206 or 416)."""
        relative = _relative(path)
        url = f"/api/v1/nodes/{quote(self.node, safe='')}/proxy/logs/{quote(relative)}"
        headers = {"Range": f"bytes={start}-"} if start else {}
        with api_call(f"read {path} on {self.node} through the kubelet"):
            method, full, header_params, body, post = self.api_client.param_serialize(
                "GET", url, header_params=headers, auth_settings=["BearerToken"]
            )
            response = self.api_client.call_api(
                method, full, header_params, body, post, _request_timeout=self.timeout
            )
        if response.status in (200, 206, 416):
            return response
        from kubernetes.client.exceptions import ApiException

        error = ApiException(status=response.status, reason=response.reason)
        error.body = response.read()
        translated = api_error(error, f"read {path} on {self.node} through the kubelet /logs")
        raise ProxyRefused(translated.message, hint=translated.hint, status=response.status)

    def chunks(self, path: str, *, start: int = 0) -> Iterator[bytes]:
        """The bytes of `path` from `start`, 1 MiB at a time (nothing if it has no more)."""
        return self.body(self.open(path, start=start), path, start=start)

    def body(self, response: Any, path: str, *, start: int = 0) -> Iterator[bytes]:
        """Stream an opened response; a stream left early closes its connection."""
        raw = response.response  # the urllib3 response, not read yet
        finished = False
        try:
            if response.status == 416:
                finished = True
                return
            if start and response.status == 200:
                raise ProxyRefused(
                    f"the kubelet on {self.node} ignored the byte range for {path}",
                    hint="follow through the node-agent pod instead: --via debug-pod",
                )
            with api_call(f"read {path} on {self.node} through the kubelet"):
                while True:
                    chunk = raw.read(BLOCK_SIZE)
                    if not chunk:
                        finished = True
                        return
                    self.wire_bytes += len(chunk)
                    yield chunk
        finally:
            discard(response, finished=finished)


def discard(response: Any, *, finished: bool = False) -> None:
    """Give the connection back; one with unread data is closed, not reused."""
    raw = response.response
    if finished:
        raw.release_conn()
    else:
        raw.close()  # and not back to the pool: the pool makes a new one when needed


def _relative(path: str) -> str:
    relative = posixpath.relpath(posixpath.normpath(path), VAR_LOG)
    if relative.startswith(".."):
        raise ProxyRefused(f"{path} is not under {VAR_LOG}, which is all the kubelet serves")
    if relative == ".":
        return ""
    return relative + "/" if path.endswith("/") else relative


@dataclass
class ProxySource:
    """One node's audit log (backups oldest first, then the current log) via the kubelet."""

    node: str
    files: KubeletFiles
    log: LogFiles
    since: datetime | None = None
    until: datetime | None = None
    leave_tail_to_follower: bool = False
    read_up_to: int | None = None  # offset after the current log's last complete line read
    backups_seen: tuple[str, ...] = field(default_factory=tuple)
    current_first_line: bytes | None = None  # of the current log as read (its identity)

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        names = self.files.list_names(self.log.directory)
        chosen, _ = self.log.choose(names, self.since, self.until)
        seen = self.log.backups(names)
        self.read_up_to = None
        yield from self._backups([n for n in chosen if n != self.log.current_name])
        if self.log.current_name in chosen:
            yield from self._current(seen)

    def _backups(self, names: list[str]) -> Iterator[Block]:
        for name in names:
            path = posixpath.join(self.log.directory, name)
            where = f"{self.node}:{path}"
            yield from read_blocks(_file_chunks(self.files, path, name, where), where)

    def _current(self, seen: list[str]) -> Iterator[Block]:
        """The current log, such that no event written before the listing is lost.

        It is opened, then listed again. No new backup: it was not renamed in between.
        New backups: if the newest starts like the file we opened, that file was renamed
        just after we opened it (we read it, and `-f` reads the rest from the backup);
        otherwise the log rotated before we opened it, so the new backups are read first
        and the current log opened again.
        """
        path = posixpath.join(self.log.directory, self.log.current_name)
        where = f"{self.node}:{path}"
        for attempt in range(ROTATION_RETRIES):
            response = self.files.open(path)
            names = self.files.list_names(self.log.directory)
            new = new_backups(self.log, seen, names)
            chunks = self.files.body(response, path)
            if not new:
                seen = self.log.backups(names)
                break
            first = next(chunks, b"")
            opened = _first_line(first)
            if opened is not None and opened == first_line_of(
                self.files, self.log.directory, new[-1]
            ):
                yield from self._backups(new[:-1])
                seen = seen + new[:-1]  # -f sees new[-1] as the rotation of what we read
                chunks = itertools.chain([first], chunks)
                break
            chunks.close()
            yield from self._backups(new)  # what was current at the listing, and since
            seen = self.log.backups(names)
            if attempt == ROTATION_RETRIES - 1:
                chunks = self.files.chunks(path)  # the log keeps rotating: read what is there
        self.backups_seen = tuple(seen)
        end = 0
        for block in read_blocks(self._identified(chunks), where):
            if not block.tail:
                end = block.offset + block.stop
            elif self.leave_tail_to_follower and block.broken is None:
                continue
            yield block
        self.read_up_to = end

    def _identified(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        self.current_first_line = None
        for index, chunk in enumerate(chunks):
            if index == 0:
                self.current_first_line = _first_line(chunk)
            yield chunk


def first_line_of(files: KubeletFiles, directory: str, name: str) -> bytes | None:
    """The first line of a log file (from its first 64 KiB, gunzipped if need be): what
    tells one file from another across renames (its first event is unique)."""
    path = posixpath.join(directory, name)
    try:
        response = files.open(path, start=0)
    except ProxyRefused:
        return None
    head = bytearray()
    chunks = files.body(response, path)
    for chunk in chunks:
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    chunks.close()
    if is_gzip_name(name):
        head = bytearray(zlib.decompressobj(wbits=31).decompress(bytes(head)))
    return _first_line(bytes(head))


def _first_line(data: bytes) -> bytes | None:
    """The first complete line of `data` (None when there is none yet)."""
    end = data.find(b"\n")
    return data[:end] if end >= 0 else None


def _file_chunks(
    files: KubeletFiles, path: str, name: str, where: str, skip: int = 0
) -> Iterator[bytes]:
    """A backup's bytes from `skip` on, gunzipped when lumberjack compressed it (also when it
    did so after the listing: `X.log` becomes `X.log.gz`). A backup that vanished (maxbackup
    pruning) ends the stream with the reason."""
    try:
        try:
            response = files.open(path, start=0 if is_gzip_name(name) else skip)
        except ProxyRefused:
            if is_gzip_name(name):
                raise
            path, name = path + ".gz", name + ".gz"
            response = files.open(path)
        if is_gzip_name(name):
            yield from _skip(gunzip_chunks(files.body(response, path), where), skip)
        else:
            yield from files.body(response, path, start=skip)
    except ProxyRefused as error:
        raise BrokenInput(f"{where}: {error.message}") from None


@dataclass
class ProxyTail:
    """`-f` through the kubelet: poll the listing and a byte range from the last offset.

    Rotation shows as new backups in the listing (or the current log shrinking in place).
    The file we were reading is the new backup that starts with the same first line: the
    rest of it is read from our offset (gunzipped if it was compressed already). Other
    new backups were written and rotated whole between two polls (or between a listing
    and a read) and are read whole; then the new current log from its start.
    """

    node: str
    files: KubeletFiles
    log: LogFiles
    offset: int | None  # None: the scan did not read the current log; follow from its end
    backups: tuple[str, ...]
    first_line: bytes | None = None  # of the file being read at `offset`: its identity
    _partial: bytes = b""

    def poll(self) -> Iterator[Block]:
        names = self.files.list_names(self.log.directory)
        current = posixpath.join(self.log.directory, self.log.current_name)
        if self.offset is None:
            self.offset = self._size(current) if self.log.current_name in names else 0
            self.backups = tuple(self.log.backups(names))
            self.first_line = first_line_of(self.files, self.log.directory, self.log.current_name)
        new = new_backups(self.log, list(self.backups), names)
        ours = self._ours(new)
        for name in new:
            path = posixpath.join(self.log.directory, name)
            where = f"{self.node}:{path}"
            # Each counts as seen only once read to its end: a poll that fails half-way
            # (the API away) resumes in it, from the offset reached for ours.
            if name == ours:
                skip = self.offset + len(self._partial)
                try:
                    chunks = _file_chunks(self.files, path, name, where, skip)
                    yield from self._lines(chunks, path)
                except BrokenInput as error:  # pruned by maxbackup before we got to it
                    yield Block(b"", where, -1, tail=True, broken=str(error))
                if self._partial:
                    yield Block(self._partial, where, self.offset, tail=True)
                self.offset, self._partial, self.first_line = 0, b"", None
            else:
                chunks = _file_chunks(self.files, path, name, where)
                yield from read_blocks(chunks, where, head_sniff=False)
            self.backups += (name,)
        if self.log.current_name not in names:
            return  # between lumberjack's rename and its create
        yield from self._lines(self._range(current), current)

    def _ours(self, new: list[str]) -> str | None:
        """Which new backup is the file we were reading (None: it is still the current)."""
        if not new or self.first_line is None:
            # Nothing read yet from an empty current log: the first new backup was it.
            return new[0] if new and not self.offset and not self._partial else None
        for name in reversed(new):
            if first_line_of(self.files, self.log.directory, name) == self.first_line:
                return name
        return None

    def _size(self, path: str) -> int:
        response = self.files.open(path)
        discard(response)
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def _range(self, path: str) -> Iterator[bytes]:
        assert self.offset is not None
        start = self.offset + len(self._partial)
        response = self.files.open(path, start=start)
        if response.status == 416:
            discard(response)
            span = ContentRange.parse(response.getheader("Content-Range"))
            if span is not None and span.size < start:  # shrank in place: read it again
                self.offset, self._partial = 0, b""
                yield from self._learning(self.files.chunks(path))
            return
        chunks = self.files.body(response, path, start=start)
        yield from self._learning(chunks) if start == 0 else chunks

    def _learning(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Chunks of a file read from its start, noting its first line (its identity)."""
        head = b""
        for chunk in chunks:
            if self.first_line is None and len(head) < HEAD_BYTES:
                head += chunk
                self.first_line = _first_line(head)
            yield chunk

    def _lines(self, chunks: Iterator[bytes], where: str) -> Iterator[Block]:
        assert self.offset is not None
        for chunk in chunks:
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield Block(data[:cut], f"{self.node}:{where}", self.offset)
                self.offset += cut
            self._partial = data[cut:]

    def close(self) -> None:
        return None


def _skip(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0


def log_files_for(host_path: str) -> LogFiles:
    path = PurePosixPath(host_path)
    return LogFiles(str(path.parent), path.name)
