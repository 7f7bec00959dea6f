"""Prometheus metrics, correct under several gunicorn workers.

Each gunicorn worker is its own process with its own registry, so when
`PROMETHEUS_MULTIPROC_DIR` is set (the container and the gunicorn config set it before any
worker imports this module) the values live in per-process files there and `/metrics`
merges them with a `MultiProcessCollector`. Without it (tests, `flask run`) the default
in-process registry is served.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

OUTCOMES = ("allowed", "denied", "skipped", "rejected", "error")

REVIEWS = Counter(
    "audit_webhook_reviews_total",
    "AdmissionReviews answered, by outcome: allowed/denied after checking policies, "
    "skipped (not an opted-in ConfigMap CREATE/UPDATE), rejected (HTTP 4xx, no review "
    "answered), error (the engine failed; answered with a denial).",
    ["outcome"],
)
# Buckets reach past timeoutSeconds so a slow tail is visible rather than clipped.
LATENCY = Histogram(
    "audit_webhook_review_duration_seconds",
    "Time from reading the request body to having the response ready.",
    ["outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DOCUMENTS = Counter(
    "audit_webhook_policy_documents_total",
    "Policy documents checked inside ConfigMaps, by result (valid/invalid).",
    ["result"],
)

for _outcome in OUTCOMES:
    REVIEWS.labels(_outcome)
for _result in ("valid", "invalid"):
    DOCUMENTS.labels(_result)


def observe_review(outcome: str, seconds: float) -> None:
    REVIEWS.labels(outcome).inc()
    LATENCY.labels(outcome).observe(seconds)


def observe_documents(valid: int, invalid: int) -> None:
    if valid:
        DOCUMENTS.labels("valid").inc(valid)
    if invalid:
        DOCUMENTS.labels("invalid").inc(invalid)


def exposition() -> bytes:
    """The text format of every worker's metrics (or this process's, single-process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)
