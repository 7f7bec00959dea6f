"""Building the request attributes the policy is evaluated on (spec §5.4), from three inputs.

1. `explain`'s command line, in the grammar of `kubectl auth can-i`:
   `VERB (RESOURCE[.GROUP][/NAME] | /NON/RESOURCE/URL)` plus `--subresource`, `-n`,
   `--as`, `--as-group`. There is no cluster to ask for discovery, so resource names are
   resolved through a fixed table of the built-in Kubernetes APIs (plural, singular,
   short names and kind, e.g. `po`/`pod`/`Pod` -> `pods`, `deploy` -> `deployments.apps`).
   A name the table does not know is taken literally (group `""` unless `.GROUP` is given),
   exactly as it would reach a policy for a custom resource.
2. A `request:` mapping of a `kubectl audit test` file (field names as in audit events).
3. An `audit.k8s.io/v1` or `v1beta1` Event dict: what `logs` and the benchmark replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_audit.errors import InputError, UsageError
from kubectl_audit.policy.model import RequestAttributes, UserInfo

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

# Verbs kube-apiserver derives for resource requests (§5.4); others are accepted with a note.
RESOURCE_VERBS: tuple[str, ...] = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
)


@dataclass(frozen=True)
class ResourceType:
    """One built-in resource: its plural, API group, version and whether it is namespaced."""

    plural: str
    group: str
    version: str
    namespaced: bool
    aliases: tuple[str, ...] = ()  # singular, short names and kind, all lower-case


def _rt(plural: str, group: str, version: str, namespaced: bool, *aliases: str) -> ResourceType:
    return ResourceType(plural, group, version, namespaced, aliases)


# The built-in APIs of Kubernetes 1.36 that people name on a command line. Short names are
# those `kubectl api-resources` prints; the singular and the lower-cased kind are accepted
# as kubectl's RESTMapper accepts them.
BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _rt("pods", "", "v1", True, "pod", "po"),
    _rt("services", "", "v1", True, "service", "svc"),
    _rt("configmaps", "", "v1", True, "configmap", "cm"),
    _rt("secrets", "", "v1", True, "secret"),
    _rt("serviceaccounts", "", "v1", True, "serviceaccount", "sa"),
    _rt("namespaces", "", "v1", False, "namespace", "ns"),
    _rt("nodes", "", "v1", False, "node", "no"),
    _rt("persistentvolumes", "", "v1", False, "persistentvolume", "pv"),
    _rt("persistentvolumeclaims", "", "v1", True, "persistentvolumeclaim", "pvc"),
    _rt("events", "", "v1", True, "event", "ev"),
    _rt("endpoints", "", "v1", True, "ep"),
    _rt("limitranges", "", "v1", True, "limitrange", "limits"),
    _rt("resourcequotas", "", "v1", True, "resourcequota", "quota"),
    _rt("replicationcontrollers", "", "v1", True, "replicationcontroller", "rc"),
    _rt("podtemplates", "", "v1", True, "podtemplate"),
    _rt("componentstatuses", "", "v1", False, "componentstatus", "cs"),
    _rt("bindings", "", "v1", True, "binding"),
    _rt("deployments", "apps", "v1", True, "deployment", "deploy"),
    _rt("replicasets", "apps", "v1", True, "replicaset", "rs"),
    _rt("statefulsets", "apps", "v1", True, "statefulset", "sts"),
    _rt("daemonsets", "apps", "v1", True, "daemonset", "ds"),
    _rt("controllerrevisions", "apps", "v1", True, "controllerrevision"),
    _rt("jobs", "batch", "v1", True, "job"),
    _rt("cronjobs", "batch", "v1", True, "cronjob", "cj"),
    _rt("horizontalpodautoscalers", "autoscaling", "v2", True, "horizontalpodautoscaler", "hpa"),
    _rt("ingresses", "networking.k8s.io", "v1", True, "ingress", "ing"),
    _rt("ingressclasses", "networking.k8s.io", "v1", False, "ingressclass"),
    _rt("networkpolicies", "networking.k8s.io", "v1", True, "networkpolicy", "netpol"),
    _rt("endpointslices", "discovery.k8s.io", "v1", True, "endpointslice"),
    _rt("poddisruptionbudgets", "policy", "v1", True, "poddisruptionbudget", "pdb"),
    _rt("roles", "rbac.authorization.k8s.io", "v1", True, "role"),
    _rt("rolebindings", "rbac.authorization.k8s.io", "v1", True, "rolebinding"),
    _rt("clusterroles", "rbac.authorization.k8s.io", "v1", False, "clusterrole"),
    _rt("clusterrolebindings", "rbac.authorization.k8s.io", "v1", False, "clusterrolebinding"),
    _rt("tokenreviews", "authentication.k8s.io", "v1", False, "tokenreview"),
    _rt("selfsubjectreviews", "authentication.k8s.io", "v1", False, "selfsubjectreview"),
    _rt("subjectaccessreviews", "authorization.k8s.io", "v1", False, "subjectaccessreview"),
    _rt(
        "selfsubjectaccessreviews",
        "authorization.k8s.io",
        "v1",
        False,
        "selfsubjectaccessreview",
    ),
    _rt("localsubjectaccessreviews", "authorization.k8s.io", "v1", True),
    _rt("selfsubjectrulesreviews", "authorization.k8s.io", "v1", False),
    _rt("certificatesigningrequests", "certificates.k8s.io", "v1", False, "csr"),
    _rt("leases", "coordination.k8s.io", "v1", True, "lease"),
    _rt("storageclasses", "storage.k8s.io", "v1", False, "storageclass", "sc"),
    _rt("volumeattachments", "storage.k8s.io", "v1", False, "volumeattachment"),
    _rt("csidrivers", "storage.k8s.io", "v1", False, "csidriver"),
    _rt("csinodes", "storage.k8s.io", "v1", False, "csinode"),
    _rt("priorityclasses", "scheduling.k8s.io", "v1", False, "priorityclass", "pc"),
    _rt("runtimeclasses", "node.k8s.io", "v1", False, "runtimeclass"),
    _rt(
        "customresourcedefinitions",
        "apiextensions.k8s.io",
        "v1",
        False,
        "customresourcedefinition",
        "crd",
        "crds",
    ),
    _rt("apiservices", "apiregistration.k8s.io", "v1", False, "apiservice"),
    _rt(
        "validatingwebhookconfigurations",
        "admissionregistration.k8s.io",
        "v1",
        False,
        "validatingwebhookconfiguration",
    ),
    _rt(
        "mutatingwebhookconfigurations",
        "admissionregistration.k8s.io",
        "v1",
        False,
        "mutatingwebhookconfiguration",
    ),
    _rt(
        "validatingadmissionpolicies",
        "admissionregistration.k8s.io",
        "v1",
        False,
        "validatingadmissionpolicy",
    ),
    _rt("events", "events.k8s.io", "v1", True),
    _rt("flowschemas", "flowcontrol.apiserver.k8s.io", "v1", False, "flowschema"),
    _rt(
        "prioritylevelconfigurations",
        "flowcontrol.apiserver.k8s.io",
        "v1",
        False,
        "prioritylevelconfiguration",
    ),
)


@dataclass(frozen=True)
class ResolvedResource:
    """`RESOURCE[.GROUP]` as the API server would see it; `known` False = taken literally."""

    resource: str
    group: str
    version: str
    namespaced: bool | None  # None: unknown resource, scope unknown
    known: bool


def resolve_resource(spec: str) -> ResolvedResource:
    """Resolve `po`, `pods`, `deploy`, `deployments.apps`, `foos.example.com` like kubectl.

    The part before the first `.` is the resource, the rest the group. Without a group the
    core group wins over others (`events` -> core events, as kubectl prefers). A group given
    must equal the built-in one or be a prefix of it at a `.` boundary (`hpa.autoscaling`,
    `roles.rbac` -> `rbac.authorization.k8s.io`), as kubectl's RESTMapper accepts.
    """
    name, _, group = spec.partition(".")
    lowered = name.lower()
    for rt in BUILTIN_RESOURCES:
        if lowered != rt.plural and lowered not in rt.aliases:
            continue
        if group and not (rt.group == group or rt.group.startswith(group + ".")):
            continue
        return ResolvedResource(rt.plural, rt.group, rt.version, rt.namespaced, known=True)
    return ResolvedResource(name, group, "", None, known=False)


def user_info(user: str | None, groups: Sequence[str] = ()) -> UserInfo | None:
    """The authenticated identity of `--as USER --as-group G`, groups as the API server adds them.

    Authenticated users always carry `system:authenticated` (anonymous ones
    `system:unauthenticated`), and service accounts their two service-account groups.
    """
    if user is None:
        if groups:
            raise UsageError(
                "--as-group needs --as: groups cannot be given without a user",
                hint="add --as USER",
            )
        return None
    all_groups = list(groups)
    if user == ANONYMOUS:
        implied = [UNAUTHENTICATED]
    else:
        implied = [AUTHENTICATED]
        if user.startswith(SERVICE_ACCOUNT_PREFIX):
            namespace = user[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")[0]
            implied = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", *implied]
    for group in implied:
        if group not in all_groups:
            all_groups.append(group)
    return UserInfo(user, tuple(all_groups))


@dataclass(frozen=True)
class CanIRequest:
    """The attributes plus what `explain` tells the user about how they were derived."""

    attrs: RequestAttributes
    notes: tuple[str, ...] = ()


def from_can_i(
    verb: str,
    target: str,
    *,
    subresource: str = "",
    namespace: str | None = None,
    all_namespaces: bool = False,
    user: str | None = None,
    groups: Sequence[str] = (),
) -> CanIRequest:
    """Attributes for `kubectl auth can-i VERB TARGET ...` as the real request would carry them.

    Namespace: `-n NS`, or none with `-A`; without either, namespaced resources use
    `default` (kubectl's default namespace) and everything else none. Cluster-scoped
    resources never carry a namespace, except that a Namespace object is "in" itself.
    """
    if not verb:
        raise UsageError("VERB must not be empty")
    info = user_info(user, groups)
    if target.startswith("/"):
        if subresource:
            raise UsageError("--subresource does not apply to a non-resource URL")
        path = target.partition("?")[0]
        attrs = RequestAttributes(verb=verb, user=info, resource_request=False, path=path)
        return CanIRequest(attrs, _verb_notes(verb, resource=False))
    resource_spec, slash, name = target.partition("/")
    if not resource_spec or (slash and not name) or "/" in name:
        raise UsageError(
            f"cannot parse {target!r} as RESOURCE[.GROUP][/NAME]",
            hint="e.g. `pods`, `deployments.apps/web`, or a URL path starting with /",
        )
    resolved = resolve_resource(resource_spec)
    notes = list(_verb_notes(verb, resource=True))
    if not resolved.known:
        notes.append(
            f"{resource_spec!r} is not a built-in resource; taken literally as resource "
            f"{resolved.resource!r} in group {resolved.group!r}"
        )
    ns = _request_namespace(resolved, name, namespace, all_namespaces)
    attrs = RequestAttributes(
        verb=verb,
        user=info,
        resource_request=True,
        namespace=ns,
        api_group=resolved.group,
        resource=resolved.resource,
        subresource=subresource,
        name=name,
        path=_resource_path(resolved, ns, name, subresource),
    )
    return CanIRequest(attrs, tuple(notes))


def _verb_notes(verb: str, *, resource: bool) -> tuple[str, ...]:
    if resource and verb not in RESOURCE_VERBS:
        return (f"{verb!r} is not a verb kube-apiserver gives resource requests",)
    if not resource and verb != verb.lower():
        return (f"non-resource verbs are lower-case HTTP methods; {verb!r} matches only itself",)
    return ()


def _request_namespace(
    resolved: ResolvedResource, name: str, namespace: str | None, all_namespaces: bool
) -> str:
    if resolved.known and resolved.resource == "namespaces" and resolved.group == "":
        return name  # `GET /api/v1/namespaces/kube-system` is "in" kube-system (§5.4)
    if resolved.namespaced is False or all_namespaces:
        return ""
    if namespace is not None:
        return namespace
    return "default" if resolved.namespaced else ""


def _resource_path(resolved: ResolvedResource, namespace: str, name: str, sub: str) -> str:
    """The URL path the request would have; empty when the API version is unknown."""
    if not resolved.version:
        return ""
    prefix = (
        f"/api/{resolved.version}"
        if resolved.group == ""
        else f"/apis/{resolved.group}/{resolved.version}"
    )
    parts = [prefix]
    if namespace and resolved.resource != "namespaces":
        parts.append(f"namespaces/{namespace}")
    parts.append(resolved.resource)
    if name:
        parts.append(name)
        if sub:
            parts.append(sub)
    return "/".join(parts)


# ---------------------------------------------------------------------------------------
# (b) a `request:` mapping of a test file

REQUEST_FIELDS: tuple[str, ...] = (
    "user",
    "groups",
    "verb",
    "namespace",
    "apiGroup",
    "resource",
    "subresource",
    "name",
    "path",
    "resourceRequest",
)


def from_test_request(data: Any, *, where: str) -> RequestAttributes:
    """Attributes from a test file's `request:` mapping; InputError names `where` and the field."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: must be a mapping, not {_type_name(data)}")
    unknown = [key for key in data if key not in REQUEST_FIELDS]
    if unknown:
        raise InputError(
            f"{where}: unknown field {unknown[0]!r}",
            hint="allowed fields: " + ", ".join(REQUEST_FIELDS),
        )
    verb = _string(data, "verb", where, required=True)
    user = _string(data, "user", where, nullable=True)
    if user == "":
        raise InputError(f"{where}.user: must not be empty; omit it (or null) for no user")
    groups = _string_list(data, "groups", where)
    if user is None and groups:
        raise InputError(f"{where}.groups: groups need a user (set `user:`)")
    resource = _string(data, "resource", where)
    resource_request = data.get("resourceRequest")
    if resource_request is None:
        resource_request = bool(resource)
    elif not isinstance(resource_request, bool):
        raise InputError(
            f"{where}.resourceRequest: must be true or false, not {_type_name(resource_request)}"
        )
    if resource_request and not resource:
        raise InputError(f"{where}.resource: required for a resource request")
    if not resource_request and resource:
        raise InputError(f"{where}.resource: a non-resource request has no resource")
    return RequestAttributes(
        verb=verb,
        user=None if user is None else UserInfo(user, tuple(groups)),
        resource_request=resource_request,
        namespace=_string(data, "namespace", where),
        api_group=_string(data, "apiGroup", where),
        resource=resource,
        subresource=_string(data, "subresource", where),
        name=_string(data, "name", where),
        path=_string(data, "path", where),
    )


def _string(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    required: bool = False,
    nullable: bool = False,
) -> Any:
    value = data.get(key)
    if value is None:
        if required:
            raise InputError(f"{where}.{key}: required")
        return None if nullable else ""
    if not isinstance(value, str):
        raise InputError(
            f"{where}.{key}: must be a string, not {_type_name(value)}",
            hint='quote values YAML reads as numbers or booleans, e.g. "no" or "1234"',
        )
    if required and not value:
        raise InputError(f"{where}.{key}: must not be empty")
    return value


def _string_list(data: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{where}.{key}: must be a list of strings")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


# ---------------------------------------------------------------------------------------
# (c) an audit Event


def from_event(event: Mapping[str, Any]) -> RequestAttributes:
    """The attributes the policy saw for the request an audit Event records.

    `user` is the authenticated user (the policy runs before impersonation); an event
    without a username is a failed authentication and carries no user information. A
    request with an `objectRef` is a resource request, one without is non-resource.
    Fields of the wrong JSON type (hand-edited or truncated logs) count as absent.
    """
    user = _mapping(event.get("user"))
    username = _text(user.get("username"))
    groups = user.get("groups")
    group_names = tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else ()
    info = UserInfo(username, group_names) if username else None
    verb = _text(event.get("verb"))
    path = _text(event.get("requestURI")).partition("?")[0]
    ref = _mapping(event.get("objectRef"))
    if not ref:
        return RequestAttributes(verb=verb, user=info, resource_request=False, path=path)
    return RequestAttributes(
        verb=verb,
        user=info,
        resource_request=True,
        namespace=_text(ref.get("namespace")),
        api_group=_text(ref.get("apiGroup")),
        resource=_text(ref.get("resource")),
        subresource=_text(ref.get("subresource")),
        name=_text(ref.get("name")),
        path=path,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


__all__ = [
    "BUILTIN_RESOURCES",
    "REQUEST_FIELDS",
    "CanIRequest",
    "ResolvedResource",
    "ResourceType",
    "from_can_i",
    "from_event",
    "from_test_request",
    "resolve_resource",
    "user_info",
]
