"""gunicorn's gthread worker, made safe for TLS connections that go quiet after the handshake.

gunicorn 27 hands a new connection to a worker thread once *any* bytes arrive, and that
thread then does the TLS handshake and reads the request in blocking mode. The first bytes
of a TLS connection are its ClientHello, so a client that completes the handshake and
sends no request yet holds a thread until it does. Go's HTTP client (the API server's,
hey's) does exactly that: when several requests wait for a connection it dials extra ones
and parks those it did not need, handshaken and idle. With 4 threads, 4 such connections
stall the worker and every request queued behind them waits for the client's timeout
(measured: 12 of 16 connections stuck for 20 s at the start of a loopback load test; the
same load over plain HTTP never stalls, because there the first bytes *are* the request).

This worker does the handshake, then waits briefly for the request itself; a connection
that stays quiet goes back to gunicorn's poller (its "deferred" path) and costs no thread
until it becomes readable or its keep-alive timeout closes it.
"""

from __future__ import annotations

import ssl
from typing import Any

from gunicorn.workers import gthread

# gunicorn internals this relies on; checked at import so a gunicorn upgrade that moves
# them fails at boot instead of silently bringing the stall back.
_DEFER = gthread._DEFER
for _name in ("init", "wait_for_data", "initialized", "data_ready", "is_http2"):
    if not hasattr(gthread.TConn, _name) and _name not in gthread.TConn.__init__.__code__.co_names:
        raise ImportError(f"gunicorn's gthread.TConn has no {_name}: check webhook/gthread_tls.py")

HANDSHAKE_DATA_TIMEOUT = gthread.DEFAULT_WORKER_DATA_TIMEOUT
# How long a thread waits for the request after the handshake before handing the
# connection back to the poller. Clients with a request send it at once.
REQUEST_AFTER_HANDSHAKE_TIMEOUT = 0.05


class TLSThreadWorker(gthread.ThreadWorker):
    def handle(self, conn: Any) -> Any:
        if conn.initialized or not self.cfg.is_ssl:
            return super().handle(conn)
        if not conn.data_ready and not conn.wait_for_data(HANDSHAKE_DATA_TIMEOUT):
            return _DEFER
        conn.sock.setblocking(True)
        try:
            conn.init()  # the TLS handshake (and ALPN), as gunicorn's own handle() does
        except (ssl.SSLError, OSError) as error:
            self.log.debug("TLS handshake failed: %s", error)
            return False  # finish_request closes the connection
        if conn.is_http2:
            return super().handle(conn)
        conn.data_ready = False
        if conn.sock.pending() == 0 and not conn.wait_for_data(REQUEST_AFTER_HANDSHAKE_TIMEOUT):
            return _DEFER
        return super().handle(conn)
