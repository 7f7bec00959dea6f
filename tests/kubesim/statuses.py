"""Error responses as kube-apiserver writes them: `Status` objects with upstream's texts
(apimachinery `api/errors`, apiserver `endpoints/handlers/responsewriters`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.kubesim.admission import FieldError
from tests.kubesim.requestinfo import RequestInfo

NOT_FOUND_MESSAGE = "the server could not find the requested resource"


class ApiError(Exception):
    """An error response: becomes a `Status` object with this code, reason and message."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def not_found(info: RequestInfo | None = None, name: str = "", resource: str = "") -> ApiError:
    if info is None and not resource:
        return ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {})
    resource = resource or (info.group_resource if info else "")
    details = {"name": name, "kind": resource}
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', details)


def forbidden(info: RequestInfo, user: str, verb: str | None = None, why: str = "") -> ApiError:
    """apiserver responsewriters.Forbidden + apierrors.NewForbidden, word for word."""
    verb = verb or info.verb
    if not info.resource_request:
        text = f'User "{user}" cannot {verb} path "{info.path}"'
        return ApiError(403, "Forbidden", f"forbidden: {text}", {})
    resource = info.resource + (f"/{info.subresource}" if info.subresource else "")
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    text = why or (
        f'User "{user}" cannot {verb} resource "{resource}" in API group "{info.api_group}" {scope}'
    )
    prefix = f'{info.group_resource} "{info.name}"' if info.name else info.group_resource
    details = {"name": info.name, "kind": info.resource} if info.name else {"kind": info.resource}
    if info.api_group:
        details["group"] = info.api_group
    return ApiError(403, "Forbidden", f"{prefix} is forbidden: {text}", details)


def invalid(kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """apierrors.NewInvalid: one error inline, several in brackets."""
    texts = [str(e) for e in errors]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    reasons = {
        "Required value": "FieldValueRequired",
        "Invalid value": "FieldValueInvalid",
        "Too long": "FieldValueTooLong",
        "Forbidden": "FieldValueForbidden",
    }
    causes = [
        {
            "reason": reasons.get(e.kind, "FieldValueInvalid"),
            "message": str(e)[len(e.field) + 2 :],
            "field": e.field,
        }
        for e in errors
    ]
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {summary}',
        {"name": name, "kind": kind, "causes": causes},
    )


def json_response(body: dict, status: int = 200, audit_id: str = "") -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers={"Audit-Id": audit_id} if audit_id else None,
    )
