"""The kube-apiserver static pod as data: what it runs, and what `enable` recorded in it.

`read_manifest` parses the file on the node and keeps the node tree with line numbers
(`ParsedManifest`, which `manifest.py` edits as text); `pod_from_object` reads the mirror
pod the API returns. Both give a `StaticPod`: the pod, the kube-apiserver container, its
flags, and mistakes the kubelet rejects or silently ignores, each with its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubectl_audit.apiserver import yamltext as yt
from kubectl_audit.apiserver.flags import Flag, parse_command
from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.apiserver.mounts import container_args
from kubectl_audit.apiserver.settings import OWNED_FLAGS
from kubectl_audit.errors import AuditError

MANAGED_ANNOTATION = "kubectl-audit.io/managed"
POLICY_ANNOTATION = "kubectl-audit.io/policy-sha256"
OUR_ANNOTATIONS = (POLICY_ANNOTATION, MANAGED_ANNOTATION)
POLICY_VOLUME = "kubectl-audit-policy"
LOG_VOLUME = "kubectl-audit-log"
OUR_VOLUMES = (POLICY_VOLUME, LOG_VOLUME)

_SAVED_LISTS = ("command", "args", "volumeMounts", "volumes")
# VolumeMount fields (core/v1): a typo such as `readOlny` is dropped silently by the kubelet.
_MOUNT_KEYS = frozenset(
    {
        "name",
        "mountPath",
        "readOnly",
        "recursiveReadOnly",
        "subPath",
        "subPathExpr",
        "mountPropagation",
    }
)
_IMAGE_TAG = re.compile(r":(v?\d+\.\d+(?:\.\d+)?[^@]*)(?:@.*)?$")


class ManifestError(AuditError):
    """The manifest cannot be understood or edited safely; the message says where and why."""


# -- what enable recorded --------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """A list item enable removed: where it was (`command`, `args`, `volumeMounts`,
    `volumes` and its index there) and its exact lines."""

    list: str
    index: int
    text: str


@dataclass(frozen=True)
class Record:
    """The `kubectl-audit.io/managed` annotation: what enable added, created and replaced."""

    flags: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    created: tuple[str, ...] = ()  # keys that did not exist: annotations, volumeMounts, volumes
    saved: tuple[Saved, ...] = ()
    take_over: bool = False

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "flags": list(self.flags),
            "mounts": list(self.mounts),
            "volumes": list(self.volumes),
        }
        if self.created:
            data["created"] = list(self.created)
        if self.saved:
            data["saved"] = [{"list": s.list, "index": s.index, "text": s.text} for s in self.saved]
        if self.take_over:
            data["takeOver"] = True
        return json.dumps(data, separators=(",", ":"))

    def _checked(self) -> Record:
        """Refuse records naming things enable never adds: disable would delete them."""
        foreign = [f for f in self.flags if f not in OWNED_FLAGS]
        foreign += [n for n in self.mounts + self.volumes if n not in OUR_VOLUMES]
        foreign += [s.list for s in self.saved if s.list not in _SAVED_LISTS]
        if foreign:
            raise ValueError(f"it names {', '.join(foreign)}, which kubectl-audit never adds")
        return self

    @classmethod
    def from_json(cls, text: str) -> Record:
        try:
            data = json.loads(text)
            return cls(
                flags=tuple(str(f) for f in data.get("flags", ())),
                mounts=tuple(str(m) for m in data.get("mounts", ())),
                volumes=tuple(str(v) for v in data.get("volumes", ())),
                created=tuple(str(c) for c in data.get("created", ())),
                saved=tuple(
                    Saved(str(s["list"]), int(s["index"]), str(s["text"]))
                    for s in data.get("saved", ())
                ),
                take_over=bool(data.get("takeOver", False)),
            )._checked()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ManifestError(
                f"annotation {MANAGED_ANNOTATION} is not what kubectl-audit wrote ({exc})",
                hint="restore the manifest from the backup kubectl-audit made before enabling",
            ) from exc


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaticPod:
    """What a kube-apiserver pod (manifest on disk or mirror pod) says about audit."""

    pod: Mapping[str, Any]
    container_index: int
    flags: tuple[Flag, ...]
    structure_problems: tuple[str, ...] = field(default=())

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.pod.get("spec") or {}

    @property
    def container(self) -> Mapping[str, Any]:
        return self.spec["containers"][self.container_index]

    @property
    def volumes(self) -> list[Mapping[str, Any]]:
        return list(self.spec.get("volumes") or [])

    @property
    def mounts(self) -> list[Mapping[str, Any]]:
        return list(self.container.get("volumeMounts") or [])

    @property
    def annotations(self) -> Mapping[str, str]:
        return (self.pod.get("metadata") or {}).get("annotations") or {}

    @property
    def record(self) -> Record | None:
        raw = self.annotations.get(MANAGED_ANNOTATION)
        return None if raw is None else Record.from_json(str(raw))

    @property
    def policy_sha256(self) -> str | None:
        value = self.annotations.get(POLICY_ANNOTATION)
        return None if value is None else str(value)

    @property
    def kube_version(self) -> KubeVersion | None:
        """From the image tag (`registry.k8s.io/kube-apiserver:v1.32.2`), when it has one."""
        match = _IMAGE_TAG.search(str(self.container.get("image") or ""))
        return parse_version(match.group(1)) if match else None


def read_manifest(text: str, *, source: str = "kube-apiserver.yaml") -> StaticPod:
    """Parse a kube-apiserver pod; a document we cannot read is a ManifestError."""
    return ParsedManifest(text, source).static_pod


def pod_from_object(pod: Mapping[str, Any]) -> StaticPod:
    """The same view of a pod the API returned as a dict (e.g. the apiserver's mirror pod)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    index = _apiserver_container_index(containers)
    if index is None:
        name = (pod.get("metadata") or {}).get("name", "?")
        raise ManifestError(f"pod {name} has no kube-apiserver container")
    return StaticPod(pod, index, parse_command(container_args(containers[index])))


def manifest_is_managed(text: str) -> bool:
    return read_manifest(text).record is not None


class ParsedManifest:
    """One manifest's text, node tree and data, with the nodes enable/disable edit."""

    def __init__(self, text: str, source: str = "kube-apiserver.yaml") -> None:
        self.text = text
        self.source = source
        self.lines = text.splitlines(keepends=True)
        try:
            self.root = yt.compose(text)
            data = yt.construct(self.root)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ManifestError(
                f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
            ) from exc
        if not isinstance(data, dict) or not isinstance(self.root, yaml.MappingNode):
            raise ManifestError(f"{source}: not a Pod manifest (the document is not a mapping)")
        if data.get("kind") not in (None, "Pod"):
            raise ManifestError(f"{source}: kind is {data.get('kind')!r}, not Pod")
        self.data = data
        self.metadata = yt.value(self.root, "metadata")
        self.spec = yt.value(self.root, "spec")
        containers = yt.value(self.spec, "containers")
        if not isinstance(containers, yaml.SequenceNode) or not isinstance(data.get("spec"), dict):
            raise ManifestError(f"{source}: spec.containers is missing")
        index = _apiserver_container_index(data["spec"].get("containers") or [])
        if index is None:
            raise ManifestError(
                f"{source}: no kube-apiserver container (none is named kube-apiserver or "
                "runs kube-apiserver)"
            )
        self.container_index = index
        self.container = containers.value[index]
        self.command = yt.value(self.container, "command")
        self.args = yt.value(self.container, "args")
        container = data["spec"]["containers"][index]
        for key in ("command", "args"):
            if container.get(key) is not None and not isinstance(container[key], list):
                raise ManifestError(f"{source}: the kube-apiserver container's {key} is not a list")
        self.argv = container_args(container)
        self.flags = parse_command(self.argv)
        self.static_pod = StaticPod(data, index, self.flags, tuple(self._structure_problems()))

    # - structure -

    def _structure_problems(self) -> list[str]:
        """Mistakes the kubelet rejects or silently ignores, each with its line, in order."""
        return [f"line {line}: {message}" for line, message in sorted(self._find_mistakes())]

    def _find_mistakes(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        names: dict[str, int] = {}
        for item in items_of(yt.value(self.spec, "volumes")):
            line = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                out.append((line, "a volume must be a mapping"))
                continue
            name = item_name(item)
            if not name:
                out.append((line, "volume has no name (every volume needs `name:`)"))
            elif name in names:
                out.append(
                    (line, f"volume name {name!r} is used twice (first at line {names[name]})")
                )
            else:
                names[name] = line
        for item in items_of(yt.value(self.container, "volumeMounts")):
            line = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                out.append((line, "a volumeMount must be a mapping"))
                continue
            for key_node, _ in item.value:
                key = str(key_node.value)
                if key not in _MOUNT_KEYS:
                    guess = _closest(key, _MOUNT_KEYS)
                    out.append(
                        (
                            key_node.start_mark.line + 1,
                            f"unknown volumeMount field {key!r}"
                            + (f" (did you mean {guess!r}?)" if guess else ""),
                        )
                    )
            name = item_name(item)
            if not name:
                out.append((line, "volumeMount has no name"))
            elif name not in names:
                out.append((line, f"volumeMount {name!r} names no volume in spec.volumes"))
            if yt.value(item, "mountPath") is None:
                out.append((line, "volumeMount has no mountPath"))
        return out

    def require_editable(self) -> None:
        if _has_aliases(self.root):
            raise ManifestError(
                f"{self.source} uses YAML anchors and aliases (&name / *name); we do not "
                "edit those, because a line-level change could apply in two places",
                hint="expand the aliases by hand first",
            )
        problems = self.static_pod.structure_problems
        if problems:
            raise ManifestError(
                f"{self.source} is malformed; fix it before enabling audit logging:\n  "
                + "\n  ".join(problems),
                hint="the kubelet may already be ignoring this manifest; compare it with "
                "the running mirror pod (kubectl -n kube-system get pod kube-apiserver-NODE "
                "-o yaml)",
            )

    # - nodes of the argument lists -

    def argitems_of(self) -> list[tuple[str, int, yaml.Node, yaml.SequenceNode]]:
        """(list name, index in it, item node, list node) for command then args."""
        out = []
        for list_name, seq in (("command", self.command), ("args", self.args)):
            if isinstance(seq, yaml.SequenceNode):
                out.extend((list_name, i, item, seq) for i, item in enumerate(seq.value))
        return out

    def seq(self, list_name: str) -> yaml.Node | None:
        if list_name in ("command", "args", "volumeMounts"):
            return yt.value(self.container, list_name)
        if list_name == "volumes":
            return yt.value(self.spec, list_name)
        raise ManifestError(f"unknown list {list_name!r} in {MANAGED_ANNOTATION}")

    def span(self, seq: yaml.SequenceNode, index: int) -> tuple[int, int]:
        return yt.item_spans(seq, self.lines)[index]

    def flag_item_positions(
        self, flag: Flag
    ) -> list[tuple[str, int, yaml.Node, yaml.SequenceNode]]:
        """The list items a flag occupies: one, or two for `--name value`."""
        items = self.argitems_of()
        positions = [items[flag.index]]
        if flag.value is not None and "=" not in self.argv[flag.index]:
            positions.append(items[flag.index + 1])
        return positions

    def require_block(self, node: yaml.Node | None, what: str) -> None:
        if node is not None and not yt.is_null(node) and not yt.is_block(node):
            raise ManifestError(
                f"{self.source} line {node.start_mark.line + 1}: {what} is written in flow "
                "style ([...] or {...}); we only edit block style without reformatting",
                hint=f"rewrite {what} with one `- item` per line",
            )


def _has_aliases(root: yaml.Node) -> bool:
    """An alias makes the composer reuse one node object in two places."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return False


def items_of(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _apiserver_container_index(containers: list[Any]) -> int | None:
    for i, c in enumerate(containers):
        if isinstance(c, dict) and c.get("name") == "kube-apiserver":
            return i
    for i, c in enumerate(containers):
        command = c.get("command") if isinstance(c, dict) else None
        if command and str(command[0]).rsplit("/", 1)[-1] == "kube-apiserver":
            return i
    return 0 if len(containers) == 1 and isinstance(containers[0], dict) else None


def _closest(word: str, choices: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return found[0] if found else None


def item_name(item: yaml.Node) -> str | None:
    node = yt.value(item, "name")
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None
