"""Hostile or broken input: a clear 4xx, or a denial when a review can still be answered.

Never a 500, never a hang (pytest-timeout bounds each test), memory bounded by the caps.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhook.helpers import (
    V1,
    answer,
    configmap,
    configmap_request,
    policy_review,
    post,
    wrap,
)
from webhook import create_app
from webhook.config import WebhookConfig

pytestmark = pytest.mark.timeout(30)

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


def _billion_laughs(levels: int = 9) -> str:
    """9 levels of 9 aliases: 387 million leaves once expanded, 400-odd bytes of YAML."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return HEAD + "\n".join(lines) + f"\nrules:\n- level: Metadata\n  users: *l{levels - 1}\n"


def _rejected(reply: Any, status: int, words: str) -> None:
    assert reply.status_code == status, reply.get_data(as_text=True)
    body = reply.get_json()
    assert words in body["message"]


def test_body_over_the_cap_is_refused_before_parsing(client: Any) -> None:
    big = b'{"apiVersion":"' + b"x" * (3 * 1024 * 1024) + b'"}'
    reply = post(client, big)
    assert reply.status_code == 413
    assert reply.get_json()["error"] == "Request Entity Too Large"


def test_a_smaller_configured_cap_applies() -> None:
    client = create_app(WebhookConfig(max_body_bytes=4096)).test_client()
    review = policy_review(HEAD + "rules:\n" + "- level: Metadata\n" * 400)
    assert post(client, review).status_code == 413


def test_alias_bomb_is_denied_with_the_engines_reason(client: Any) -> None:
    response = answer(client, policy_review(_billion_laughs()))
    assert response["allowed"] is False
    assert "through aliases" in response["status"]["message"]


def test_recursive_alias_is_denied(client: Any) -> None:
    policy = HEAD + "rules: &r\n- level: Metadata\n  users: *r\n"
    response = answer(client, policy_review(policy))
    assert response["allowed"] is False and "recursive alias" in response["status"]["message"]


@pytest.mark.parametrize(
    "policy",
    [
        HEAD + "rules: " + "[" * 5000 + "]" * 5000 + "\n",
        HEAD + "rules:\n" + "".join(" " * i + "- \n" for i in range(600)),
        '{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":' + "[" * 900 + "]" * 900 + "}",
    ],
    ids=["flow", "block", "json"],
)
def test_deeply_nested_policies_are_denied(client: Any, policy: str) -> None:
    response = answer(client, policy_review(policy))
    assert response["allowed"] is False
    assert "failed decoding" in response["status"]["message"]


def test_policy_over_the_policy_cap_is_denied_without_parsing(client: Any) -> None:
    policy = HEAD + "rules:\n" + "- level: Metadata\n" * 20000  # 360 kB: under the body cap
    response = answer(client, policy_review(policy))
    assert response["allowed"] is False
    assert "over the webhook's limit of 262144 bytes" in response["status"]["message"]


def test_invalid_utf8_body_is_refused(client: Any) -> None:
    body = orjson.dumps(policy_review(HEAD + "rules:\n- level: Metadata\n"))
    body = body.replace(b"Metadata", b"Meta\xff\xfedata")
    _rejected(post(client, body), 400, "not JSON")


def test_lone_surrogate_escape_in_a_policy_is_refused_or_denied(client: Any) -> None:
    body = orjson.dumps(policy_review(HEAD + "rules:\n- level: MARK\n")).replace(
        b"MARK", rb"\ud800"
    )
    reply = post(client, body)
    assert reply.status_code in (200, 400)
    if reply.status_code == 200:
        assert reply.get_json()["response"]["allowed"] is False


def test_deeply_nested_json_body_is_refused(client: Any) -> None:
    body = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":' + (
        b"[" * 100_000 + b"]" * 100_000 + b"}"
    )
    _rejected(post(client, body), 400, "not JSON")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not JSON"),
        (b"<AdmissionReview/>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "no request"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}',
            "no request",
        ),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}', "no uid"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}',
            "no uid",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}',
            "no uid",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}',
            "expected kind",
        ),
        (b'{"apiVersion":"v1","kind":"ConfigMap","request":{"uid":"u"}}', "expected kind"),
    ],
)
def test_bodies_that_are_not_reviews_are_refused(client: Any, body: bytes, words: str) -> None:
    _rejected(post(client, body), 400, words)


def test_create_without_an_object_is_refused(client: Any) -> None:
    request = configmap_request(configmap({"policy.yaml": "x"}))
    del request["object"]
    _rejected(post(client, wrap(request)), 400, "has no object")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.update(data=["not", "a", "map"]),
        lambda o: o.update(data={"policy.yaml": 42}),
        lambda o: o.update(binaryData={"policy.yaml": None}),
        lambda o: o.update(metadata="not a map"),
        lambda o: o["metadata"].update(labels=["x"]),
    ],
    ids=["data-list", "data-number", "binary-null", "metadata-string", "labels-list"],
)
def test_malformed_objects_get_an_answer(client: Any, mutate: Any) -> None:
    obj = configmap({"policy.yaml": HEAD + "rules:\n- level: Metadata\n"})
    mutate(obj)
    response = answer(client, wrap(configmap_request(obj)))
    assert isinstance(response["allowed"], bool)


def test_wrong_method_and_path_answer_json(client: Any) -> None:
    assert client.get("/validate").status_code == 405
    assert client.get("/nothing").get_json()["error"] == "Not Found"


def test_binary_policy_with_control_bytes_is_denied(client: Any) -> None:
    raw = (HEAD + "rules:\n- level: Metadata\x00\x07\n").encode()
    obj = configmap(binary={"policy.yaml": base64.b64encode(raw).decode()})
    assert answer(client, wrap(configmap_request(obj)))["allowed"] is False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", None, 3]),
    data=json_values,
    labels=st.one_of(json_values, st.just({"audit.kubectl-audit.io/policy": "true"})),
    kind=st.one_of(json_values, st.just({"group": "", "version": "v1", "kind": "ConfigMap"})),
)
def test_arbitrary_request_fields_never_cause_a_server_error(
    client: Any, operation: Any, data: Any, labels: Any, kind: Any
) -> None:
    request = {
        "uid": "fuzz",
        "kind": kind,
        "operation": operation,
        "object": {"metadata": {"name": "x", "labels": labels}, "data": data},
    }
    reply = post(client, {"apiVersion": V1, "kind": "AdmissionReview", "request": request})
    assert reply.status_code in (200, 400), reply.get_data(as_text=True)
    if reply.status_code == 200:
        assert reply.get_json()["response"]["uid"] == "fuzz"


def test_largest_allowed_policy_is_checked_not_hung(client: Any) -> None:
    """~5,000 rules just under the policy cap: the engine's budgets keep it to seconds."""
    rule = "- level: Request\n  users: [u{}]\n  verbs: [get]\n"
    rules, size, i = [], len(HEAD) + len("rules:\n"), 0
    while size + len(rule) + 8 < 256 * 1024:
        rules.append(rule.format(i))
        size += len(rules[-1])
        i += 1
    response = answer(client, policy_review(HEAD + "rules:\n" + "".join(rules)))
    assert response["allowed"] is True
