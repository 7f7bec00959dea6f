"""The audit log through the kubelet's `/logs` endpoint (`/api/v1/nodes/N/proxy/logs/...`).

No privileged pod: the kubelet serves `/var/log` with Go's http.FileServer, so a directory
is an HTML listing and a file answers byte ranges. Per file we fetch only its first (and,
for the current log, its last) 64 KiB; the size comes from `Content-Range: bytes a-b/SIZE`
and the time from `Last-Modified`. Needs RBAC `get` on `nodes/proxy`.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from kubectl_audit.errors import ClusterError
from kubectl_audit.kube.errors import api_call, api_error
from kubectl_audit.status.deep import LogSample, belongs_to_log

VAR_LOG = "/var/log"
SAMPLE_BYTES = 64 << 10
_HREF = re.compile(r'<a href="([^"]*)">')
_TOTAL = re.compile(r"/(\d+)\s*$")


class NodeLogsUnavailable(ClusterError):
    """The kubelet `/logs` endpoint did not serve what we asked for."""


def under_var_log(host_path: str | None) -> str | None:
    """The path relative to /var/log (what `/logs/` serves), or None if it is elsewhere."""
    if not host_path:
        return None
    path = posixpath.normpath(host_path)
    if not path.startswith(VAR_LOG + "/"):
        return None
    return path[len(VAR_LOG) + 1 :]


class KubeletLogs:
    """Reads files under one node's /var/log through the API server's node proxy."""

    def __init__(self, api_client: Any, node: str, *, timeout: float | None = 30.0) -> None:
        self.api_client = api_client
        self.node = node
        self.timeout = timeout

    def _get(self, relative: str, headers: dict[str, str] | None = None) -> Any:
        path = f"/api/v1/nodes/{quote(self.node, safe='')}/proxy/logs/{quote(relative)}"
        with api_call(f"read /var/log/{relative} on {self.node} through the kubelet"):
            method, url, header_params, body, post = self.api_client.param_serialize(
                "GET", path, header_params=headers or {}, auth_settings=["BearerToken"]
            )
            response = self.api_client.call_api(
                method, url, header_params, body, post, _request_timeout=self.timeout
            )
            response.read()
        return response

    def list_dir(self, relative_dir: str) -> list[str]:
        """File names in a directory (subdirectories left out)."""
        response = self._get(relative_dir.rstrip("/") + "/")
        if response.status != 200:
            raise NodeLogsUnavailable(self._refusal(response, relative_dir))
        text = response.data.decode("utf-8", "replace")
        return [unquote(href) for href in _HREF.findall(text) if not href.endswith("/")]

    def sample(self, relative: str, *, tail: bool) -> LogSample:
        """Size, mtime, first bytes and (if `tail`) last bytes of one file."""
        head_response = self._get(relative, {"Range": f"bytes=0-{SAMPLE_BYTES - 1}"})
        size, head = self._range_body(head_response, relative)
        tail_bytes = b""
        if tail and size > len(head):
            tail_response = self._get(relative, {"Range": f"bytes=-{SAMPLE_BYTES}"})
            _, tail_bytes = self._range_body(tail_response, relative)
        elif tail:
            tail_bytes = head
        return LogSample(
            posixpath.basename(relative),
            size,
            _last_modified(head_response.getheader("Last-Modified")),
            head,
            tail_bytes,
        )

    def samples(self, log_host_path: str) -> list[LogSample]:
        """Every file of the log (current and lumberjack backups) under /var/log."""
        relative = under_var_log(log_host_path)
        if relative is None:
            raise NodeLogsUnavailable(f"{log_host_path} is not under {VAR_LOG}")
        directory, current = posixpath.split(relative)
        names = [n for n in self.list_dir(directory) if belongs_to_log(n, current)]
        return [self.sample(posixpath.join(directory, n), tail=n == current) for n in sorted(names)]

    def _range_body(self, response: Any, relative: str) -> tuple[int, bytes]:
        if response.status == 416:  # an empty file satisfies no range
            match = _TOTAL.search(response.getheader("Content-Range") or "")
            return (int(match.group(1)) if match else 0), b""
        if response.status == 200:  # a server that ignores ranges sends everything
            return len(response.data), bytes(response.data)
        if response.status == 206:
            match = _TOTAL.search(response.getheader("Content-Range") or "")
            size = int(match.group(1)) if match else len(response.data)
            return size, bytes(response.data)
        raise NodeLogsUnavailable(self._refusal(response, relative))

    def _refusal(self, response: Any, relative: str) -> str:
        if response.status == 404:
            return f"/var/log/{relative} on {self.node}: not found"
        # The same words as for any refused API call (403: who lacks which permission).
        refused = api_error(_AsError(response), f"read /var/log/{relative} on {self.node}")
        return refused.message + (f" ({refused.hint})" if refused.hint else "")


class _AsError:
    """api_error() reads `.status`, `.body` and `.reason` like an ApiException's."""

    def __init__(self, response: Any) -> None:
        self.status = response.status
        self.body = response.data.decode("utf-8", "replace") if response.data else None
        self.reason = getattr(response, "reason", None)


def _last_modified(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
