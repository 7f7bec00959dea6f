"""The few Kubernetes API requests we make, as plain JSON dicts on the connected ApiClient.

kubernetes>=37's generated CoreV1Api module imports hundreds of pydantic model modules when
first used: about a second of start-up on every cluster command, which is most of what
`kubectl audit status` costs. We need a handful of requests on fixed paths, so they go
through the same ApiClient (`param_serialize` for the kubeconfig's auth and default headers,
`call_api` for its TLS pool and the --request-timeout that kube/client.py wraps around every
REST call) and come back as the API's own JSON, decoded with jsonfast. Refusals raise the
client's ApiException family exactly as the generated methods did, so kube/errors.py turns
them into our errors unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from kubectl_audit import jsonfast

PatchKind = Literal["merge", "strategic", "json"]
Query = Sequence[tuple[str, Any]]

_JSON = "application/json"
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
# The generated methods name this auth setting for every core/v1 call: it resolves to the
# kubeconfig's bearer token (refreshed by exec plugins) or nothing for client certificates.
_AUTH = ["BearerToken"]


def core_path(
    resource: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
) -> str:
    """`/api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUBRESOURCE]]`, names percent-encoded."""
    parts = ["/api/v1"]
    if namespace is not None:
        parts.append(f"namespaces/{quote(namespace, safe='')}")
    parts.append(resource)
    if name is not None:
        parts.append(quote(name, safe=""))
        if subresource is not None:
            parts.append(subresource)
    return "/".join(parts)


@dataclass(frozen=True)
class Rest:
    """JSON requests on one connected `kubernetes.client.ApiClient` (from kube.client.connect)."""

    api_client: Any

    def get(self, path: str, *, query: Query = ()) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def list(self, path: str, *, query: Query = ()) -> list[dict[str, Any]]:
        """The `items` of a list (the API omits the key when there are none)."""
        return list(self.get(path, query=query).get("items") or [])

    def create(self, path: str, body: dict[str, Any], *, query: Query = ()) -> dict[str, Any]:
        return self.request("POST", path, query=query, body=body, content_type=_JSON)

    def replace(self, path: str, body: dict[str, Any], *, query: Query = ()) -> dict[str, Any]:
        """PUT the whole object; its metadata.resourceVersion makes it optimistic."""
        return self.request("PUT", path, query=query, body=body, content_type=_JSON)

    def patch(
        self, path: str, body: dict[str, Any] | list[dict[str, Any]], *, kind: PatchKind
    ) -> dict[str, Any]:
        """A merge (RFC 7386), strategic-merge or JSON (RFC 6902, a list of operations) patch."""
        if kind == "json" and not isinstance(body, list):
            # The client would silently resend it as a strategic merge patch: say so instead.
            raise TypeError("a JSON patch is a list of operations")
        return self.request("PATCH", path, body=body, content_type=_PATCH_CONTENT_TYPES[kind])

    def delete(self, path: str, *, query: Query = ()) -> dict[str, Any]:
        return self.request("DELETE", path, query=query)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = (),
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer, or ApiException (urllib3 errors when nothing
        answered), as the generated API methods raise them."""
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": _JSON}
        if content_type is not None:
            headers["Content-Type"] = content_type
        method, url, header_params, serialized, post_params = self.api_client.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=_AUTH,
        )
        # No _request_timeout: kube/client.py fills in --request-timeout below call_api.
        response = self.api_client.call_api(method, url, header_params, serialized, post_params)
        data = response.read()
        if not 200 <= response.status <= 299:
            # Raises the status's subclass (NotFoundException...) with the Status body.
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if not data:
            return {}
        try:
            decoded = jsonfast.loads(data)
        except jsonfast.JSONDecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            # Not the API server answering (a proxy's HTML page, say): refuse it like one.
            raise ApiException(status=response.status, reason="the answer is not a JSON object")
        return decoded

    def websocket(self, path: str, *, query: Query, binary: bool = True) -> Any:
        """An unread websocket (kubernetes.stream.ws_client.WSClient) on `path`, the way
        `kubernetes.stream.stream` opens one for a generated `connect_*` method: list values
        repeat their key (`command=a&command=b`), v5/v4 channel protocols are offered, and
        any failure to connect is an ApiException with status 0."""
        from kubernetes.stream.ws_client import websocket_call

        method, url, header_params, body, post_params = self.api_client.param_serialize(
            "GET",
            path,
            query_params=list(query),
            header_params={"Accept": "*/*"},
            auth_settings=_AUTH,
            collection_formats={key: "multi" for key, value in query if isinstance(value, list)},
        )
        return websocket_call(
            self.api_client.configuration,
            method,
            url,
            headers=header_params,
            body=body,
            post_params=post_params,
            _request_timeout=None,
            _preload_content=False,
            binary=binary,
        )
