"""URL + method -> the request attributes kube-apiserver derives (spec §5.4).

Follows apiserver `pkg/endpoints/request/requestinfo.go`: the `/api` and `/apis` prefixes,
the `watch`/`proxy` URL-prefix verbs, namespace and its `status`/`finalize` subresources,
list/watch/deletecollection from the method and the missing name, and the name taken from a
`metadata.name=` field selector on list/watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_PREFIX_VERBS = {"watch", "proxy"}
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True)
class RequestInfo:
    resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()

    @property
    def group_resource(self) -> str:
        """`pods`, `deployments.apps`: how error messages name the resource."""
        return f"{self.resource}.{self.api_group}" if self.api_group else self.resource


@dataclass(frozen=True)
class RequestRecord:
    """One served request, as the apiserver model needs it for an audit Event."""

    audit_id: str
    method: str
    request_uri: str
    path: str
    verb: str
    user: str
    groups: tuple[str, ...]
    user_agent: str
    source_ip: str
    resource_request: bool
    api_group: str
    api_version: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    received: datetime
    completed: datetime
    decision: str
    reason: str
    request_object: dict | None
    response_object: dict | None
    # kubectl --as: whom the authenticated `user` acted as (empty when nobody)
    impersonated_user: str = ""
    impersonated_groups: tuple[str, ...] = ()


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "t")


def parse_request(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """The RequestInfo kube-apiserver's RequestInfoFactory would build."""
    method_verb = method.lower()
    segments = [s for s in path.strip("/").split("/")] if path.strip("/") else []
    if not segments or segments[0] not in ("api", "apis"):
        return RequestInfo(False, path, method_verb)
    prefix, rest = segments[0], segments[1:]
    if prefix == "apis":
        if len(rest) < 3:  # /apis, /apis/<group>, /apis/<group>/<version>
            return RequestInfo(False, path, method_verb)
        group, version, rest = rest[0], rest[1], rest[2:]
    else:
        if len(rest) < 2:  # /api, /api/v1
            return RequestInfo(False, path, method_verb)
        group, version, rest = "", rest[0], rest[1:]

    verb = _METHOD_VERBS.get(method.upper(), method_verb)
    if rest and rest[0] in _PREFIX_VERBS:
        if len(rest) < 2:
            return RequestInfo(False, path, method_verb)
        verb, rest = rest[0], rest[1:]

    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        # /namespaces/<ns>/<resource>... addresses a namespaced resource; the namespace
        # object itself (and its status/finalize) keeps resource "namespaces".
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""

    if not name and verb == "get":
        verb = "watch" if _true(query.get("watch")) else "list"
    if not name and verb == "delete":
        verb = "deletecollection"
    if verb in ("list", "watch"):
        name = _name_from_field_selector(query.get("fieldSelector", "")) or name
    return RequestInfo(
        True,
        path,
        verb,
        api_prefix=prefix,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
        parts=tuple(rest),
    )


def _name_from_field_selector(selector: str) -> str:
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.lstrip("=").strip()
    return ""
