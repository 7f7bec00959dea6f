"""The kubelet's `/logs/` endpoint, reached through `/api/v1/nodes/<node>/proxy/logs/...`.

The kubelet serves it with Go's `http.FileServer(http.Dir("/var/log"))`, so this mirrors
net/http's fs.go: `<pre>` directory listings sorted by name (directories with a trailing
`/`), redirects between `dir` and `dir/`, `404 page not found`, single and multiple byte
ranges, `416` with `bytes */<size>` for unsatisfiable ranges. Symlinks are resolved inside the
node's root (an absolute target means a path on the node), and nothing may leave `/var/log`.
"""

from __future__ import annotations

import html
import mimetypes
import os
import secrets
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

_MAX_SYMLINKS = 40


def _resolve(node_root: Path, relative: str) -> Path | None:
    """The real file for `/var/log/<relative>` on the node, or None if it escapes /var/log
    or does not exist."""
    base = (node_root / "var" / "log").resolve()
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    current = base
    pending = list(parts)
    hops = 0
    while pending:
        part = pending.pop(0)
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = node_root.resolve()
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            else:
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        if part == "..":
            current = current.parent
            continue
        current = candidate
    try:
        current.relative_to(base)
    except ValueError:
        return None
    return current if current.exists() else None


def _not_found() -> web.Response:
    return web.Response(
        status=404,
        text="404 page not found\n",
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def _listing(directory: Path) -> web.Response:
    lines = ['<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n']
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name + ("/" if entry.is_dir() else "")
        lines.append(f'<a href="{quote(name)}">{html.escape(name)}</a>\n')
    lines.append("</pre>\n")
    mtime = directory.stat().st_mtime
    return web.Response(
        text="".join(lines),
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Last-Modified": formatdate(mtime, usegmt=True),
        },
    )


def _content_type(path: Path, head: bytes) -> str:
    guessed, _ = mimetypes.guess_type(path.name, strict=False)
    if guessed and not guessed.startswith("text/"):
        return guessed
    if head.startswith(b"\x1f\x8b\x08"):
        return "application/x-gzip"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        if b"\x00" in head:
            return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges as (start, length); None if unsatisfiable (Go: 'failed to overlap')."""
    if not header.startswith("bytes="):
        raise ValueError("invalid range")
    ranges = []
    for spec in header[len("bytes=") :].split(","):
        spec = spec.strip()
        if not spec:
            continue
        start_text, sep, end_text = spec.partition("-")
        if not sep:
            raise ValueError("invalid range")
        if not start_text:
            suffix = int(end_text)
            suffix = min(suffix, size)
            if suffix == 0:
                continue
            ranges.append((size - suffix, suffix))
            continue
        start = int(start_text)
        if start >= size:
            continue
        end = size - 1 if not end_text else min(int(end_text), size - 1)
        if end < start:
            raise ValueError("invalid range")
        ranges.append((start, end - start + 1))
    return ranges or None


def serve_node_log(request: web.Request, node_root: Path, relative: str, url_path: str):
    """The response the kubelet's file server gives for `/logs/<relative>`."""
    target = _resolve(node_root, relative)
    if target is None:
        return _not_found()
    if target.is_dir():
        if not url_path.endswith("/"):
            raise web.HTTPMovedPermanently(location=url_path.rsplit("/", 1)[-1] + "/")
        return _listing(target)
    if url_path.endswith("/"):
        raise web.HTTPMovedPermanently(location="../" + url_path.rstrip("/").rsplit("/", 1)[-1])
    try:
        stat = target.stat()
        with target.open("rb") as fh:
            head = fh.read(512)
    except PermissionError:
        return web.Response(status=403, text="403 Forbidden\n")
    size = stat.st_size
    headers = {
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
        "Content-Type": _content_type(target, head),
    }
    range_header = request.headers.get("Range", "")
    if not range_header:
        return web.Response(body=target.read_bytes(), headers=headers)
    try:
        ranges = _parse_ranges(range_header, size)
    except ValueError:
        return web.Response(status=416, text="invalid range\n", headers={})
    if ranges is None:
        headers = {"Content-Range": f"bytes */{size}", "Content-Type": "text/plain; charset=utf-8"}
        return web.Response(status=416, text="invalid range: failed to overlap\n", headers=headers)
    with target.open("rb") as fh:
        pieces = []
        for start, length in ranges:
            fh.seek(start)
            pieces.append((start, length, fh.read(length)))
    if len(pieces) == 1:
        start, length, data = pieces[0]
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        return web.Response(status=206, body=data, headers=headers)
    boundary = secrets.token_hex(30)
    body = bytearray()
    for start, length, data in pieces:
        body += (
            f"\r\n--{boundary}\r\nContent-Range: bytes {start}-{start + length - 1}/{size}\r\n"
            f"Content-Type: {headers['Content-Type']}\r\n\r\n"
        ).encode()
        body += data
    body += f"\r\n--{boundary}--\r\n".encode()
    headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    return web.Response(status=206, body=bytes(body), headers=headers)


def container_log(
    node_root: Path, namespace: str, pod: str, container: str, *, previous: bool = False
) -> list[tuple[str, str]] | None:
    """(timestamp, text) lines of a container's CRI log file, as the kubelet reads them for
    `kubectl logs`: /var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log, newest attempt
    (or the one before with `previous`). None when the container has no log yet."""
    pods_dir = node_root / "var" / "log" / "pods"
    attempts: list[tuple[int, Path]] = []
    for pod_dir in pods_dir.glob(f"{namespace}_{pod}_*"):
        for log_file in (pod_dir / container).glob("*.log"):
            if log_file.stem.isdigit():
                attempts.append((int(log_file.stem), log_file))
    attempts.sort()
    if previous:
        attempts = attempts[:-1]
    if not attempts:
        return None
    lines: list[tuple[str, str]] = []
    partial = ""
    for raw in attempts[-1][1].read_text(encoding="utf-8", errors="replace").splitlines():
        # CRI format: <RFC3339Nano> <stdout|stderr> <F|P> <text>
        fields = raw.split(" ", 3)
        if len(fields) < 3:
            continue
        text = fields[3] if len(fields) == 4 else ""
        if fields[2] == "P":
            partial += text
            continue
        lines.append((fields[0], partial + text))
        partial = ""
    return lines
