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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from kubectl_audit.errors import ClusterError
from kubectl_audit.kube.errors import api_call, api_error
from kubectl_audit.logs.nodefiles import LogFiles, gunzip_chunks, is_gzip_name
from kubectl_audit.logs.sources import BLOCK_SIZE, Block, read_blocks
from kubectl_audit.status.logproxy import VAR_LOG, KubeletLogs

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


class KubeletFiles:
    """Streams files under one node's /var/log through the API server's node proxy."""

    def __init__(self, api_client: Any, node: str, *, timeout: float | None = 30.0) -> None:
        self.api_client = api_client
        self.node = node
        self.timeout = timeout
        self._lister = KubeletLogs(api_client, node, timeout=timeout)

    def list_names(self, directory: str) -> list[str]:
        """File names in `directory` (an absolute path under /var/log)."""
        return self._lister.list_dir(_relative(directory))

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
        raise ProxyRefused(translated.message, hint=translated.hint)

    def chunks(self, path: str, *, start: int = 0) -> Iterator[bytes]:
        """The bytes of `path` from `start`, 1 MiB at a time (nothing if it has no more)."""
        response = self.open(path, start=start)
        raw = response.response  # the urllib3 response, not read yet
        try:
            if response.status == 416:
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
                        return
                    yield chunk
        finally:
            raw.release_conn()


def _relative(path: str) -> str:
    relative = posixpath.relpath(posixpath.normpath(path), VAR_LOG)
    if relative.startswith(".."):
        raise ProxyRefused(f"{path} is not under {VAR_LOG}, which is all the kubelet serves")
    return "" if relative == "." else relative


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

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        names = self.files.list_names(self.log.directory)
        chosen, _ = self.log.choose(names, self.since, self.until)
        self.backups_seen = tuple(self.log.backups(names))
        for name in chosen:
            path = posixpath.join(self.log.directory, name)
            where = f"{self.node}:{path}"
            if name != self.log.current_name:
                yield from read_blocks(_file_chunks(self.files, path, name, where), where)
                continue
            end = 0
            for block in read_blocks(self.files.chunks(path), where):
                if not block.tail:
                    end = block.offset + block.stop
                elif self.leave_tail_to_follower and block.broken is None:
                    continue
                yield block
            self.read_up_to = end
        if self.log.current_name not in chosen:
            self.read_up_to = None


def _file_chunks(files: KubeletFiles, path: str, name: str, where: str) -> Iterator[bytes]:
    """A backup's bytes, gunzipped when lumberjack compressed it; a backup that vanished
    between the listing and the read (maxbackup pruning) ends the stream with a reason."""
    try:
        chunks = files.chunks(path)
        yield from gunzip_chunks(chunks, where) if is_gzip_name(name) else chunks
    except ProxyRefused as error:
        from kubectl_audit.logs.sources import BrokenInput

        raise BrokenInput(f"{where}: {error.message}") from None


@dataclass
class ProxyTail:
    """`-f` through the kubelet: poll the listing and a byte range from the last offset.

    Rotation shows as a new backup in the listing (or the current log shrinking): what the
    old file got after our offset is read from that backup (gunzipped if it was compressed
    already), then the new current log from its start.
    """

    node: str
    files: KubeletFiles
    log: LogFiles
    offset: int | None  # None: the scan did not read the current log; follow from its end
    backups: tuple[str, ...]
    _partial: bytes = b""

    def poll(self) -> Iterator[Block]:
        names = self.files.list_names(self.log.directory)
        current = posixpath.join(self.log.directory, self.log.current_name)
        if self.offset is None:
            self.offset = self._size(current) if self.log.current_name in names else 0
            self.backups = tuple(self.log.backups(names))
        backups = tuple(self.log.backups(names))
        new = [n for n in backups if LogFiles.rotation_key(n) not in self._seen_keys()]
        self.backups = backups
        if new:
            yield from self._finish_rotated(sorted(new, key=LogFiles.rotation_key)[0])
            self.offset = 0
            self._partial = b""
        if self.log.current_name not in names:
            return  # between lumberjack's rename and its create
        yield from self._lines(self._range(current), current)

    def _size(self, path: str) -> int:
        response = self.files.open(path, start=0)
        response.response.release_conn()
        length = response.getheader("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def _seen_keys(self) -> set[Any]:
        return {LogFiles.rotation_key(n) for n in self.backups}

    def _range(self, path: str) -> Iterator[bytes]:
        assert self.offset is not None
        start = self.offset + len(self._partial)
        response = self.files.open(path, start=start)
        raw = response.response
        try:
            if response.status == 416:
                span = ContentRange.parse(response.getheader("Content-Range"))
                if span is not None and span.size < start:  # shrank in place: read it again
                    self.offset, self._partial = 0, b""
                    raw.release_conn()
                    yield from self.files.chunks(path)
                return
            if response.status == 200 and start:
                raise ProxyRefused(
                    f"the kubelet on {self.node} ignored the byte range for {path}",
                    hint="follow through the node-agent pod instead: --via debug-pod",
                )
            while True:
                chunk = raw.read(BLOCK_SIZE)
                if not chunk:
                    return
                yield chunk
        finally:
            raw.release_conn()

    def _lines(self, chunks: Iterator[bytes], where: str) -> Iterator[Block]:
        assert self.offset is not None
        for chunk in chunks:
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield Block(data[:cut], f"{self.node}:{where}", self.offset)
                self.offset += cut
            self._partial = data[cut:]

    def _finish_rotated(self, name: str) -> Iterator[Block]:
        """The end of the file we were reading, now renamed to backup `name`."""
        path = posixpath.join(self.log.directory, name)
        where = f"{self.node}:{path}"
        skip = (self.offset or 0) + len(self._partial)
        if is_gzip_name(name):
            chunks: Iterator[bytes] = _skip(gunzip_chunks(self.files.chunks(path), where), skip)
        else:
            chunks = self.files.chunks(path, start=skip)
        head = [self._partial] if self._partial else []
        yield from read_blocks(itertools.chain(head, chunks), where, head_sniff=False)

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
