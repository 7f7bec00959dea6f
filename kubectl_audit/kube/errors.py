"""Turn the API's refusals into one line that says what is missing and how to get it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

from kubectl_audit.errors import ClusterError

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<namespace>[^"]+)")?'
)


class NotFound(ClusterError):
    """The API answered 404 for the object."""


def status_message(error: Exception) -> str:
    """The `message` of the Status in an ApiException body, else its reason."""
    body = getattr(error, "body", None)
    if body:
        try:
            status = json.loads(body)
        except (TypeError, ValueError):
            return str(body).strip()
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(getattr(error, "reason", None) or error)


def api_error(error: Exception, action: str) -> ClusterError:
    """A ClusterError for an ApiException raised while doing `action` (e.g. "create pod")."""
    code = getattr(error, "status", None)
    message = status_message(error)
    if code == 403:
        if "violates PodSecurity" in message:
            return ClusterError(
                f"Pod Security admission refused the privileged node-agent pod: {message}",
                hint="run in a namespace whose Pod Security level allows privileged pods, "
                "usually `-n kube-system`; kubectl-audit never relabels namespaces",
            )
        forbidden = _FORBIDDEN.search(message)
        if forbidden:
            where = forbidden["namespace"]
            scope = f" in namespace {where}" if where else " (cluster-wide)"
            group = forbidden["group"]
            resource = forbidden["resource"] + (f".{group}" if group else "")
            who, verb = forbidden["user"], forbidden["verb"]
            return ClusterError(
                f"permission denied: {who} cannot {verb} {resource}{scope}",
                hint=f"ask a cluster admin for RBAC that allows `{forbidden['verb']}` on "
                f"`{resource}`{scope} (see README: permissions)",
            )
        return ClusterError(f"{action}: forbidden: {message}")
    if code == 401:
        return ClusterError(
            f"{action}: unauthorized: {message}",
            hint="your credentials were refused; check the kubeconfig user or refresh its token",
        )
    if code in (0, None):
        return ClusterError(
            f"{action}: cannot reach the API server: {message}",
            hint="check that the cluster is up and --kubeconfig/--context point at it",
        )
    if code == 404:
        return NotFound(f"{action}: {message}")
    return ClusterError(f"{action}: {message} (HTTP {code})")


class ApiUnreachable(ClusterError):
    """No answer from the API server at all (connection refused, TLS, timeout)."""


@contextmanager
def api_call(action: str) -> Iterator[None]:
    """Translate the client's exceptions for `action` into our ClusterError family.

    REST calls raise ApiException for answers and urllib3 errors when nothing answers
    (the API server restarting, a wrong address); both become one clear message.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as error:
        raise api_error(error, action) from None
    except HTTPError as error:
        reason = getattr(error, "reason", None) or error
        raise ApiUnreachable(
            f"{action}: cannot reach the API server: {reason}",
            hint="check that the cluster is up and --kubeconfig/--context point at it",
        ) from None
