"""The simulator's single source of truth: API objects, resourceVersions and watch fan-out.

Everything here runs on the cluster's event loop thread; nothing is locked. Objects are the
JSON-like dicts the API returns. Callers always get copies, so a caller mutating what it got
cannot change the stored state behind the store's back (the real apiserver has the same
property: you only change objects by writing them).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict], None]

# How many past changes a watch can resume from (the real apiserver's watch cache keeps a
# window too; older resourceVersions get "410 Gone: too old resource version").
HISTORY_LENGTH = 4096

# generateName suffix alphabet of apimachinery's utilrand.String (no vowels, no confusables).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class ResourceType:
    """What discovery says about one resource, and where its objects live."""

    name: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    subresources: tuple[str, ...] = ()


RESOURCES: dict[str, ResourceType] = {
    "namespaces": ResourceType(
        "namespaces",
        "Namespace",
        "namespace",
        namespaced=False,
        short_names=("ns",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        subresources=("status",),
    ),
    "nodes": ResourceType(
        "nodes",
        "Node",
        "node",
        namespaced=False,
        short_names=("no",),
        subresources=("status", "proxy"),
    ),
    "pods": ResourceType(
        "pods",
        "Pod",
        "pod",
        namespaced=True,
        short_names=("po",),
        subresources=("status", "exec", "log"),
    ),
    "configmaps": ResourceType(
        "configmaps", "ConfigMap", "configmap", namespaced=True, short_names=("cm",)
    ),
    # Nothing in the simulator has to emit events; kubectl describe/get events read them.
    "events": ResourceType("events", "Event", "event", namespaced=True, short_names=("ev",)),
}


class StoreError(Exception):
    """Base of the store's refusals; the HTTP layer turns them into Status objects."""


class StoreConflict(StoreError):
    """Create of an existing object, or an update against a stale resourceVersion."""


class StoreNotFound(StoreError):
    """The object (or its namespace) does not exist."""


class ResourceVersionTooOld(StoreError):
    """A watch asked to resume from before the retained history."""


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class Watcher:
    """One open watch: matching changes are queued as (type, object, previous object)."""

    resource: str
    namespace: str | None
    queue: asyncio.Queue[tuple[str, dict, dict | None] | None] = field(
        default_factory=asyncio.Queue
    )

    def offer(self, event_type: str, resource: str, obj: dict, old: dict | None) -> None:
        if resource != self.resource:
            return
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return
        self.queue.put_nowait((event_type, obj, old))

    def close(self) -> None:
        """Ends the stream: the reader sees None and finishes its response."""
        self.queue.put_nowait(None)


class Store:
    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], dict]] = {r: {} for r in RESOURCES}
        self._revision = itertools.count(1)
        self._current = 0
        self._history: deque[tuple[int, str, str, dict, dict | None]] = deque(maxlen=HISTORY_LENGTH)
        self._listeners: list[Listener] = []
        self._watchers: set[Watcher] = set()

    # -- reading -------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._current)

    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        obj = self._table(resource).get(self._key(resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        table = self._table(resource)
        found = [
            obj
            for (ns, _), obj in sorted(table.items())
            if not namespace or not RESOURCES[resource].namespaced or ns == namespace
        ]
        return copy.deepcopy(found)

    # -- writing -------------------------------------------------------------------------

    def create(self, resource: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace") if RESOURCES[resource].namespaced else None
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self.generate_name(resource, namespace, meta["generateName"])
        key = self._key(resource, namespace, meta["name"])
        table = self._table(resource)
        if key in table:
            raise StoreConflict(f'{resource} "{meta["name"]}" already exists')
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["resourceVersion"] = self._bump()
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", RESOURCES[resource].kind)
        table[key] = obj
        self._changed("ADDED", resource, obj, None)
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: dict, *, expect_version: str | None = None) -> dict:
        """Replaces the stored object; `expect_version` gives optimistic concurrency."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = self._key(resource, meta.get("namespace"), meta.get("name", ""))
        table = self._table(resource)
        old = table.get(key)
        if old is None:
            raise StoreNotFound(f'{resource} "{meta.get("name", "")}" not found')
        if expect_version and expect_version != old["metadata"]["resourceVersion"]:
            raise StoreConflict(
                f'Operation cannot be fulfilled on {resource} "{meta["name"]}": the object has'
                " been modified; please apply your changes to the latest version and try again"
            )
        for kept in ("uid", "creationTimestamp"):
            meta[kept] = old["metadata"][kept]
        if RESOURCES[resource].namespaced:
            meta["namespace"] = old["metadata"]["namespace"]
        meta["resourceVersion"] = self._bump()
        obj.setdefault("apiVersion", old.get("apiVersion", "v1"))
        obj.setdefault("kind", old.get("kind", RESOURCES[resource].kind))
        table[key] = obj
        self._changed("MODIFIED", resource, obj, old)
        return copy.deepcopy(obj)

    def delete(self, resource: str, namespace: str | None, name: str) -> dict | None:
        stored = self._table(resource).pop(self._key(resource, namespace, name), None)
        if stored is None:
            return None
        obj = copy.deepcopy(stored)
        # The DELETED event carries a fresh resourceVersion, as the real watch cache does.
        obj["metadata"]["resourceVersion"] = self._bump()
        self._changed("DELETED", resource, obj, obj)
        return copy.deepcopy(obj)

    # -- listeners and watches -----------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def watch(self, resource: str, namespace: str | None, since: str | None) -> Watcher:
        """Opens a watch. With `since` (a resourceVersion other than "" / "0") the changes
        after it are replayed first; otherwise every current object arrives as ADDED."""
        watcher = Watcher(resource, namespace)
        if since and since != "0":
            try:
                start = int(since)
            except ValueError as exc:
                raise StoreError(f"invalid resourceVersion {since!r}") from exc
            if self._history and start < self._history[0][0] - 1:
                oldest = self._history[0][0] - 1
                raise ResourceVersionTooOld(f"too old resource version: {start} ({oldest})")
            for revision, event_type, res, obj, old in self._history:
                if revision > start:
                    watcher.offer(event_type, res, copy.deepcopy(obj), old)
        else:
            for obj in self.list(resource, namespace):
                watcher.offer("ADDED", resource, obj, None)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.close()
        self._watchers.clear()

    # -- internals -----------------------------------------------------------------------

    def _table(self, resource: str) -> dict[tuple[str, str], dict]:
        if resource not in self._objects:
            raise KeyError(f"unknown resource {resource!r}")
        return self._objects[resource]

    @staticmethod
    def _key(resource: str, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if RESOURCES[resource].namespaced else "", name)

    def _bump(self) -> str:
        self._current = next(self._revision)
        return str(self._current)

    def generate_name(self, resource: str, namespace: str | None, prefix: str) -> str:
        """A free name `<prefix><5 random chars>`, as metadata.generateName gives."""
        table = self._table(resource)
        while True:
            suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            name = prefix[: 63 - 5] + suffix
            if self._key(resource, namespace, name) not in table:
                return name

    def _changed(self, event_type: str, resource: str, obj: dict, old: dict | None) -> None:
        self._history.append(
            (int(obj["metadata"]["resourceVersion"]), event_type, resource, obj, old)
        )
        for watcher in list(self._watchers):
            watcher.offer(event_type, resource, copy.deepcopy(obj), old)
        for listener in list(self._listeners):
            try:
                listener(event_type, resource, copy.deepcopy(obj))
            except Exception:
                # One broken component must not turn every API write into a 500; the log
                # (pytest shows it) names the listener that failed.
                log.exception("store listener %r failed on %s %s", listener, event_type, resource)
