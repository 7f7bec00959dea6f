"""The simulated kube-apiserver's HTTPS endpoint (aiohttp, on the cluster's event loop).

One catch-all route: every request goes through the same pipeline the real apiserver's
filter chain has (request info -> authentication -> added latency -> authorization ->
handler -> audit record), and errors leave as `Status` objects with upstream's texts.

Availability is modelled at the socket: while no apiserver is up the listening socket is
closed (clients get "connection refused") and every open connection is aborted. With several
control planes each client connection is pinned to one apiserver, like behind a TCP load
balancer; when that apiserver stops, its connections (watches, exec streams) drop.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import logging
import ssl
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.kubesim import admission, discovery, nodelogs, protobuf, tables
from tests.kubesim.access import Caller, authenticate, decide, impersonated
from tests.kubesim.patches import json_patch, merge_patch
from tests.kubesim.protobuf import ProtobufError
from tests.kubesim.requestinfo import RequestInfo, RequestRecord, parse_request
from tests.kubesim.selectors import SelectorError, selector_predicate
from tests.kubesim.statuses import (
    ApiError,
    forbidden,
    invalid,
    json_response,
    method_not_allowed,
    not_found,
)
from tests.kubesim.store import (
    RESOURCES,
    ResourceVersionTooOld,
    Store,
    StoreConflict,
    StoreError,
    StoreNotFound,
    Watcher,
    now_rfc3339,
)

if TYPE_CHECKING:
    from tests.kubesim.cluster import Cluster

log = logging.getLogger(__name__)

_PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_WATCH_TIMEOUT = 1800.0
# How long a closing TLS connection waits for the client's close_notify before the socket is
# closed anyway. Go's tls.Conn.Close does not wait at all; asyncio's default is 30 s, which
# keeps a socket open as long for a client that does not read (the kubernetes client's
# WSClient after an exec), past the end of the loop.
_SSL_SHUTDOWN_TIMEOUT = 0.1
_HEALTH_CHECKS = (
    "ping",
    "log",
    "etcd",
    "etcd-readiness",
    "informer-sync",
    "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers",
    "poststarthook/start-apiextensions-informers",
    "poststarthook/rbac/bootstrap-roles",
    "poststarthook/bootstrap-controller",
    "shutdown",
)


@dataclass
class Exchange:
    """One request in flight: what the handlers learn and the audit record needs."""

    request: web.Request
    info: RequestInfo
    caller: Caller
    node: str | None
    audit_id: str
    received: datetime
    # whom the request acts as: the caller, or the user it impersonates
    acting: Caller | None = None
    decision: str = "allow"
    reason: str = ""
    request_object: dict | None = None
    response_object: dict | None = None
    extra: dict = field(default_factory=dict)


class ApiServer:
    def __init__(self, cluster: Cluster, ssl_context: ssl.SSLContext, host: str = "127.0.0.1"):
        self.cluster = cluster
        self.host = host
        self.port = 0
        self._ssl = ssl_context
        self._app = web.Application(client_max_size=64 * 1024 * 1024)
        self._app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None)
        self._server: asyncio.AbstractServer | None = None
        # client connection -> the control-plane node whose apiserver serves it
        # (aiohttp's RequestHandler is not weak-referenceable: pruned against live connections)
        self._pinned: dict[Any, str] = {}
        self._round_robin = itertools.count()
        # long-running requests (watch, exec): task -> serving node; watches' store handles
        self._streams: dict[asyncio.Task, str | None] = {}
        self._closing_watchers: dict[asyncio.Task, Watcher] = {}
        # every connection that sent a request, to cut what is left of them on close()
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.get_running_loop().create_server(
            self._runner.server,
            self.host,
            self.port,
            ssl=self._ssl,
            ssl_shutdown_timeout=_SSL_SHUTDOWN_TIMEOUT,
            reuse_address=True,
            backlog=128,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def open_streams(self) -> list[str | None]:
        """The serving apiserver's node of each watch and exec session in flight."""
        return list(self._streams.values())

    @property
    def listening(self) -> bool:
        return self._server is not None

    def stop_listening(self) -> None:
        """Connections refused from now on; every open connection and stream is cut."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.drop_connections(None)

    async def start_listening(self) -> None:
        await self._listen()

    async def close(self) -> None:
        self.stop_listening()
        await self._runner.cleanup()
        # A socket still open when the loop closes is finalised later by the garbage
        # collector ("unclosed transport" ResourceWarning, at a random point of the test
        # run). aiohttp ends TLS connections gracefully and forgets them meanwhile, so
        # drop_connections cannot reach them: cut what is left of every connection.
        for transport in list(self._transports):
            transport.abort()
        await asyncio.sleep(0)  # the aborts close their sockets from scheduled callbacks
        if self._transports:
            # A TLS transport closed twice lets go of its connection (asyncio's sslproto),
            # so abort() cannot reach that socket: it closes when its shutdown times out.
            await asyncio.sleep(_SSL_SHUTDOWN_TIMEOUT)
            await asyncio.sleep(0)

    def drop_connections(self, node: str | None) -> None:
        """Aborts the connections (and cancels the streams) served by `node`, or all."""
        for task, served_by in list(self._streams.items()):
            if node is None or served_by == node:
                watcher = self._closing_watchers.pop(task, None)
                if watcher is not None:
                    self.cluster.store.unwatch(watcher)
                task.cancel()
        runner_server = self._runner.server
        if runner_server is None:
            return
        for handler in runner_server.connections:
            if node is None or self._pinned.get(handler) == node:
                transport = handler.transport
                if transport is not None:
                    transport.abort()

    # -- serving node -------------------------------------------------------------------

    def _serving_node(self, request: web.Request) -> str | None:
        """The apiserver this connection reaches (None when the cluster has no nodes yet)."""
        up = self.cluster.apiservers_up()
        handler = request.protocol
        pinned = self._pinned.get(handler)
        if pinned in up:
            return pinned
        if not up:
            return None
        chosen = up[next(self._round_robin) % len(up)]
        live = self._runner.server.connections if self._runner.server else []
        if len(self._pinned) > 2 * len(live) + 8:
            self._pinned = {h: n for h, n in self._pinned.items() if h in live}
        self._pinned[handler] = chosen
        return chosen

    # -- pipeline -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        received = datetime.now(timezone.utc)
        info = parse_request(request.method, request.path, request.query)
        exchange = Exchange(
            request=request,
            info=info,
            caller=Caller("", ()),
            node=self._serving_node(request),
            audit_id=str(uuid.uuid4()),
            received=received,
        )
        response: web.StreamResponse | None = None
        if request.transport is not None:
            self._transports.add(request.transport)
        task = asyncio.current_task()
        try:
            latency = self.cluster.knobs.latency
            if latency > 0:
                await asyncio.sleep(latency)
            exchange.caller = authenticate(request, self.cluster.user_for_token)
            try:
                exchange.acting = impersonated(request, exchange.caller, self.cluster.is_forbidden)
            except ApiError:
                exchange.decision = "forbid"
                raise
            self._authorize(exchange, exchange.info.verb)
            response = await self._route(exchange)
        except ApiError as err:
            exchange.response_object = err.status()
            response = json_response(err.status(), err.code, exchange.audit_id)
        except web.HTTPException as redirect:
            response = redirect
        except Exception as exc:
            # A simulator bug: answer like the apiserver does for a panic in a handler, and
            # keep the traceback in the log where pytest shows it.
            log.exception("kubesim: %s %s failed", request.method, request.path_qs)
            err = ApiError(500, "InternalError", f"Internal error occurred: {exc!r}")
            exchange.response_object = err.status()
            response = json_response(err.status(), err.code, exchange.audit_id)
        except asyncio.CancelledError:
            # The serving apiserver went away mid-request: the connection is already
            # aborted; the request still counts as served until then.
            self._record(exchange, exchange.extra.get("started", 500))
            raise
        finally:
            if task is not None:
                self._streams.pop(task, None)
                self._closing_watchers.pop(task, None)
        self._record(exchange, response.status)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    def _record(self, exchange: Exchange, code: int) -> None:
        request, info = exchange.request, exchange.info
        record = RequestRecord(
            audit_id=exchange.audit_id,
            method=request.method,
            request_uri=request.raw_path,
            path=request.path,
            verb=info.verb,
            user=exchange.caller.user,
            groups=exchange.caller.groups,
            impersonated_user=exchange.acting.user
            if exchange.acting and exchange.acting is not exchange.caller
            else "",
            impersonated_groups=exchange.acting.groups
            if exchange.acting and exchange.acting is not exchange.caller
            else (),
            user_agent=request.headers.get("User-Agent", ""),
            source_ip=request.remote or "",
            resource_request=info.resource_request,
            api_group=info.api_group,
            api_version=info.api_version,
            resource=info.resource,
            subresource=info.subresource,
            namespace=info.namespace,
            name=info.name,
            code=code,
            received=exchange.received,
            completed=datetime.now(timezone.utc),
            decision=exchange.decision,
            reason=exchange.reason,
            request_object=exchange.request_object,
            response_object=exchange.response_object,
        )
        self.cluster.record_request(record, node=exchange.node)

    def decide(self, caller: Caller, verb: str, target: str) -> tuple[bool, str]:
        return decide(caller, verb, target, self.cluster.is_forbidden)

    def _authorize(self, exchange: Exchange, verb: str) -> None:
        info = exchange.info
        target = (
            info.resource + (f"/{info.subresource}" if info.subresource else "")
            if info.resource_request
            else info.path
        )
        acting = exchange.acting or exchange.caller
        allowed, reason = self.decide(acting, verb, target)
        exchange.decision, exchange.reason = ("allow" if allowed else "forbid"), reason
        if not allowed:
            raise forbidden(info, acting.user, verb)

    async def _route(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        if not info.resource_request:
            return self._non_resource(exchange)
        if info.api_prefix == "apis" and info.api_group in discovery.REVIEW_GROUPS:
            return await self._review(exchange)
        if info.api_prefix != "api" or info.api_version != "v1" or info.resource not in RESOURCES:
            raise not_found()
        rtype = RESOURCES[info.resource]
        if info.subresource and info.subresource not in rtype.subresources:
            raise not_found()
        named_in_path = len(info.parts) > 1  # (a fieldSelector name is not one)
        if rtype.namespaced and not info.namespace and named_in_path:
            raise not_found()
        if not rtype.namespaced and info.namespace and info.resource != "namespaces":
            raise not_found()  # e.g. /api/v1/namespaces/x/nodes
        if info.subresource == "exec":
            return await self._exec(exchange)
        if info.subresource == "proxy":
            return await self._node_proxy(exchange)
        if info.subresource == "log":
            return await self._pod_log(exchange)
        handlers: dict[str, Callable[[Exchange], Awaitable[web.StreamResponse]]] = {
            "get": self._get,
            "list": self._list,
            "watch": self._watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }
        handler = handlers.get(info.verb)
        if handler is None:
            raise method_not_allowed()
        return await handler(exchange)

    # -- non-resource endpoints ---------------------------------------------------------

    def _non_resource(self, exchange: Exchange) -> web.Response:
        path = exchange.info.path.rstrip("/") or "/"
        request = exchange.request
        if path == "/version":
            return self._reply(exchange, self.cluster.version_info())
        for check in ("/healthz", "/livez", "/readyz"):
            if path == check or path.startswith(check + "/"):
                if "verbose" in request.query:
                    lines = [f"[+]{name} ok" for name in _HEALTH_CHECKS]
                    lines.append(f"{check.strip('/')} check passed")
                    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
                return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            return self._reply(exchange, discovery.api_versions(f"{self.host}:{self.port}"))
        if path == "/api/v1":
            return self._reply(exchange, discovery.core_resources())
        if path == "/apis":
            return self._reply(exchange, discovery.group_list())
        if path == "/openapi/v3":
            return self._reply(exchange, discovery.openapi_v3_index())
        if path == "/openapi/v3/api/v1":
            return self._reply(exchange, discovery.openapi_v3_core())
        document = discovery.group_document(path) if path.startswith("/apis/") else None
        if document is not None:
            return self._reply(exchange, document)
        raise not_found()

    # -- helpers for resource handlers --------------------------------------------------

    def _reply(self, exchange: Exchange, body: dict, status: int = 200) -> web.Response:
        exchange.response_object = body
        return json_response(body, status, exchange.audit_id)

    async def _body(self, exchange: Exchange) -> Any:
        request = exchange.request
        raw = await request.read()
        if request.content_type == protobuf.CONTENT_TYPE:
            try:
                body = protobuf.decode(raw)
            except ProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types"
                    f" include: application/json, application/yaml ({exc})",
                ) from exc
            exchange.request_object = body
            return body
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            raise ApiError(
                400, "BadRequest", f"the body of the request could not be decoded: {exc}"
            ) from exc
        exchange.request_object = body if isinstance(body, dict) else None
        return body

    def _predicate(self, exchange: Exchange) -> Callable[[dict], bool]:
        query = exchange.request.query
        try:
            return selector_predicate(
                exchange.info.resource,
                query.get("labelSelector", ""),
                query.get("fieldSelector", ""),
            )
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

    def _existing(self, exchange: Exchange) -> dict:
        info = exchange.info
        obj = self.cluster.store.get(info.resource, info.namespace or None, info.name)
        if obj is None:
            raise not_found(info, info.name)
        return obj

    def _presented(self, exchange: Exchange, obj: dict) -> web.Response:
        """A single object, or a one-row Table when `kubectl get` asks for one."""
        request = exchange.request
        if tables.wants_table(request.headers.get("Accept", "")):
            body = tables.to_table(
                exchange.info.resource,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                request.query.get("includeObject", "Metadata"),
            )
            return self._reply(exchange, body)
        return self._reply(exchange, obj)

    def _dry_run(self, exchange: Exchange) -> bool:
        values = exchange.request.query.getall("dryRun", [])
        if any(v != "All" for v in values):
            raise ApiError(400, "BadRequest", f"Invalid dry run value: {values}")
        return bool(values)

    def _namespace_must_exist(self, namespace: str) -> dict:
        ns = self.cluster.store.get("namespaces", None, namespace)
        if ns is None:
            raise not_found(name=namespace, resource="namespaces")
        return ns

    # -- read ---------------------------------------------------------------------------

    async def _get(self, exchange: Exchange) -> web.StreamResponse:
        if exchange.info.subresource not in ("", "status"):
            raise not_found()
        return self._presented(exchange, self._existing(exchange))

    async def _list(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        predicate = self._predicate(exchange)
        store = self.cluster.store
        items = [o for o in store.list(info.resource, info.namespace or None) if predicate(o)]
        version = store.resource_version
        try:
            items, list_meta = self._page(items, version, request.query)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid limit: {exc}") from exc
        if tables.wants_table(request.headers.get("Accept", "")):
            body = tables.to_table(
                info.resource, items, version, request.query.get("includeObject", "Metadata")
            )
            body["metadata"] = list_meta
            return self._reply(exchange, body)
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        body = {
            "kind": RESOURCES[info.resource].kind + "List",
            "apiVersion": "v1",
            "metadata": list_meta,
            "items": items,
        }
        return self._reply(exchange, body)

    async def _review(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        version, resources = discovery.REVIEW_GROUPS[info.api_group]
        if info.api_version != version or info.resource not in dict(resources):
            raise not_found()
        if info.verb != "create" or info.name:
            raise method_not_allowed()
        body = await self._body(exchange)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        caller = exchange.acting or exchange.caller
        if info.resource == "selfsubjectreviews":
            return self._reply(
                exchange, discovery.self_subject_review(caller.user, caller.groups), 201
            )
        review = discovery.self_subject_access_review(
            body, lambda verb, target: self.decide(caller, verb, target)
        )
        return self._reply(exchange, review, 201)

    @staticmethod
    def _page(items: list[dict], version: str, query: Any) -> tuple[list[dict], dict]:
        """`limit`/`continue` paging: the token names the last key served."""
        meta: dict[str, Any] = {"resourceVersion": version}
        token = query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = tuple(state["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, "BadRequest", f"continue key is not valid: {exc}") from exc
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        limit = int(query.get("limit") or 0)
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]
            state = {
                "v": "meta.k8s.io/v1",
                "rv": int(version),
                "start": [last.get("namespace", ""), last["name"]],
            }
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items, meta

    async def _watch(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        predicate = self._predicate(exchange)
        store = self.cluster.store
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = request.query.get("includeObject", "Metadata")
        try:
            timeout = float(request.query.get("timeoutSeconds", _WATCH_TIMEOUT))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid timeoutSeconds: {exc}") from exc
        since = request.query.get("resourceVersion")
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Audit-Id": exchange.audit_id},
        )
        response.enable_chunked_encoding()
        try:
            watcher = store.watch(info.resource, info.namespace or None, since)
        except ResourceVersionTooOld as exc:
            await response.prepare(request)
            gone = ApiError(410, "Expired", str(exc)).status()
            await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            await response.write_eof()
            return response
        except StoreError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        task = asyncio.current_task()
        if task is not None:
            self._streams[task] = exchange.node
            self._closing_watchers[task] = watcher
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("1", "true")
        bookmark_every = max(self.cluster.knobs.watch_bookmark_interval, 0.01)
        try:
            await response.prepare(request)
            exchange.extra["started"] = 200
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, bookmark_every) if bookmarks else remaining
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except asyncio.TimeoutError:
                    if bookmarks and wait < remaining:
                        await response.write(self._bookmark(info.resource, store))
                        continue
                    break
                if item is None:
                    break
                event_type, obj, old = item
                sent_type = self._event_for_selector(event_type, obj, old, predicate)
                if sent_type is None:
                    continue
                payload = (
                    tables.to_table(
                        info.resource, [obj], obj["metadata"]["resourceVersion"], include
                    )
                    if as_table
                    else obj
                )
                line = json.dumps({"type": sent_type, "object": payload}, separators=(",", ":"))
                await response.write(line.encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, RuntimeError) as exc:
            # The client went away (or its connection was cut by an outage): nothing to send.
            log.debug("watch stream ended: %s", exc)
        finally:
            store.unwatch(watcher)
        return response

    @staticmethod
    def _bookmark(resource: str, store: Store) -> bytes:
        """A BOOKMARK: only the kind and the resourceVersion the watch has reached."""
        obj = {
            "kind": RESOURCES[resource].kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": store.resource_version},
        }
        return (
            json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n"
        )

    @staticmethod
    def _event_for_selector(
        event_type: str, obj: dict, old: dict | None, predicate: Callable[[dict], bool]
    ) -> str | None:
        """Selector transitions: an object entering the selection is ADDED, one leaving it
        DELETED, as the watch cache reports them."""
        now = predicate(obj)
        before = old is not None and predicate(old)
        if event_type == "ADDED":
            return "ADDED" if now else None
        if event_type == "DELETED":
            return "DELETED" if before else None
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        return "DELETED" if before else None

    # -- write --------------------------------------------------------------------------

    async def _create(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        if info.subresource or info.name:
            raise method_not_allowed()
        body = await self._body(exchange)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        rtype = RESOURCES[info.resource]
        meta = body.setdefault("metadata", {})
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != info.namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on"
                    " the request",
                )
            meta["namespace"] = info.namespace
            namespace = self._namespace_must_exist(info.namespace)
        else:
            meta.pop("namespace", None)
            namespace = None
        for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            meta.pop(server_field, None)
        store = self.cluster.store
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = store.generate_name(info.resource, info.namespace, meta["generateName"])
        errors = {
            "pods": admission.validate_pod,
            "configmaps": admission.validate_configmap,
        }.get(info.resource, lambda o: admission.validate_name(o.get("metadata", {})))(body)
        if errors:
            raise invalid(rtype.kind, meta.get("name", ""), errors)
        if info.resource == "namespaces":
            admission.default_namespace(body)
        if info.resource == "pods":
            admission.default_pod(body)
            violation = admission.pod_security_violation(namespace, body)
            if violation:
                # admission.NewForbidden names the pod being created (its name is known).
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{meta["name"]}" is forbidden: {violation}',
                    {"name": meta["name"], "kind": "pods"},
                )
        warning = (
            admission.pod_security_warning(namespace, body) if info.resource == "pods" else None
        )
        if self._dry_run(exchange):
            return self._warned(self._reply(exchange, body, 201), warning)
        try:
            created = store.create(info.resource, body)
        except StoreConflict as exc:
            raise ApiError(
                409,
                "AlreadyExists",
                str(exc),
                {"name": meta["name"], "kind": info.resource},
            ) from exc
        return self._warned(self._reply(exchange, created, 201), warning)

    @staticmethod
    def _warned(response: web.Response, warning: str | None) -> web.Response:
        """Adds an RFC 7234 `Warning: 299` header, which kubectl prints as `Warning: ...`."""
        if warning:
            response.headers["Warning"] = '299 - "' + warning.replace('"', '\\"') + '"'
        return response

    def _store_update(self, exchange: Exchange, obj: dict, expect: str | None) -> dict:
        info = exchange.info
        try:
            return self.cluster.store.update(info.resource, obj, expect_version=expect)
        except StoreConflict as exc:
            raise ApiError(
                409, "Conflict", str(exc), {"name": info.name, "kind": info.resource}
            ) from exc
        except StoreNotFound as exc:
            raise not_found(info, info.name) from exc

    def _apply_subresource_rules(self, info: RequestInfo, existing: dict, new: dict) -> dict:
        """`…/status` writes change only status; main-resource writes keep the status of
        pods, nodes and namespaces (their strategies reset it)."""
        if info.subresource == "status":
            result = copy.deepcopy(existing)
            result["status"] = new.get("status", {})
            result["metadata"]["resourceVersion"] = new.get("metadata", {}).get(
                "resourceVersion", existing["metadata"]["resourceVersion"]
            )
            return result
        if info.resource in ("pods", "nodes", "namespaces") and "status" in existing:
            new = copy.deepcopy(new)
            new["status"] = existing["status"]
        return new

    async def _update(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        body = await self._body(exchange)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        existing = self._existing(exchange)
        meta = body.setdefault("metadata", {})
        if meta.get("name", info.name) != info.name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta['name']}) does not match the name on the URL"
                f" ({info.name})",
            )
        meta["name"] = info.name
        if RESOURCES[info.resource].namespaced:
            meta["namespace"] = info.namespace
        new = self._apply_subresource_rules(info, existing, body)
        if info.resource == "configmaps":
            errors = admission.validate_configmap(new)
            if errors:
                raise invalid("ConfigMap", info.name, errors)
        if self._dry_run(exchange):
            return self._reply(exchange, new)
        updated = self._store_update(exchange, new, meta.get("resourceVersion"))
        return self._reply(exchange, updated)

    async def _patch(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        body = await self._body(exchange)
        existing = self._existing(exchange)
        content_type = request.content_type
        try:
            if content_type == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ValueError("a JSON patch must be a list of operations")
                patched = json_patch(existing, body)
            elif content_type in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                patched = merge_patch(existing, body)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types"
                    " include: application/json-patch+json, application/merge-patch+json,"
                    " application/strategic-merge-patch+json",
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {exc}",
            ) from exc
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch must produce an object")
        patched.setdefault("metadata", {})
        for kept in ("name", "namespace", "uid", "creationTimestamp"):
            if kept in existing["metadata"]:
                patched["metadata"][kept] = existing["metadata"][kept]
        new = self._apply_subresource_rules(info, existing, patched)
        if info.resource == "configmaps":
            errors = admission.validate_configmap(new)
            if errors:
                raise invalid("ConfigMap", info.name, errors)
        expect = None
        if isinstance(body, dict):
            expect = (body.get("metadata") or {}).get("resourceVersion")
        if self._dry_run(exchange):
            return self._reply(exchange, new)
        return self._reply(exchange, self._store_update(exchange, new, expect))

    async def _delete(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        if info.subresource:
            raise method_not_allowed()
        await self._body(exchange)  # DeleteOptions: recorded, not needed (see report)
        existing = self._existing(exchange)
        if info.resource == "namespaces" and info.name in _PROTECTED_NAMESPACES:
            raise forbidden(info, "", why="this namespace may not be deleted")
        if self._dry_run(exchange):
            return self._reply(exchange, existing)
        store = self.cluster.store
        if info.resource == "namespaces":
            # The namespace controller's job, done at once: contents first, then the object.
            existing["metadata"]["deletionTimestamp"] = now_rfc3339()
            existing["status"] = {"phase": "Terminating"}
            for resource, rtype in RESOURCES.items():
                if rtype.namespaced:
                    for obj in store.list(resource, info.name):
                        store.delete(resource, info.name, obj["metadata"]["name"])
            store.delete("namespaces", None, info.name)
            return self._reply(exchange, existing)
        deleted = store.delete(info.resource, info.namespace or None, info.name)
        if deleted is None:
            raise not_found(info, info.name)
        if info.resource == "pods":  # the pod registry returns the deleted object
            return self._reply(exchange, deleted)
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": info.name,
                "kind": info.resource,
                "uid": deleted["metadata"]["uid"],
            },
        }
        return self._reply(exchange, status)

    async def _delete_collection(self, exchange: Exchange) -> web.StreamResponse:
        info = exchange.info
        if info.resource == "namespaces":
            raise method_not_allowed()
        await self._body(exchange)
        predicate = self._predicate(exchange)
        store = self.cluster.store
        matching = [o for o in store.list(info.resource, info.namespace or None) if predicate(o)]
        deleted = []
        if not self._dry_run(exchange):
            for obj in matching:
                meta = obj["metadata"]
                gone = store.delete(info.resource, meta.get("namespace"), meta["name"])
                if gone is not None:
                    deleted.append(gone)
        else:
            deleted = matching
        body = {
            "kind": RESOURCES[info.resource].kind + "List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": store.resource_version},
            "items": deleted,
        }
        return self._reply(exchange, body)

    # -- subresources served by nodes ---------------------------------------------------

    def _node(self, name: str):
        return self.cluster.nodes.get(name)

    async def _node_proxy(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        self._existing(exchange)
        node = self._node(info.name)
        if node is None:
            raise not_found(info, info.name)
        if not self.cluster.kubelet_reachable(info.name):
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: dial tcp {getattr(node, 'ip', '127.0.0.1')}:10250:"
                " connect: connection refused",
            )
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed()
        rest = list(info.parts[3:])
        url_path = request.path
        if rest[:1] == ["logs"]:
            if len(rest) == 1 and not url_path.endswith("/"):
                raise web.HTTPMovedPermanently(location="logs/")
            return nodelogs.serve_node_log(request, node.root, "/".join(rest[1:]), url_path)
        if rest in (["healthz"], ["livez"]):
            return web.Response(text="ok", content_type="text/plain")
        return web.Response(status=404, text="404 page not found\n", content_type="text/plain")

    async def _pod_log(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        pod = self._existing(exchange)
        container = _chosen_container(pod, request.query.get("container"), info.name)
        node = self._node(pod.get("spec", {}).get("nodeName", ""))
        previous = request.query.get("previous", "").lower() in ("1", "true")
        lines = (
            nodelogs.container_log(
                node.root, info.namespace, info.name, container, previous=previous
            )
            if node is not None
            else None
        )
        if lines is None:
            if previous:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{info.name}" not found',
                )
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{info.name}" is waiting to start:'
                " ContainerCreating",
            )
        tail = request.query.get("tailLines")
        if tail is not None:
            try:
                count = int(tail)
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"invalid tailLines: {tail!r}") from exc
            lines = lines[-count:] if count > 0 else []
        stamps = request.query.get("timestamps", "").lower() in ("1", "true")
        text = "".join(f"{stamp} {line}\n" if stamps else f"{line}\n" for stamp, line in lines)
        return web.Response(text=text, content_type="text/plain")

    async def _exec(self, exchange: Exchange) -> web.StreamResponse:
        info, request = exchange.info, exchange.request
        if request.method not in ("GET", "POST"):
            raise method_not_allowed()
        # Since 1.31 a websocket (GET) exec also needs `create pods/exec`
        # (AuthorizePodWebsocketUpgradeCreatePermission).
        if info.verb != "create":
            self._authorize(exchange, "create")
        pod = self._existing(exchange)
        query = request.query
        argv = query.getall("command", [])
        container = _chosen_container(pod, query.get("container"), info.name)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise ApiError(
                400,
                "BadRequest",
                f"cannot exec into a container in a completed pod; current phase is {phase}",
            )
        if not argv:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
        node = self._node(pod.get("spec", {}).get("nodeName", ""))
        sandbox = node.sandbox_for(info.namespace, info.name) if node is not None else None
        if sandbox is None or not sandbox.running:
            raise ApiError(
                400,
                "BadRequest",
                f'unable to upgrade connection: container not found ("{container}")',
            )
        try:
            from tests.kubesim import execstream
        except ImportError as exc:
            raise ApiError(
                500, "InternalError", f"exec is not available in this simulator build: {exc}"
            ) from exc

        def flag(name: str, default: bool) -> bool:
            value = query.get(name)
            return default if value is None else value.lower() in ("1", "true")

        task = asyncio.current_task()
        if task is not None:
            self._streams[task] = exchange.node
        exchange.extra["started"] = 101  # a session cut by an outage had been upgraded
        return await execstream.handle_exec(
            request,
            sandbox,
            argv,
            stdin=flag("stdin", False),
            stdout=flag("stdout", True),
            stderr=flag("stderr", True),
            tty=flag("tty", False),
        )


def _chosen_container(pod: dict, asked: str | None, pod_name: str) -> str:
    """The `container` query parameter, defaulted as the API server does for one-container
    pods, with its 400 texts otherwise."""
    containers = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
    container = asked or (containers[0] if len(containers) == 1 else "")
    if not container:
        raise ApiError(
            400,
            "BadRequest",
            f"a container name must be specified for pod {pod_name}, choose one of:"
            f" [{' '.join(containers)}]",
        )
    if container not in containers:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
    return container
