"""Validating admission webhook: refuses ConfigMaps that carry malformed audit policies.

`create_app(config)` builds the Flask app: `POST /validate` (AdmissionReview v1/v1beta1),
`/healthz`, `/readyz` and `/metrics`. Serve it with gunicorn and `webhook/gunicorn_conf.py`.

Importing the package stays light (no Flask, no metrics): gunicorn's master imports
`webhook.tls` to load the certificate before forking, and must not create per-process
metric files or import the app it never serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webhook.config import WebhookConfig

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["WebhookConfig", "create_app"]


def create_app(config: WebhookConfig | None = None) -> Flask:
    """The webhook as a WSGI app; `config` defaults to the `WEBHOOK_*` environment."""
    from webhook.app import build_app

    return build_app(config)
