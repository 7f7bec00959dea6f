"""Building real-shaped AdmissionReviews around ConfigMaps for the webhook tests.

The base request is the one real ConfigMap CREATE we have (pepr cm1, captured from a
cluster by `kubectl apply`; testdata/admission-reviews/PROVENANCE.md): only its object is
replaced, so every other field keeps the API server's real shape.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import TESTDATA
from webhook.config import OPT_IN_LABEL, OPT_IN_VALUE

REVIEWS = TESTDATA / "admission-reviews"
POLICIES = TESTDATA / "policies"
V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"
OPTED_IN = {OPT_IN_LABEL: OPT_IN_VALUE}


@cache
def _cm1_request() -> dict[str, Any]:
    return json.loads((REVIEWS / "pepr" / "cm1-configmap-create-request.json").read_text())


def wrap(request: dict[str, Any], api_version: str = V1) -> dict[str, Any]:
    """A bare AdmissionRequest inside its AdmissionReview, as PROVENANCE.md says to."""
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def configmap(
    data: dict[str, str] | None = None,
    *,
    binary: dict[str, str] | None = None,
    labels: dict[str, str] | None = OPTED_IN,
) -> dict[str, Any]:
    obj = copy.deepcopy(_cm1_request()["object"])
    if labels is not None:
        obj["metadata"]["labels"] = dict(labels)
    obj.pop("data", None)
    if data is not None:
        obj["data"] = data
    if binary is not None:
        obj["binaryData"] = binary
    return obj


def configmap_request(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    request = copy.deepcopy(_cm1_request())
    request["object"] = obj if operation != "DELETE" else None
    request["oldObject"] = old if operation != "CREATE" else None
    request["operation"] = operation
    request["dryRun"] = dry_run
    if operation == "DELETE":
        request["oldObject"] = obj
        request["options"] = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
    elif operation == "UPDATE":
        request["options"] = {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    if uid is not None:
        request["uid"] = uid
    return request


def policy_review(policy: str | bytes, key: str = "policy.yaml", **kwargs: Any) -> dict[str, Any]:
    text = policy.decode() if isinstance(policy, bytes) else policy
    return wrap(configmap_request(configmap({key: text}), **kwargs))


def post(client: Any, body: dict[str, Any] | bytes) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post("/validate", data=data, content_type="application/json")


def answer(client: Any, review: dict[str, Any]) -> dict[str, Any]:
    """POST a review, insist on the contract (200, same GVK, uid echoed), return response."""
    reply = post(client, review)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    body = reply.get_json()
    assert body["apiVersion"] == review["apiVersion"]
    assert body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == review["request"]["uid"]
    assert isinstance(body["response"]["allowed"], bool)
    assert "patch" not in body["response"] and "patchType" not in body["response"]
    return body["response"]


def policy_files() -> list[Path]:
    return sorted(p for p in POLICIES.rglob("*.yaml"))
