"""The Flask app: `POST /validate`, `/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from webhook import access_log, health, metrics, validate
from webhook.cache import FindingsCache
from webhook.config import WebhookConfig


def build_app(config: WebhookConfig | None = None) -> Flask:
    """The webhook as a WSGI app; `config` defaults to the `WEBHOOK_*` environment."""
    config = WebhookConfig.from_env() if config is None else config
    app = Flask(__name__)
    # Werkzeug refuses longer bodies with 413 while reading, chunked uploads included.
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["audit_webhook"] = config
    app.extensions["audit_webhook_cache"] = FindingsCache(config.cache_entries)
    app.register_blueprint(validate.blueprint)
    app.register_blueprint(health.create_blueprint())
    app.register_blueprint(metrics.blueprint)
    app.register_error_handler(HTTPException, _http_error)
    access_log.install(app)
    return app


def _http_error(error: HTTPException) -> Response:
    """Plain JSON for 404/405/413: the API server shows none of this, people do."""
    if request.path == "/validate" and error.code == 413:
        # Refused while reading the body: a rejected review like any other 4xx.
        g.outcome = "rejected"
        now = time.perf_counter()
        metrics.observe_review("rejected", now - g.get("started", now))
    body: dict[str, Any] = {"error": error.name, "message": error.description}
    return Response(orjson.dumps(body), status=error.code or 500, mimetype="application/json")
