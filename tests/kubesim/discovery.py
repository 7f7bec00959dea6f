"""Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`) and the
self-review APIs (`kubectl auth can-i`, `kubectl auth whoami`) with their decisions.

Only legacy (unaggregated) discovery is served: kubectl asks for aggregated discovery first
and falls back to these documents when the answer is plain `application/json`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.kubesim.store import RESOURCES

_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "exec": ["create", "get"],
    "log": ["get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
}
_SUB_KINDS = {"exec": "PodExecOptions", "log": "Pod", "proxy": "NodeProxyOptions"}

# group -> (version, [(resource, kind)]): create-only, cluster-scoped review resources
REVIEW_GROUPS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "authentication.k8s.io": ("v1", [("selfsubjectreviews", "SelfSubjectReview")]),
    "authorization.k8s.io": (
        "v1",
        [("selfsubjectaccessreviews", "SelfSubjectAccessReview")],
    ),
}


def api_versions(address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def core_resources() -> dict:
    resources: list[dict[str, Any]] = []
    for rtype in RESOURCES.values():
        entry: dict[str, Any] = {
            "name": rtype.name,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(rtype.verbs),
        }
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        resources.append(entry)
        for sub in rtype.subresources:
            resources.append(
                {
                    "name": f"{rtype.name}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": _SUB_KINDS.get(sub, rtype.kind),
                    "verbs": _SUB_VERBS[sub],
                }
            )
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


def _group(name: str, version: str) -> dict:
    group_version = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [group_version], "preferredVersion": group_version}


def group_list() -> dict:
    groups = [_group(name, version) for name, (version, _) in REVIEW_GROUPS.items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group_document(path: str) -> dict | None:
    """`/apis/<group>` (an APIGroup) or `/apis/<group>/<version>` (an APIResourceList)."""
    parts = path.strip("/").split("/")[1:]
    if not parts or parts[0] not in REVIEW_GROUPS:
        return None
    version, resources = REVIEW_GROUPS[parts[0]]
    if len(parts) == 1:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[0], version)}
    if len(parts) == 2 and parts[1] == version:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{parts[0]}/{version}",
            "resources": [
                {
                    "name": name,
                    "singularName": name[:-1],
                    "namespaced": False,
                    "kind": kind,
                    "verbs": ["create"],
                }
                for name, kind in resources
            ],
        }
    return None


def self_subject_review(user: str, groups: tuple[str, ...]) -> dict:
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": user, "groups": list(groups)}},
    }


def self_subject_access_review(
    review: dict, decide: Callable[[str, str], tuple[bool, str]]
) -> dict:
    """Fills `status` of a SelfSubjectAccessReview; `decide(verb, target)` is the
    authorizer (target: `pods`, `pods/exec` or a non-resource path)."""
    spec = review.get("spec") or {}
    resource_attributes = spec.get("resourceAttributes")
    if resource_attributes is not None:
        target = resource_attributes.get("resource", "")
        if resource_attributes.get("subresource"):
            target += "/" + resource_attributes["subresource"]
        verb = resource_attributes.get("verb", "")
    else:
        non_resource = spec.get("nonResourceAttributes") or {}
        target, verb = non_resource.get("path", ""), non_resource.get("verb", "")
    allowed, reason = decide(verb, target)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def openapi_v3_index() -> dict:
    """`/openapi/v3`: where each group-version's document lives."""
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=kubesim"}}}


def openapi_v3_core() -> dict:
    """A small `/openapi/v3/api/v1`: the PATCH operations with their GVK extension and the
    `fieldValidation` parameter. That is what kubectl reads to decide that the server
    validates fields itself (`kubectl apply`/`create -f` then skip client-side schema
    validation). No schemas: kubectl falls back to its built-in types for patch strategies."""
    parameters = [
        {"name": name, "in": "query", "schema": {"type": "string"}}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    paths = {}
    for rtype in RESOURCES.values():
        scope = "/api/v1/namespaces/{namespace}/" if rtype.namespaced else "/api/v1/"
        gvk = {"group": "", "version": "v1", "kind": rtype.kind}
        paths[f"{scope}{rtype.name}/{{name}}"] = {
            "patch": {
                "operationId": f"patchCoreV1{rtype.kind}",
                "parameters": parameters,
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": {}},
    }
