"""`POST /validate`: read the review, judge it, answer it, count it."""

from __future__ import annotations

import logging
import time
import traceback

import orjson
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from webhook import metrics
from webhook.admission import (
    ReviewError,
    Verdict,
    internal_error_verdict,
    judge,
    parse_review,
    review_response,
)
from webhook.config import WebhookConfig

log = logging.getLogger("webhook.errors")

blueprint = Blueprint("validate", __name__)


@blueprint.post("/validate")
def validate() -> Response:
    started = time.perf_counter()
    config: WebhookConfig = current_app.extensions["audit_webhook"]
    # A declared Content-Length over MAX_CONTENT_LENGTH is refused (413) unread. A chunked
    # body is cut at the cap by Werkzeug without an error, so reaching the cap means "too
    # large" rather than a truncated document that would be reported as bad JSON.
    body = request.get_data(cache=False)
    if request.content_length is None and len(body) >= config.max_body_bytes:
        raise RequestEntityTooLarge(f"chunked request body reached {config.max_body_bytes} bytes")
    try:
        review = parse_review(body)
        g.review_uid = review.uid
        _remember_request(review.request)
        verdict = _judge_safely(review.request, config, review.uid)
    except ReviewError as error:
        g.outcome = "rejected"
        metrics.observe_review("rejected", time.perf_counter() - started)
        payload = {"error": "Bad AdmissionReview", "message": error.message}
        return Response(orjson.dumps(payload), status=error.status, mimetype="application/json")
    g.outcome = verdict.outcome
    g.warning_count = len(verdict.warnings)
    metrics.observe_documents(verdict.valid_documents, verdict.invalid_documents)
    answer = orjson.dumps(review_response(review, verdict))
    metrics.observe_review(verdict.outcome, time.perf_counter() - started)
    return Response(answer, status=200, mimetype="application/json")


def _judge_safely(request_: dict, config: WebhookConfig, uid: str) -> Verdict:
    try:
        return judge(request_, config, current_app.extensions["audit_webhook_cache"])
    except ReviewError:
        raise
    except Exception as error:  # noqa: BLE001 - an engine bug must become a denial, not a 500
        # The exception text may quote the policy, so only its type and place are logged.
        frame = traceback.extract_tb(error.__traceback__)[-1]
        log.error(
            "engine failure on review %s: %s at %s:%s",
            uid,
            type(error).__name__,
            frame.filename,
            frame.lineno,
        )
        return internal_error_verdict()


def _remember_request(request_: dict) -> None:
    """What the access log may say about the request: identity, never content."""
    kind = request_.get("kind")
    g.review_kind = kind.get("kind") if isinstance(kind, dict) else None
    for attribute in ("operation", "namespace", "name"):
        value = request_.get(attribute)
        setattr(g, f"review_{attribute}", value if isinstance(value, str) else None)
    g.review_dry_run = request_.get("dryRun") is True
