"""`/healthz` (the process answers) and `/readyz` (the policy engine gives right answers)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response

from kubectl_audit.errors import AuditError
from kubectl_audit.policy.report import check_policy

# One valid and one invalid policy: ready means the engine tells them apart.
_GOOD = b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
_BAD = b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n"


def engine_self_check() -> str | None:
    """None when the engine accepts the good policy and refuses the bad one, else why not."""
    try:
        good = check_policy(_GOOD, file="<self-check good>")
        bad = check_policy(_BAD, file="<self-check bad>")
    except AuditError as error:
        return f"policy engine raised {type(error).__name__}: {error.message}"
    if not good.valid:
        return "policy engine rejects a valid policy"
    if bad.valid:
        return "policy engine accepts a policy with an unsupported level"
    return None


def create_blueprint() -> Blueprint:
    blueprint = Blueprint("health", __name__)
    problem = engine_self_check()

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    @blueprint.get("/readyz")
    def readyz() -> Response:
        if problem is None:
            return Response(b'{"status":"ready"}', mimetype="application/json")
        body = orjson.dumps({"status": "not ready", "reason": problem})
        return Response(body, status=503, mimetype="application/json")

    return blueprint
