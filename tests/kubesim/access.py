"""Who is calling, and may they? Authentication, the authorizer and impersonation.

The simulated cluster authorizes like a kubeadm cluster whose users are all bound to
cluster-admin, except for the refusals a test asked for (`Cluster.forbid`). Anonymous
callers only get the `system:public-info-viewer` paths. Reasons are the ones kube-apiserver
puts into the `authorization.k8s.io/reason` audit annotation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from tests.kubesim.statuses import ApiError

ANONYMOUS = "system:anonymous"
# Paths the `system:public-info-viewer` ClusterRole grants to everyone, anonymous included.
_PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")

TokenLookup = Callable[[str], "tuple[str, tuple[str, ...]] | None"]  # token -> user, groups
ForbiddenRule = Callable[[str, str, str], bool]  # (user, verb, target) -> refused?


@dataclass
class Caller:
    user: str
    groups: tuple[str, ...]


def authenticate(request: web.Request, user_for_token: TokenLookup) -> Caller:
    """Bearer token, else client certificate (CN user, O groups), else anonymous."""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        identity = user_for_token(authorization[len("Bearer ") :].strip())
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user, groups = identity
        return Caller(user, (*groups, "system:authenticated"))
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if peer:
        user, groups = "", []
        for rdn in peer.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    user = value
                elif key == "organizationName":
                    groups.append(value)
        return Caller(user, (*groups, "system:authenticated"))
    return Caller(ANONYMOUS, ("system:unauthenticated",))


def decide(caller: Caller, verb: str, target: str, is_forbidden: ForbiddenRule) -> tuple[bool, str]:
    """The authorizer: (allowed, reason). `target` is `resource[/subresource]` or, for
    non-resource requests, the path."""
    if caller.user == ANONYMOUS:
        public = target.startswith("/") and any(
            target == p or target.startswith(p + "/") for p in _PUBLIC_PATHS
        )
        if not public:
            return False, ""
        return True, (
            'RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole'
            ' "system:public-info-viewer" to Group "system:unauthenticated"'
        )
    if is_forbidden(caller.user, verb, target):
        return False, ""
    if "system:masters" in caller.groups:
        return True, ""  # the privileged-group authorizer gives no reason
    return True, (
        'RBAC: allowed by ClusterRoleBinding "kubesim:cluster-admin" of ClusterRole'
        f' "cluster-admin" to User "{caller.user}"'
    )


def impersonated(request: web.Request, caller: Caller, is_forbidden: ForbiddenRule) -> Caller:
    """`Impersonate-User`/`-Group` headers (kubectl --as/--as-group): allowed when the
    caller may `impersonate users`; the request then acts as that user."""
    user = request.headers.get("Impersonate-User")
    if not user:
        return caller
    allowed, _ = decide(caller, "impersonate", "users", is_forbidden)
    if not allowed:
        raise ApiError(
            403,
            "Forbidden",
            f'users "{user}" is forbidden: User "{caller.user}" cannot impersonate resource'
            ' "users" in API group "" at the cluster scope',
            {"name": user, "kind": "users"},
        )
    groups = tuple(request.headers.getall("Impersonate-Group", []))
    return Caller(user, (*groups, "system:authenticated"))
