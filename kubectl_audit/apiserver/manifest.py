"""Turn audit logging on and off in the kube-apiserver static-pod manifest, as text edits.

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
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubectl_audit.apiserver import yamltext as yt
from kubectl_audit.apiserver.flags import parse_command, validate_audit_flags
from kubectl_audit.apiserver.kubeversion import parse_version
from kubectl_audit.apiserver.mounts import (
    DIRECTORY_TYPES,
    Reach,
    check_paths_reachable,
    resolve,
)
from kubectl_audit.apiserver.settings import OWNED_FLAGS, AuditSettings
from kubectl_audit.apiserver.staticpod import (
    LOG_VOLUME,
    MANAGED_ANNOTATION,
    OUR_ANNOTATIONS,
    OUR_VOLUMES,
    POLICY_ANNOTATION,
    POLICY_VOLUME,
    ManifestError,
    ParsedManifest,
    Record,
    Saved,
    StaticPod,
    item_name,
    items_of,
    manifest_is_managed,
    pod_from_object,
    read_manifest,
)
from kubectl_audit.errors import UsageError

__all__ = [
    "LOG_VOLUME",
    "MANAGED_ANNOTATION",
    "POLICY_ANNOTATION",
    "POLICY_VOLUME",
    "ManifestConflictError",
    "ManifestError",
    "Record",
    "StaticPod",
    "manifest_is_managed",
    "pod_from_object",
    "read_manifest",
    "render_disabled",
    "render_enabled",
]


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


# -- enable ----------------------------------------------------------------------------------


def render_enabled(text: str, settings: AuditSettings, *, take_over: bool = False) -> str:
    """The manifest with our audit settings; raises ManifestConflictError on conflicts."""
    if not settings.policy_sha256:
        raise UsageError("render_enabled needs settings.policy_sha256 (the policy's digest)")
    doc = ParsedManifest(text)
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


def _plan(doc: ParsedManifest, settings: AuditSettings) -> _Plan:
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


def _save(
    doc: ParsedManifest, plan: _Plan, list_name: str, index: int, seq: yaml.SequenceNode
) -> None:
    start, end = doc.span(seq, index)
    plan.saved.append(Saved(list_name, index, "".join(doc.lines[start:end])))
    plan.removed_lines.append((start, end))


def _plan_volumes(doc: ParsedManifest, settings: AuditSettings, plan: _Plan) -> None:
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


def _apply_enable(
    doc: ParsedManifest, settings: AuditSettings, plan: _Plan, take_over: bool
) -> str:
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
    if mount_items and _insert_listitems_of(doc, edit, "volumeMounts", mount_items):
        created.append("volumeMounts")
    if volume_items and _insert_listitems_of(doc, edit, "volumes", volume_items):
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


def _insert_flags(doc: ParsedManifest, edit: yt.LineEdit, settings: AuditSettings) -> None:
    items = doc.argitems_of()
    flag_items = [entry for entry in items if str(entry[2].value).startswith("-")]
    anchor = flag_items[-1] if flag_items else (items[-1] if items else None)
    if anchor is None:
        raise ManifestError(
            f"{doc.source}: the kube-apiserver container has no command to add flags to"
        )
    doc.require_block(anchor[3], anchor[0])
    prefix = yt.item_prefix(doc.lines, anchor[2])
    edit.insert(yt.last_line(anchor[2]) + 1, [prefix + yt.scalar(a) for a in settings.flags()])


def _insert_listitems_of(
    doc: ParsedManifest, edit: yt.LineEdit, list_name: str, items: list[list[tuple[str, Any]]]
) -> bool:
    """Append mapping items to a list, creating its key if missing; True if created."""
    seq = doc.seq(list_name)
    doc.require_block(seq, list_name)
    parent = doc.container if list_name == "volumeMounts" else doc.spec
    step = _nested_step(doc)
    if isinstance(seq, yaml.SequenceNode) and seq.value:
        prefix = yt.item_prefix(doc.lines, seq.value[-1])
        edit.insert(yt.last_line(seq) + 1, _renderitems_of(prefix, items, step))
        return False
    key_column = parent.value[0][0].start_mark.column
    dash_offset = _dash_offset(doc)
    prefix = " " * (key_column + dash_offset) + "- "
    pair = yt.get(parent, list_name)
    if pair is not None:  # `volumes:` with nothing under it
        edit.insert(pair[0].start_mark.line + 1, _renderitems_of(prefix, items, step))
        return False
    lines = [" " * key_column + f"{list_name}:", *_renderitems_of(prefix, items, step)]
    edit.insert(yt.last_line(parent) + 1, lines)
    return True


def _renderitems_of(prefix: str, items: list[list[tuple[str, Any]]], step: int) -> list[str]:
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


def _nested_step(doc: ParsedManifest) -> int:
    """How far this file indents a nested mapping (2 in kubeadm output)."""
    for item in items_of(doc.seq("volumes")):
        pair = yt.get(item, "hostPath")
        if pair and isinstance(pair[1], yaml.MappingNode) and pair[1].value:
            return max(1, pair[1].start_mark.column - pair[0].start_mark.column)
    return 2


def _dash_offset(doc: ParsedManifest) -> int:
    """How far list dashes sit right of their key (0 in kubeadm output, 2 in some files)."""
    for parent, key in ((doc.container, "command"), (doc.spec, "containers")):
        pair = yt.get(parent, key)
        if pair and isinstance(pair[1], yaml.SequenceNode) and pair[1].value:
            dash = len(yt.item_prefix(doc.lines, pair[1].value[0]).rstrip(" ")) - 1
            return max(0, dash - pair[0].start_mark.column)
    return 0


def _insert_annotations(
    doc: ParsedManifest, edit: yt.LineEdit, values: list[tuple[str, str]]
) -> None:
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
    doc = ParsedManifest(text)
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
        stripped = _restore(ParsedManifest(stripped, doc.source), record.saved)
    _check_disabled(stripped, record)
    return stripped


def _strip_ours(doc: ParsedManifest, record: Record) -> str:
    edit = yt.LineEdit.of(doc.text)
    for flag in doc.flags:
        if flag.name in record.flags:
            for list_name, index, _item, seq in doc.flag_item_positions(flag):
                doc.require_block(seq, list_name)
                edit.delete(*doc.span(seq, index))
    for list_name, names in (("volumeMounts", record.mounts), ("volumes", record.volumes)):
        seq = doc.seq(list_name)
        items = items_of(seq)
        ours = [i for i, item in enumerate(items) if item_name(item) in names]
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


def _restore(doc: ParsedManifest, saved_items: Iterable[Saved]) -> str:
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
    doc: ParsedManifest,
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


def _check_enabled(
    before: ParsedManifest, new_text: str, settings: AuditSettings, plan: _Plan
) -> None:
    try:
        after = ParsedManifest(new_text, before.source)
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
