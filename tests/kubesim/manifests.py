"""Static pods from a node's manifests folder, read the way the kubelet's file source does.

How the real kubelet reads them (kubernetes/kubernetes, read for this model):

* ``pkg/kubelet/config/file.go``: ``extractFromDir`` globs ``<dir>/[^.]*`` - every name not
  starting with a dot, whatever its extension (there is no extension rule; kubernetes/website
  #45758) - sorts the names, skips directories and reads each regular file as one pod.
  ``listConfig`` then ``replaceStore``s the whole list into an ``UndeltaStore`` keyed by
  ``namespace/name`` (``cache.MetaNamespaceKeyFunc``); ``cache.Replace`` builds a map from
  the list in order, so when two files carry the same pod name **the file sorting last wins**:
  ``kube-apiserver.yaml.bak`` beats ``kube-apiserver.yaml`` (kubernetes/kubernetes#136962,
  #129364 for ``etcd.yaml.backup``). The relist runs every ``fileCheckFrequency`` (20 s).
* ``pkg/kubelet/config/file_linux.go``: inotify events in between (dot-files ignored,
  "Ignored pod manifest, because it starts with dots"); create/write -> ``extractFromFile`` +
  ``store.Add`` (the edited file wins until the next relist: the flapping the field notes
  describe), remove/rename -> delete the pod that file last produced.
* ``pkg/kubelet/config/common.go`` ``applyDefaults``: UID = hex of ``fnv.New128a`` over
  ``hash.DeepHashObject(pod)`` followed by ``host:<node>`` and ``file:<path>`` (older releases:
  md5); ``kubernetes.io/config.hash`` = that UID; name = ``<name>-<lower(nodeName)>``; a
  NoExecute ``Exists`` toleration is added. So the hash changes with the pod's content (not
  with comments or formatting) and with the file's path.
* ``pkg/kubelet/config/config.go`` ``filterInvalidPods``: within one source update, a second
  pod with an already seen full name is dropped ("Pod failed validation due to duplicate pod
  name, ignoring"). For the file source the keyed store above has already reduced the list to
  one pod per name, so the store's last-wins rule is the one that shows.

The simulated kubelet (tests/kubesim/kubelet.py) scales the timing: inotify-like change
detection every tick, the full relist every ``RELIST_TICKS`` ticks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

MANIFESTS = "/etc/kubernetes/manifests"
MAX_CONFIG_LENGTH = 10 * 1 << 20  # common.go maxConfigLength
_FNV128_OFFSET = 0x6C62272E07BB014262B821756295C58D
_FNV128_PRIME = 0x0000000001000000000000000000013B


def fnv128a(data: bytes) -> bytes:
    value = _FNV128_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV128_PRIME) & ((1 << 128) - 1)
    return value.to_bytes(16, "big")


def config_hash(pod: dict, node_name: str, source: str) -> str:
    """The static pod UID / config.hash (common.go applyDefaults). DeepHashObject prints the
    decoded object; a canonical JSON dump of the decoded manifest has the property that
    matters: it changes exactly when the pod's content changes."""
    body = json.dumps(pod, sort_keys=True, separators=(",", ":"), default=str).encode()
    return fnv128a(body + f"host:{node_name}".encode() + f"file:{source}".encode()).hex()


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class StaticPod:
    source: str  # node path of the manifest file
    manifest: dict
    uid: str
    name: str  # full name, <name>-<node>
    namespace: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def containers(self) -> list[dict]:
        return self.manifest.get("spec", {}).get("containers") or []

    @property
    def is_apiserver(self) -> bool:
        return any(c.get("name") == "kube-apiserver" for c in self.containers) or (
            self.manifest.get("metadata", {}).get("labels", {}).get("component") == "kube-apiserver"
        )


def _validate(pod: dict) -> None:
    """The parts of ValidatePodCreate a hand-edited manifest most often breaks."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise ManifestError("invalid pod: spec.containers: Required value")
    volumes = spec.get("volumes") or []
    names = []
    for i, volume in enumerate(volumes):
        name = volume.get("name") if isinstance(volume, dict) else None
        if not name:
            raise ManifestError(f"invalid pod: spec.volumes[{i}].name: Required value")
        if name in names:
            raise ManifestError(f'invalid pod: spec.volumes[{i}].name: Duplicate value: "{name}"')
        names.append(name)
    for c, container in enumerate(spec["containers"]):
        if not container.get("name"):
            raise ManifestError(f"invalid pod: spec.containers[{c}].name: Required value")
        if not container.get("image"):
            raise ManifestError(f"invalid pod: spec.containers[{c}].image: Required value")
        paths = []
        for m, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("name") not in names:
                raise ManifestError(
                    f"invalid pod: spec.containers[{c}].volumeMounts[{m}].name: Not found: "
                    f'"{mount.get("name")}"'
                )
            if mount.get("mountPath") in paths:
                raise ManifestError(
                    f"invalid pod: spec.containers[{c}].volumeMounts[{m}].mountPath: Invalid "
                    f'value: "{mount.get("mountPath")}": must be unique'
                )
            paths.append(mount.get("mountPath"))


def decode_manifest(data: bytes, source: str, node_name: str) -> StaticPod:
    """tryDecodeSinglePod + applyDefaults for one manifest file."""
    try:
        pod = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ManifestError(
            f"{source}: couldn't parse as pod({exc}), please check config file"
        ) from None
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        raise ManifestError(
            f"{source}: couldn't parse as pod(invalid pod), please check config file"
        )
    meta = pod.get("metadata") or {}
    if not meta.get("name"):
        raise ManifestError("invalid pod: name is needed for the pod")
    _validate(pod)
    uid = config_hash(pod, node_name, source)
    return StaticPod(
        source=source,
        manifest=pod,
        uid=uid,
        name=f"{meta['name']}-{node_name.lower()}",
        namespace=meta.get("namespace") or "default",
    )


class ManifestSource:
    """pkg/kubelet/config/file.go + file_linux.go over a node's manifests directory."""

    def __init__(self, root: Path, node_name: str) -> None:
        self.root = root
        self.node_name = node_name
        self.pods: dict[str, StaticPod] = {}  # the UndeltaStore, keyed namespace/name
        self._seen: dict[str, bytes] = {}  # file -> content at the last look (inotify stand-in)
        self._file_key: dict[str, str] = {}  # fileKeyMapping
        self.errors: dict[str, str] = {}

    @property
    def directory(self) -> Path:
        return self.root / MANIFESTS.lstrip("/")

    def _files(self) -> dict[str, tuple[bytes, int]]:
        """Non-hidden regular files (sorted by name) -> (content, mtime in ns)."""
        found: dict[str, tuple[bytes, int]] = {}
        if not self.directory.is_dir():
            return found
        for entry in sorted(self.directory.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            try:
                if not entry.is_file():
                    continue  # "Provided manifest path is a directory, not recursing"
                with entry.open("rb") as handle:
                    data = handle.read(MAX_CONFIG_LENGTH + 1)
                    found[f"{MANIFESTS}/{entry.name}"] = (
                        data,
                        os.fstat(handle.fileno()).st_mtime_ns,
                    )
            except OSError:
                continue  # vanished between listing and reading, as with the real glob
        return found

    def _extract(self, source: str, data: bytes) -> StaticPod | None:
        try:
            pod = decode_manifest(data, source, self.node_name)
        except ManifestError as exc:
            self.errors[source] = str(exc)
            return None
        self.errors.pop(source, None)
        self._file_key[source] = pod.key
        return pod

    def watch_events(self) -> bool:
        """Files created/changed/removed since the last look, applied one by one in the
        order they were written (as inotify delivers them)."""
        files = self._files()
        changed = False
        fresh = [
            (mtime, source, data)
            for source, (data, mtime) in files.items()
            if self._seen.get(source) != data
        ]
        for _, source, data in sorted(fresh):
            pod = self._extract(source, data)
            if pod is not None:
                changed |= self.pods.get(pod.key) != pod
                self.pods[pod.key] = pod
        for source in set(self._seen) - set(files):
            key = self._file_key.pop(source, None)
            if key is not None and key in self.pods:
                del self.pods[key]
                changed = True
        self._seen = {source: data for source, (data, _) in files.items()}
        return changed

    def relist(self) -> bool:
        """listConfig: every file in sorted order replaces the store; last one wins per name."""
        files = self._files()
        replaced: dict[str, StaticPod] = {}
        for source, (data, _) in files.items():
            pod = self._extract(source, data)
            if pod is not None:
                replaced[pod.key] = pod
        self._seen = {source: data for source, (data, _) in files.items()}
        changed = replaced != self.pods
        self.pods = replaced
        return changed
