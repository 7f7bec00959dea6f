"""JSON lines on stderr: one per request (access) and the webhook's own events.

The access line names the review (uid, operation, namespace/name) and never the
ConfigMap's contents nor the denial text (which quotes policy values). Probes and scrapes
are not logged. Operational events (`webhook.tls`, `webhook.errors`) use the same form.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timezone

import orjson
from flask import Flask, Response, g, request

LOGGER_NAME = "webhook.access"
OPERATIONS_LOGGER = "webhook"
_QUIET_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at emit time (gunicorn may redirect it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) if self.formatter else record.getMessage()
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self.handleError(record)


class _JsonEvents(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(
            {
                "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                    timespec="milliseconds"
                ),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        ).decode()


def _ensure_handler(name: str, formatter: logging.Formatter | None) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        if formatter is not None:
            handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def install(app: Flask) -> None:
    _ensure_handler(OPERATIONS_LOGGER, _JsonEvents())
    _ensure_handler(LOGGER_NAME, None)
    app.before_request(_start_clock)
    app.after_request(_log_request)


def _start_clock() -> None:
    g.started = time.perf_counter()


def _log_request(response: Response) -> Response:
    if request.path in _QUIET_PATHS:
        return response
    started = g.get("started", time.perf_counter())
    entry = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "remote": request.remote_addr,
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "request_bytes": request.content_length,
        "uid": g.get("review_uid"),
        "kind": g.get("review_kind"),
        "operation": g.get("review_operation"),
        "namespace": g.get("review_namespace"),
        "name": g.get("review_name"),
        "dry_run": g.get("review_dry_run"),
        "outcome": g.get("outcome"),
        "warnings": g.get("warning_count"),
    }
    logging.getLogger(LOGGER_NAME).info("%s", orjson.dumps(entry).decode())
    return response
