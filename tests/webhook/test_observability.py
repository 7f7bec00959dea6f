"""Probes, metrics and the access log, through the Flask test client (one process)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.webhook.helpers import configmap, configmap_request, policy_review, post, wrap
from webhook.access_log import LOGGER_NAME

VALID = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
BROKEN = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n"


def samples(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.get_data(as_text=True))
        for s in family.samples
    }


def test_probes(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_reviews_are_counted_by_outcome_with_latency(client: Any) -> None:
    before = samples(client)
    post(client, policy_review(VALID))
    post(client, policy_review(BROKEN))
    post(client, policy_review(BROKEN))
    post(client, wrap(configmap_request(configmap({"policy.yaml": BROKEN}, labels={}))))
    post(client, b"nonsense")
    post(client, b"{" + b" " * (3 * 1024 * 1024) + b"}")
    after = samples(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("audit_webhook_reviews_total", outcome="allowed") == 1
    assert delta("audit_webhook_reviews_total", outcome="denied") == 2
    assert delta("audit_webhook_reviews_total", outcome="skipped") == 1
    assert delta("audit_webhook_reviews_total", outcome="rejected") == 2
    assert delta("audit_webhook_review_duration_seconds_count", outcome="denied") == 2
    assert delta("audit_webhook_policy_documents_total", result="invalid") == 2
    assert delta("audit_webhook_policy_documents_total", result="valid") == 1


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines(app: Any) -> Iterator[list[str]]:
    handler = _Records()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_access_log_names_the_review_never_its_contents(
    client: Any, access_lines: list[str]
) -> None:
    secret = "s3cr3t-policy-user"
    policy = BROKEN.replace("Loud", f"Loud\n  users: [{secret}]")
    post(client, policy_review(policy, uid="uid-42", dry_run=True))
    client.get("/healthz")
    post(client, b"{}")
    assert len(access_lines) == 2  # probes are not logged
    entry = orjson.loads(access_lines[0])
    assert entry["uid"] == "uid-42" and entry["outcome"] == "denied" and entry["dry_run"] is True
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/validate", 200)
    assert (entry["namespace"], entry["name"], entry["operation"]) == (
        "apps",
        "game-demo",
        "CREATE",
    )
    assert orjson.loads(access_lines[1])["status"] == 400
    assert all(secret not in line and "Loud" not in line for line in access_lines)
