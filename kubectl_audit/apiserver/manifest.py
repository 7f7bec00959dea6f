"""The kube-apiserver static-pod manifest: read it, and turn audit logging on and off in it.

Edits are text-preserving: `render_enabled` only inserts lines (and, when it takes over a
hand-made audit setup, deletes exactly those lines), so a unified diff shows just what we
changed; `render_disabled` removes what enable added and puts back what it replaced, so
an unchanged manifest comes back byte for byte.

What enable adds, all recognisable by name:
- the flags of `AuditSettings.flags()`, after the last `--flag` line, in the list's style;
- hostPath volume + read-only mount `kubectl-audit-policy` (the policy file, type File) and
  `kubectl-audit-log` (the log's directory, DirectoryOrCreate: rotation renames files in it),
  unless an existing identity hostPath mount already serves the path properly;
- annotations `kubectl-audit.io/policy-sha256` (a new policy changes the manifest, which is
  what makes the kubelet restart a static pod, and shows which policy runs) and
  `kubectl-audit.io/managed` (JSON: what was added, created and replaced, for disable).

Rules for audit settings made by hand (no `managed` annotation):
- a flag enable owns (`settings.OWNED_FLAGS`) already set to the same value is taken over
  silently: its line is replaced by ours and restored by disable;
- the same flag with a different value, a volumeMount at exactly the policy path, the log
  directory or the log file (a single-file log mount breaks rotation) that we cannot reuse,
  or a volume already named like ours, is a conflict: enable refuses and lists every one
  with its line, unless `take_over=True`, in which case those lines are removed, saved in
  the `managed` annotation, and put back by disable at the same list positions;
- other `--audit-*` flags (format, mode, webhook, ...) are left alone and validated.
Enabling a manifest we manage again first undoes our previous edit, so the same settings
give identical text and new settings replace the old ones in place.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubectl_audit.apiserver import yamltext as yt
from kubectl_audit.apiserver.flags import Flag, parse_command, validate_audit_flags
from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.apiserver.mounts import (
    DIRECTORY_TYPES,
    Reach,
    check_paths_reachable,
    container_args,
    resolve,
)
from kubectl_audit.apiserver.settings import OWNED_FLAGS, AuditSettings
from kubectl_audit.errors import AuditError, UsageError

MANAGED_ANNOTATION = "kubectl-audit.io/managed"
POLICY_ANNOTATION = "kubectl-audit.io/policy-sha256"
OUR_ANNOTATIONS = (POLICY_ANNOTATION, MANAGED_ANNOTATION)
POLICY_VOLUME = "kubectl-audit-policy"
LOG_VOLUME = "kubectl-audit-log"
OUR_VOLUMES = (POLICY_VOLUME, LOG_VOLUME)

_SAVED_LISTS = ("command", "args", "volumeMounts", "volumes")
_MOUNT_KEYS = frozenset(
    {"name", "mountPath", "readOnly", "subPath", "subPathExpr", "mountPropagation"}
    | {"recursiveReadOnly"}
)
_IMAGE_TAG = re.compile(r":(v?\d+\.\d+(?:\.\d+)?[^@]*)(?:@.*)?$")


class ManifestError(AuditError):
    """The manifest cannot be understood or edited safely; the message says where and why."""


class ManifestConflictError(ManifestError):
    """Audit settings made by hand disagree with ours; `conflicts` lists each, with its line."""

    def __init__(self, conflicts: Iterable[str]) -> None:
        self.conflicts = tuple(conflicts)
        super().__init__(
            "the manifest already has audit settings that differ from ours:\n  "
            + "\n  ".join(self.conflicts),
            hint="pass the existing paths (--policy-path/--log-path) to keep them, or "
            "--take-over to replace these lines (disable puts them back)",
        )


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
    return _Doc(text, source).static_pod


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


class _Doc:
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
        for item in _items(yt.value(self.spec, "volumes")):
            line = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                out.append((line, "a volume must be a mapping"))
                continue
            name = _item_name(item)
            if not name:
                out.append((line, "volume has no name (every volume needs `name:`)"))
            elif name in names:
                out.append(
                    (line, f"volume name {name!r} is used twice (first at line {names[name]})")
                )
            else:
                names[name] = line
        for item in _items(yt.value(self.container, "volumeMounts")):
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
            name = _item_name(item)
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

    def arg_items(self) -> list[tuple[str, int, yaml.Node, yaml.SequenceNode]]:
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
        items = self.arg_items()
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


def _items(node: yaml.Node | None) -> list[yaml.Node]:
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


# -- enable ----------------------------------------------------------------------------------


def render_enabled(text: str, settings: AuditSettings, *, take_over: bool = False) -> str:
    """The manifest with our audit settings; raises ManifestConflictError on conflicts."""
    if not settings.policy_sha256:
        raise UsageError("render_enabled needs settings.policy_sha256 (the policy's digest)")
    doc = _Doc(text)
    record = doc.static_pod.record
    if record is not None:
        # Re-enable = enable on what we started from, with the authority given back then.
        return render_enabled(
            render_disabled(text), settings, take_over=take_over or record.take_over
        )
    doc.require_editable()
    plan = _plan(doc, settings)
    if plan.conflicts and not take_over:
        raise ManifestConflictError(plan.conflicts)
    new_text = _apply_enable(doc, settings, plan, take_over)
    _check_enabled(doc, new_text, settings, plan)
    return new_text


@dataclass
class _Plan:
    conflicts: list[str] = field(default_factory=list)
    saved: list[Saved] = field(default_factory=list)
    removed_lines: list[tuple[int, int]] = field(default_factory=list)
    removed_names: set[str] = field(default_factory=set)  # volumes/mounts taken out
    add_policy_mount: bool = True
    add_log_mount: bool = True


def _plan(doc: _Doc, settings: AuditSettings) -> _Plan:
    plan = _Plan()
    wanted = dict(settings.flag_values())
    for flag in doc.flags:
        if flag.name not in OWNED_FLAGS:
            continue
        positions = doc.flag_item_positions(flag)
        line = positions[0][2].start_mark.line + 1
        if not _same_flag_value(flag.name, flag.value, wanted.get(flag.name)):
            want = f"{flag.name}={wanted[flag.name]}" if flag.name in wanted else "nothing"
            plan.conflicts.append(
                f"line {line}: {flag.text} was set by hand; kubectl-audit would set {want}"
            )
        for list_name, index, _item, seq in positions:
            _save(doc, plan, list_name, index, seq)
    _plan_volumes(doc, settings, plan)
    for key in OUR_ANNOTATIONS:
        if key in doc.static_pod.annotations:
            plan.conflicts.append(
                f"annotation {key} is present without kubectl-audit's record; remove the "
                "kubectl-audit.io annotations by hand (take-over cannot fix this)"
            )
    return plan


def _same_flag_value(name: str, have: str | None, want: str | None) -> bool:
    if name == "--audit-log-compress":
        have_bool = have is None or have.lower() in ("1", "t", "true")
        return have_bool == (want == "true")
    if have is None or want is None:
        return False
    if name in ("--audit-log-path", "--audit-policy-file"):
        return posixpath.normpath(have) == posixpath.normpath(want)
    try:
        return int(have, 0) == int(want)
    except ValueError:
        return False


def _save(doc: _Doc, plan: _Plan, list_name: str, index: int, seq: yaml.SequenceNode) -> None:
    start, end = doc.span(seq, index)
    plan.saved.append(Saved(list_name, index, "".join(doc.lines[start:end])))
    plan.removed_lines.append((start, end))


def _plan_volumes(doc: _Doc, settings: AuditSettings, plan: _Plan) -> None:
    pod = doc.static_pod
    volumes, mounts = pod.volumes, pod.mounts
    mounts_node = doc.seq("volumeMounts")
    volumes_node = doc.seq("volumes")
    take_out: set[int] = set()  # indices into mounts
    targets = {
        posixpath.normpath(settings.policy_path): "policy",
        settings.log_dir: "log directory",
        posixpath.normpath(settings.log_path): "log file",
    }
    for i, mount in enumerate(mounts):
        mount_path = posixpath.normpath(str(mount.get("mountPath") or "/"))
        what = targets.get(mount_path)
        if what is None and mount.get("name") not in OUR_VOLUMES:
            continue
        if what == "policy" and _serves_policy(
            resolve(settings.policy_path, volumes, [mount]), settings
        ):
            continue
        if what == "log directory" and _serves_log(
            resolve(settings.log_path, volumes, [mount]), settings
        ):
            continue
        line = mounts_node.value[i].start_mark.line + 1 if mounts_node is not None else 0
        reason = (
            "mounts the log file itself, which breaks rotation"
            if what == "log file"
            else f"is named like ours ({mount.get('name')})"
            if what is None
            else f"is at the {what} path but cannot serve it as we need"
        )
        plan.conflicts.append(f"line {line}: volumeMount {mount.get('name')!r} {reason}")
        take_out.add(i)
    for i in sorted(take_out):
        _save(doc, plan, "volumeMounts", i, mounts_node)
        plan.removed_names.add(str(mounts[i].get("name")))
    taken_out = set(plan.removed_names)
    still_used = {m.get("name") for i, m in enumerate(mounts) if i not in take_out}
    for i, volume in enumerate(volumes):
        name = volume.get("name")
        if name in still_used or (name not in taken_out and name not in OUR_VOLUMES):
            continue
        if name not in taken_out:
            line = volumes_node.value[i].start_mark.line + 1
            plan.conflicts.append(f"line {line}: volume {name!r} is named like ours")
        _save(doc, plan, "volumes", i, volumes_node)
        plan.removed_names.add(str(name))
    kept_mounts = [m for i, m in enumerate(mounts) if i not in take_out]
    kept_volumes = [v for v in volumes if v.get("name") not in plan.removed_names]
    plan.add_policy_mount = not _serves_policy(
        resolve(settings.policy_path, kept_volumes, kept_mounts), settings
    )
    plan.add_log_mount = not _serves_log(
        resolve(settings.log_path, kept_volumes, kept_mounts), settings
    )


def _serves_policy(reach: Reach | None, settings: AuditSettings) -> bool:
    """An existing mount that shows the host's policy file at the same path."""
    if reach is None or reach.host_path != posixpath.normpath(settings.policy_path):
        return False
    if reach.exact:
        return reach.host_path_type in ("", "File", "FileOrCreate")
    return reach.host_path_type in ("", *DIRECTORY_TYPES)


def _serves_log(reach: Reach | None, settings: AuditSettings) -> bool:
    """An existing writable directory mount that shows the host's log dir at the same path."""
    if reach is None or reach.exact or reach.read_only:
        return False
    return reach.host_path == posixpath.normpath(settings.log_path) and (
        reach.host_path_type in ("", *DIRECTORY_TYPES)
    )


def _apply_enable(doc: _Doc, settings: AuditSettings, plan: _Plan, take_over: bool) -> str:
    edit = yt.LineEdit.of(doc.text)
    for start, end in plan.removed_lines:
        edit.delete(start, end)
    _insert_flags(doc, edit, settings)
    mounts: list[str] = []
    volumes: list[tuple[str, str, str]] = []  # name, host path, type
    if plan.add_policy_mount:
        mounts.append(POLICY_VOLUME)
        volumes.append((POLICY_VOLUME, settings.policy_path, "File"))
    if plan.add_log_mount:
        mounts.append(LOG_VOLUME)
        volumes.append((LOG_VOLUME, settings.log_dir, "DirectoryOrCreate"))
    created: list[str] = []
    paths = {POLICY_VOLUME: settings.policy_path, LOG_VOLUME: settings.log_dir}
    mount_items = [
        [("mountPath", paths[name]), ("name", name)]
        + ([("readOnly", True)] if name == POLICY_VOLUME else [])
        for name in mounts
    ]
    volume_items = [
        [("hostPath", [("path", path), ("type", kind)]), ("name", name)]
        for name, path, kind in volumes
    ]
    if mount_items and _insert_list_items(doc, edit, "volumeMounts", mount_items):
        created.append("volumeMounts")
    if volume_items and _insert_list_items(doc, edit, "volumes", volume_items):
        created.append("volumes")
    if yt.get(doc.metadata, "annotations") is None:
        created.append("annotations")
    record = Record(
        flags=tuple(name for name, _ in settings.flag_values()),
        mounts=tuple(mounts),
        volumes=tuple(name for name, _, _ in volumes),
        created=tuple(created),
        saved=tuple(sorted(plan.saved, key=lambda s: (s.list, s.index))),
        take_over=take_over,
    )
    annotations = [
        (POLICY_ANNOTATION, settings.policy_sha256),
        (MANAGED_ANNOTATION, record.to_json()),
    ]
    _insert_annotations(doc, edit, annotations)
    return edit.apply()


def _insert_flags(doc: _Doc, edit: yt.LineEdit, settings: AuditSettings) -> None:
    items = doc.arg_items()
    flag_items = [entry for entry in items if str(entry[2].value).startswith("-")]
    anchor = flag_items[-1] if flag_items else (items[-1] if items else None)
    if anchor is None:
        raise ManifestError(
            f"{doc.source}: the kube-apiserver container has no command to add flags to"
        )
    doc.require_block(anchor[3], anchor[0])
    prefix = yt.item_prefix(doc.lines, anchor[2])
    edit.insert(yt.last_line(anchor[2]) + 1, [prefix + yt.scalar(a) for a in settings.flags()])


def _insert_list_items(
    doc: _Doc, edit: yt.LineEdit, list_name: str, items: list[list[tuple[str, Any]]]
) -> bool:
    """Append mapping items to a list, creating its key if missing; True if created."""
    seq = doc.seq(list_name)
    doc.require_block(seq, list_name)
    parent = doc.container if list_name == "volumeMounts" else doc.spec
    step = _nested_step(doc)
    if isinstance(seq, yaml.SequenceNode) and seq.value:
        prefix = yt.item_prefix(doc.lines, seq.value[-1])
        edit.insert(yt.last_line(seq) + 1, _render_items(prefix, items, step))
        return False
    key_column = parent.value[0][0].start_mark.column
    dash_offset = _dash_offset(doc)
    prefix = " " * (key_column + dash_offset) + "- "
    pair = yt.get(parent, list_name)
    if pair is not None:  # `volumes:` with nothing under it
        edit.insert(pair[0].start_mark.line + 1, _render_items(prefix, items, step))
        return False
    lines = [" " * key_column + f"{list_name}:", *_render_items(prefix, items, step)]
    edit.insert(yt.last_line(parent) + 1, lines)
    return True


def _render_items(prefix: str, items: list[list[tuple[str, Any]]], step: int) -> list[str]:
    out: list[str] = []
    indent = " " * len(prefix)
    for fields in items:
        for number, (key, value) in enumerate(fields):
            lead = prefix if number == 0 else indent
            if isinstance(value, list):
                out.append(f"{lead}{key}:")
                out.extend(f"{indent}{' ' * step}{k}: {yt.scalar(v)}" for k, v in value)
            elif isinstance(value, bool):
                out.append(f"{lead}{key}: {'true' if value else 'false'}")
            else:
                out.append(f"{lead}{key}: {yt.scalar(value)}")
    return out


def _nested_step(doc: _Doc) -> int:
    """How far this file indents a nested mapping (2 in kubeadm output)."""
    for item in _items(doc.seq("volumes")):
        pair = yt.get(item, "hostPath")
        if pair and isinstance(pair[1], yaml.MappingNode) and pair[1].value:
            return max(1, pair[1].start_mark.column - pair[0].start_mark.column)
    return 2


def _dash_offset(doc: _Doc) -> int:
    """How far list dashes sit right of their key (0 in kubeadm output, 2 in some files)."""
    for parent, key in ((doc.container, "command"), (doc.spec, "containers")):
        pair = yt.get(parent, key)
        if pair and isinstance(pair[1], yaml.SequenceNode) and pair[1].value:
            dash = len(yt.item_prefix(doc.lines, pair[1].value[0]).rstrip(" ")) - 1
            return max(0, dash - pair[0].start_mark.column)
    return 0


def _insert_annotations(doc: _Doc, edit: yt.LineEdit, values: list[tuple[str, str]]) -> None:
    """Add our annotations, creating the `annotations:` block when there is none."""
    if not isinstance(doc.metadata, yaml.MappingNode) or not doc.metadata.value:
        raise ManifestError(f"{doc.source}: the pod has no metadata block")
    pair = yt.get(doc.metadata, "annotations")
    key_column = doc.metadata.value[0][0].start_mark.column
    step = _nested_step(doc)
    if pair is None:
        lines = [" " * key_column + "annotations:"]
        lines += [f"{' ' * (key_column + step)}{k}: {yt.quoted(v)}" for k, v in values]
        edit.insert(doc.metadata.value[0][0].start_mark.line, lines)
        return
    node = pair[1]
    doc.require_block(node, "metadata.annotations")
    if isinstance(node, yaml.MappingNode) and node.value:
        column, before = node.value[0][0].start_mark.column, yt.last_line(node) + 1
    else:  # `annotations:` with nothing under it
        column, before = pair[0].start_mark.column + step, pair[0].start_mark.line + 1
    edit.insert(before, [f"{' ' * column}{k}: {yt.quoted(v)}" for k, v in values])


# -- disable ---------------------------------------------------------------------------------


def render_disabled(text: str) -> str:
    """The manifest without what enable added, and with what it replaced put back.

    A manifest kubectl-audit did not enable comes back unchanged (hand-made audit settings
    are not ours to remove).
    """
    doc = _Doc(text)
    record = doc.static_pod.record
    if record is None:
        leftovers = [k for k in OUR_ANNOTATIONS if k in doc.static_pod.annotations] + [
            v.get("name") for v in doc.static_pod.volumes if v.get("name") in OUR_VOLUMES
        ]
        if leftovers:
            raise ManifestError(
                f"{doc.source} has kubectl-audit's {', '.join(map(str, leftovers))} but not "
                f"its {MANAGED_ANNOTATION} record, so we cannot tell what to remove",
                hint="remove them by hand, or restore the backup made before enabling",
            )
        return text
    stripped = _strip_ours(doc, record)
    if record.saved:
        stripped = _restore(_Doc(stripped, doc.source), record.saved)
    _check_disabled(stripped, record)
    return stripped


def _strip_ours(doc: _Doc, record: Record) -> str:
    edit = yt.LineEdit.of(doc.text)
    for flag in doc.flags:
        if flag.name in record.flags:
            for list_name, index, _item, seq in doc.flag_item_positions(flag):
                doc.require_block(seq, list_name)
                edit.delete(*doc.span(seq, index))
    for list_name, names in (("volumeMounts", record.mounts), ("volumes", record.volumes)):
        seq = doc.seq(list_name)
        items = _items(seq)
        ours = [i for i, item in enumerate(items) if _item_name(item) in names]
        for i in ours:
            edit.delete(*doc.span(seq, i))
        if list_name in record.created and len(ours) == len(items):  # only ours: drop the key
            parent = doc.container if list_name == "volumeMounts" else doc.spec
            key_node = yt.get(parent, list_name)
            if key_node is not None:
                edit.delete(key_node[0].start_mark.line, key_node[0].start_mark.line + 1)
    pair = yt.get(doc.metadata, "annotations")
    if pair is not None and isinstance(pair[1], yaml.MappingNode):
        entries = pair[1].value
        starts = [k.start_mark.line for k, _ in entries]
        ends = [*starts[1:], yt.last_line(pair[1]) + 1]
        ours = [i for i, (k, _) in enumerate(entries) if k.value in OUR_ANNOTATIONS]
        for i in ours:
            edit.delete(starts[i], ends[i])
        if "annotations" in record.created and len(ours) == len(entries):
            edit.delete(pair[0].start_mark.line, pair[0].start_mark.line + 1)
    return edit.apply()


def _item_name(item: yaml.Node) -> str | None:
    node = yt.value(item, "name")
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _restore(doc: _Doc, saved_items: Iterable[Saved]) -> str:
    """Put saved items back at their list positions, all in one edit.

    The stripped list holds the other items in their original order, so an item that sat
    at index i goes before the stripped item at i minus the saved items before it.
    """
    edit = yt.LineEdit.of(doc.text)
    ordered = sorted(saved_items, key=lambda s: (s.list, s.index))
    for list_name in dict.fromkeys(s.list for s in ordered):
        group = [s for s in ordered if s.list == list_name]
        seq = doc.seq(list_name)
        items = seq.value if isinstance(seq, yaml.SequenceNode) else []
        for earlier, saved in enumerate(group):
            position = saved.index - earlier
            edit.insert(
                _restore_line(doc, list_name, seq, items, position, saved), saved.text.splitlines()
            )
    return edit.apply()


def _restore_line(
    doc: _Doc,
    list_name: str,
    seq: yaml.Node | None,
    items: list[yaml.Node],
    position: int,
    saved: Saved,
) -> int:
    if position < len(items):
        assert isinstance(seq, yaml.SequenceNode)
        return doc.span(seq, position)[0]
    if items:
        assert isinstance(seq, yaml.SequenceNode)
        return yt.last_line(seq) + 1
    parent = doc.container if list_name != "volumes" else doc.spec
    pair = yt.get(parent, list_name)
    if pair is None:
        raise ManifestError(
            f"{doc.source}: cannot put back the saved {list_name} entry: the list is gone",
            hint="add these lines back by hand:\n" + saved.text,
        )
    return pair[0].start_mark.line + 1


# -- self-checks: the result must mean what we intended ---------------------------------------


def _check_enabled(before: _Doc, new_text: str, settings: AuditSettings, plan: _Plan) -> None:
    try:
        after = _Doc(new_text, before.source)
    except ManifestError as exc:
        raise ManifestError(f"internal error: the edited manifest does not parse: {exc}") from exc
    pod = after.static_pod
    have = {f.name: f.value for f in pod.flags}
    wrong = [
        f"{name}={have.get(name)} instead of {value}"
        for name, value in settings.flag_values()
        if have.get(name) != value
    ]
    owned_extra = [n for n in OWNED_FLAGS if n in have and n not in dict(settings.flag_values())]
    reach = [p.message for p in check_paths_reachable(pod.spec, pod.container) if p.is_error]
    version = pod.kube_version or parse_version("v1.36.0")
    invalid = [p.message for p in validate_audit_flags(pod.flags, version) if p.is_error]
    if invalid:  # flags we leave alone (mode, format, ...) that upstream rejects
        raise ManifestError(
            f"{before.source}: kube-apiserver would refuse its audit flags and not start: "
            + "; ".join(invalid),
            hint="fix or remove these hand-set --audit-* flags first; nothing was written",
        )
    if pod.policy_sha256 != settings.policy_sha256 or pod.record is None:
        wrong.append("annotations missing")
    removed = plan.removed_names | set(OUR_VOLUMES)
    if _without_audit(before.data, removed) != _without_audit(after.data, removed):
        wrong.append("fields other than the audit settings changed")
    problems = wrong + owned_extra + reach + list(pod.structure_problems)
    if problems:
        raise ManifestError(
            f"refusing to write {before.source}: after editing, " + "; ".join(problems),
            hint="this is a bug in kubectl-audit or an unusual manifest; nothing was written",
        )


def _check_disabled(new_text: str, record: Record) -> None:
    pod = read_manifest(new_text)
    leftovers = [k for k in OUR_ANNOTATIONS if k in pod.annotations]
    leftovers += [str(v.get("name")) for v in pod.volumes if v.get("name") in record.volumes]
    if leftovers:
        raise ManifestError(
            "internal error: after disabling, still present: " + ", ".join(leftovers)
        )


def _without_audit(pod: Mapping[str, Any], volume_names: set[str]) -> Any:
    """The pod minus everything enable may add, replace or remove: what must not change."""
    data = copy.deepcopy(dict(pod))
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            for key in OUR_ANNOTATIONS:
                annotations.pop(key, None)
        if "annotations" in metadata and not metadata["annotations"]:
            metadata.pop("annotations")  # absent, null and {} mean the same
    spec = data.get("spec") or {}
    for container in spec.get("containers") or []:
        for key in ("command", "args"):
            if isinstance(container.get(key), list):
                container[key] = _drop_owned_flags([str(a) for a in container[key]])
        _drop_named(container, "volumeMounts", volume_names)
    _drop_named(spec, "volumes", volume_names)
    return data


def _drop_named(parent: dict[str, Any], key: str, names: set[str]) -> None:
    items = parent.get(key)
    if isinstance(items, list):
        parent[key] = [i for i in items if not isinstance(i, dict) or i.get("name") not in names]
    if key in parent and not parent[key]:
        parent.pop(key)  # absent, null and [] mean the same


def _drop_owned_flags(argv: list[str]) -> list[str]:
    drop: set[int] = set()
    for flag in parse_command(argv):
        if flag.name in OWNED_FLAGS:
            drop.add(flag.index)
            if flag.value is not None and "=" not in argv[flag.index]:
                drop.add(flag.index + 1)
    return [a for i, a in enumerate(argv) if i not in drop]
