"""The per-worker findings cache: same answers, fewer engine runs, bounded size."""

from __future__ import annotations

from typing import Any

from tests.webhook.helpers import answer, configmap, configmap_request, policy_review, wrap
from webhook import create_app
from webhook.cache import FindingsCache
from webhook.config import WebhookConfig

BROKEN = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n"
VALID = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"


def test_repeated_policy_is_answered_identically_from_the_cache(app: Any, client: Any) -> None:
    cache: FindingsCache = app.extensions["audit_webhook_cache"]
    first = answer(client, policy_review(BROKEN))
    assert (cache.hits, cache.misses) == (0, 1)
    again = answer(client, policy_review(BROKEN, dry_run=True))
    assert again == first and (cache.hits, cache.misses) == (1, 1)


def test_cached_findings_are_phrased_with_the_key_they_are_under(app: Any, client: Any) -> None:
    answer(client, policy_review(BROKEN, key="policy.yaml"))
    request = configmap_request(configmap({"other.yaml": BROKEN}))
    message = answer(client, wrap(request))["status"]["message"]
    assert "data[other.yaml] line 4" in message and "policy.yaml" not in message
    assert app.extensions["audit_webhook_cache"].hits == 1


def test_cache_is_bounded_and_can_be_turned_off() -> None:
    cache = FindingsCache(2)
    for text in (b"a", b"b", b"c"):
        cache.put(FindingsCache.key(text), ((), ()))
    assert len(cache) == 2 and cache.get(FindingsCache.key(b"a")) is None
    off = create_app(WebhookConfig(cache_entries=0))
    client = off.test_client()
    for _ in range(2):
        assert answer(client, policy_review(VALID))["allowed"] is True
    assert len(off.extensions["audit_webhook_cache"]) == 0
