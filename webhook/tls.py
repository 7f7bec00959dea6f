"""A server TLS context that follows its certificate files as they are renewed.

cert-manager renews the serving certificate in its Secret and the kubelet swaps the
mounted files (an atomic `..data` symlink flip), but a process that loaded the files once
keeps serving the old certificate until it restarts. `ReloadingContext.context()` checks
the files' identity (device, inode, size, mtime: two `stat` calls) and builds a fresh
context when they changed; a half-written or mismatched pair keeps the last good context
and is retried a second later. Existing keep-alive connections keep their certificate;
every new handshake gets the current one, two ways:

* gunicorn's `ssl_context` hook (gunicorn/sock.py) asks for a context on every accepted
  connection in its gthread worker: it gets `context()`;
* the context's `sni_callback` (called on every ClientHello) swaps the connection over to
  the current context, so even a server that built its context once serves renewals.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable

log = logging.getLogger("webhook.tls")

Stamp = tuple[tuple[int, int, int, int], ...]


def files_stamp(*paths: str) -> Stamp:
    """What changes when any of `paths` is replaced or rewritten (symlinks followed)."""
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class ReloadingContext:
    """Hands out an SSLContext built by `build`, rebuilt when cert or key files change."""

    def __init__(
        self,
        build: Callable[[], ssl.SSLContext],
        certfile: str,
        keyfile: str,
        *,
        retry_seconds: float = 1.0,
    ) -> None:
        self._build = build
        self._paths = (certfile, keyfile)
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._stamp: Stamp | None = None
        self._failed_at = 0.0
        self.reloads = 0

    def context(self) -> ssl.SSLContext:
        """The current context; the first call raises if the files cannot be loaded."""
        try:
            stamp = files_stamp(*self._paths)
        except OSError as error:
            if self._context is None:
                raise
            # Mid-swap the files can vanish for an instant: serve the last good context.
            log.warning("certificate files unreadable, keeping the loaded ones: %s", error)
            return self._context
        if stamp == self._stamp and self._context is not None:
            return self._context
        with self._lock:
            if stamp != self._stamp or self._context is None:
                self._reload(stamp)
            assert self._context is not None
            return self._context

    def _reload(self, stamp: Stamp) -> None:
        if self._context is not None and time.monotonic() - self._failed_at < self._retry_seconds:
            return
        try:
            context = self._build()
        except (OSError, ssl.SSLError) as error:
            if self._context is None:
                raise
            self._failed_at = time.monotonic()
            log.warning("new certificate files do not load yet, keeping the old ones: %s", error)
            return
        context.sni_callback = self._on_client_hello
        if self._context is not None:
            self.reloads += 1
            log.info("serving renewed TLS certificate from %s", self._paths[0])
        self._context, self._stamp = context, stamp

    def _on_client_hello(
        self,
        connection: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        used: ssl.SSLContext,
    ) -> None:
        current = self.context()
        if current is not used:
            connection.context = current


def server_context_builder(certfile: str, keyfile: str) -> Callable[[], ssl.SSLContext]:
    """A plain TLS server context (TLS 1.2+, no client certificates) for tests and tools."""

    def build() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certfile=certfile, keyfile=keyfile)
        return context

    return build
