"""gunicorn settings for the webhook: `gunicorn -c webhook/gunicorn_conf.py`.

gthread workers keep connections alive (the API server reuses them; the sync worker would
pay a TLS handshake per review, reference §2.3). TLS comes from mounted files that are
re-read when they change (webhook/tls.py), so renewals need no restart. Metrics use
prometheus-client's multiprocess mode (reference §4.6). Everything is overridable with
environment variables so the same file serves the container, the e2e test and the bench.
"""

from __future__ import annotations

import gc
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

bind = os.environ.get("WEBHOOK_BIND", "0.0.0.0:8443")
wsgi_app = "webhook:create_app()"
# gthread, plus a fix for TLS connections that stay idle after the handshake (see there).
worker_class = os.environ.get("WEBHOOK_WORKER_CLASS", "webhook.gthread_tls.TLSThreadWorker")
workers = int(os.environ.get("WEBHOOK_WORKERS", "2"))
# A listening socket per worker (SO_REUSEPORT): the kernel spreads new connections over
# the workers. With one shared socket the worker that wakes first accepts a whole burst,
# and the API server's few keep-alive connections then all sit on one worker, one core:
# 16 load-test connections went 16/0 in three runs of four (260 reviews/s), against 8/8 or
# near it with this (560-690/s). Only processes of the same user can join the group.
# WEBHOOK_REUSE_PORT=0 restores the shared socket.
reuse_port = os.environ.get("WEBHOOK_REUSE_PORT", "1") == "1"
threads = int(os.environ.get("WEBHOOK_THREADS", "4"))
# Longer than the API server's idle-connection timeout (Go's 90 s), so the server never
# closes a connection the client is about to reuse for a POST (which Go does not retry).
keepalive = int(os.environ.get("WEBHOOK_KEEPALIVE", "120"))
# A review is bounded to well under a second; this only catches a stuck worker.
timeout = 30
graceful_timeout = 20
# gunicorn's control socket (gunicornc) would write under $HOME; nothing here uses it.
control_socket_disable = True
# No max_requests: recycled workers would leave metric files behind (client_python#275).
max_requests = 0

certfile = os.environ.get("WEBHOOK_TLS_CERT", "/tls/tls.crt")
keyfile = os.environ.get("WEBHOOK_TLS_KEY", "/tls/tls.key")

# The app writes its own JSON access log (with the review uid); gunicorn's would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("WEBHOOK_LOG_LEVEL", "info")
# The heartbeat file must be writable with a read-only root filesystem.
worker_tmp_dir = os.environ.get("WEBHOOK_WORKER_TMP_DIR", tempfile.gettempdir())

# Set before any worker imports prometheus_client: it picks its storage at import time.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "webhook-metrics")
)


def on_starting(server: Any) -> None:
    """Start with empty metric files: values of a previous run must not be merged in."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def post_worker_init(worker: Any) -> None:
    """Move the loaded app (Flask, the engine, prometheus-client) out of the collector's view.

    Nothing imported at start-up is ever freed, yet every full collection walked all of it:
    ~35,000 objects, an 18 ms pause about once per 2,000 reviews (measured in-process with
    gc.callbacks), which is the tail the API server waits on. Frozen objects are skipped;
    collections then only see what requests allocate.
    """
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


_reloader: Any = None


def when_ready(server: Any) -> None:
    """Load the certificate in the master before any worker is forked.

    Every worker, including one re-forked later, then starts with a good pair in memory
    and only ever replaces it with a newer pair that loads. Loaded lazily instead, a
    worker whose first connection came during a broken renewal (certificate and key not
    matching) would have nothing to fall back on. Bad files at start stop gunicorn here.
    """
    if server.cfg.is_ssl:
        from gunicorn import sock

        sock.ssl_context(server.cfg)  # goes through ssl_context() below


def ssl_context(config: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> Any:
    """gunicorn's own context (its ciphers/ALPN settings), rebuilt when the files change."""
    global _reloader
    if _reloader is None:
        from webhook.tls import ReloadingContext

        _reloader = ReloadingContext(default_ssl_context_factory, config.certfile, config.keyfile)
    return _reloader.context()
