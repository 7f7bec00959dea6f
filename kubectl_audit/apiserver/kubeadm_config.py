"""Audit settings in kubeadm's `ClusterConfiguration` (ConfigMap `kube-system/kubeadm-config`).

`kubeadm upgrade` and `kubeadm join --control-plane` regenerate the apiserver manifest from
this document, so flags added only to the manifest vanish (kubernetes/kubeadm#2157). We
add our arguments to `apiServer.extraArgs` and our two volumes to `apiServer.extraVolumes`:
- v1beta2 / v1beta3: `extraArgs` is a string map;
- v1beta4 (kubeadm 1.31+): `extraArgs` is a list of `{name, value}` (duplicates allowed;
  we keep exactly one entry per argument we own).
Removal takes out the arguments and volumes we own (by name) and drops keys left empty.
Arguments we own that were there before (same value, or replaced with `take_over`) are
removed too: after `disable` the regenerated manifest must not turn audit back on.

The edit is made on the text, line by line (comments, order and quoting survive; a diff
shows only our lines), and then checked: the edited text must load to exactly the data
we intended. Where that cannot be done (flow style, aliases, odd layouts) the document is
written the way kubeadm writes it - sorted keys, unindented lists - which is the layout of
the ConfigMap kubeadm creates anyway: same meaning, stable on re-runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from kubectl_audit.apiserver import yamltext as yt
from kubectl_audit.apiserver.settings import OWNED_FLAGS, AuditSettings
from kubectl_audit.apiserver.staticpod import LOG_VOLUME, POLICY_VOLUME
from kubectl_audit.errors import AuditError

MAP_FORM_VERSIONS = ("kubeadm.k8s.io/v1beta2", "kubeadm.k8s.io/v1beta3")
LIST_FORM_VERSIONS = ("kubeadm.k8s.io/v1beta4",)
CONFIG_MAP_KEY = "ClusterConfiguration"
_OWNED_ARGS = tuple(flag[2:] for flag in OWNED_FLAGS)


class KubeadmConfigError(AuditError):
    """The ClusterConfiguration cannot be patched; the hint carries what to add by hand."""


try:
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader, _Dumper = yaml.SafeLoader, yaml.SafeDumper


def patch_cluster_configuration(
    text: str, settings: AuditSettings, *, take_over: bool = False
) -> str:
    """The ClusterConfiguration with our audit arguments and volumes."""
    data = _read(text)
    api_server = data.setdefault("apiServer", {}) or {}
    data["apiServer"] = api_server
    list_form = data["apiVersion"] in LIST_FORM_VERSIONS
    current = _args(api_server.get("extraArgs"), list_form)
    wanted = dict(settings.extra_args())
    conflicts = [
        f"apiServer.extraArgs {name}={value} differs from {name}={wanted.get(name, '(unset)')}"
        for name, value in current
        if name in _OWNED_ARGS and value != wanted.get(name)
    ]
    if conflicts and not take_over:
        raise KubeadmConfigError(
            "kubeadm-config already has audit arguments that differ from ours: "
            + "; ".join(conflicts),
            hint="pass the same values, or --take-over to replace them",
        )
    kept = [(name, value) for name, value in current if name not in _OWNED_ARGS]
    api_server["extraArgs"] = _args_value(kept + list(wanted.items()), list_form)
    volumes = [
        v
        for v in api_server.get("extraVolumes") or []
        if not (isinstance(v, Mapping) and v.get("name") in (POLICY_VOLUME, LOG_VOLUME))
    ]
    api_server["extraVolumes"] = [*volumes, *_our_volumes(settings)]
    return _edited_or_canonical(text, data, list_form, list(wanted.items()), _our_volumes(settings))


def unpatch_cluster_configuration(text: str) -> str:
    """The ClusterConfiguration without the audit arguments and volumes we own."""
    data = _read(text)
    api_server = data.get("apiServer")
    if not isinstance(api_server, dict):
        return text
    list_form = data["apiVersion"] in LIST_FORM_VERSIONS
    if "extraArgs" in api_server:
        kept = [
            (n, v) for n, v in _args(api_server["extraArgs"], list_form) if n not in _OWNED_ARGS
        ]
        if kept:
            api_server["extraArgs"] = _args_value(kept, list_form)
        else:
            del api_server["extraArgs"]
    if "extraVolumes" in api_server:
        volumes = [
            v
            for v in api_server["extraVolumes"] or []
            if not (isinstance(v, Mapping) and v.get("name") in (POLICY_VOLUME, LOG_VOLUME))
        ]
        if volumes:
            api_server["extraVolumes"] = volumes
        else:
            del api_server["extraVolumes"]
    if not api_server:
        del data["apiServer"]
    return _edited_or_canonical(text, data, list_form, [], [])


def patch_kubeadm_config_map(
    config_map: Mapping[str, Any], settings: AuditSettings, *, take_over: bool = False
) -> dict[str, Any]:
    """A copy of the `kubeadm-config` ConfigMap with its ClusterConfiguration patched."""
    out = copy.deepcopy(dict(config_map))
    text = _cluster_configuration(out)
    out["data"][CONFIG_MAP_KEY] = patch_cluster_configuration(text, settings, take_over=take_over)
    return out


def unpatch_kubeadm_config_map(config_map: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(config_map))
    out["data"][CONFIG_MAP_KEY] = unpatch_cluster_configuration(_cluster_configuration(out))
    return out


def manual_snippet(settings: AuditSettings, *, list_form: bool) -> str:
    """What to add under `apiServer:` by hand, in either form."""
    api_server = {
        "extraArgs": _args_value(list(settings.extra_args()), list_form),
        "extraVolumes": _our_volumes(settings),
    }
    return _write({"apiServer": api_server})


# -- helpers -----------------------------------------------------------------------------------


def _cluster_configuration(config_map: dict[str, Any]) -> str:
    data = config_map.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(CONFIG_MAP_KEY), str):
        raise KubeadmConfigError(
            f"the kubeadm-config ConfigMap has no data.{CONFIG_MAP_KEY}",
            hint="is this a kubeadm cluster? see "
            "`kubectl -n kube-system get configmap kubeadm-config -o yaml`",
        )
    return data[CONFIG_MAP_KEY]


def _read(text: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise KubeadmConfigError(f"ClusterConfiguration is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != "ClusterConfiguration":
        raise KubeadmConfigError("not a kubeadm ClusterConfiguration document")
    version = data.get("apiVersion")
    if version not in MAP_FORM_VERSIONS + LIST_FORM_VERSIONS:
        settings = AuditSettings()
        raise KubeadmConfigError(
            f"ClusterConfiguration apiVersion {version!r} is not one we know how to patch "
            f"(known: {', '.join(MAP_FORM_VERSIONS + LIST_FORM_VERSIONS)})",
            hint="add this under apiServer: by hand (v1beta4 takes the list form of "
            "extraArgs, older versions the map form):\n"
            + manual_snippet(settings, list_form=False)
            + "---\n"
            + manual_snippet(settings, list_form=True),
        )
    if data.get("apiServer") is not None and not isinstance(data.get("apiServer"), dict):
        raise KubeadmConfigError("ClusterConfiguration apiServer is not a mapping")
    return data


def _args(value: Any, list_form: bool) -> list[tuple[str, str]]:
    """extraArgs in either form as (name, value) pairs, checking the form matches."""
    if value is None:
        return []
    if list_form:
        if not isinstance(value, list) or not all(
            isinstance(item, dict) and "name" in item for item in value
        ):
            raise KubeadmConfigError(
                "v1beta4 apiServer.extraArgs must be a list of {name, value} entries"
            )
        return [(str(item["name"]), str(item.get("value", ""))) for item in value]
    if not isinstance(value, dict):
        raise KubeadmConfigError("apiServer.extraArgs must be a map of name: value")
    return [(str(k), str(v)) for k, v in value.items()]


def _args_value(pairs: list[tuple[str, str]], list_form: bool) -> Any:
    if list_form:
        return [{"name": name, "value": value} for name, value in pairs]
    return dict(pairs)


def _our_volumes(settings: AuditSettings) -> list[dict[str, Any]]:
    return [
        {
            "hostPath": settings.policy_path,
            "mountPath": settings.policy_path,
            "name": POLICY_VOLUME,
            "pathType": "File",
            "readOnly": True,
        },
        {
            "hostPath": settings.log_dir,
            "mountPath": settings.log_dir,
            "name": LOG_VOLUME,
            "pathType": "DirectoryOrCreate",
        },
    ]


class _CannotEdit(Exception):
    """The text is laid out in a way the line editor does not handle."""


def _edited_or_canonical(
    text: str,
    expected: Mapping[str, Any],
    list_form: bool,
    args: list[tuple[str, str]],
    volumes: list[dict[str, Any]],
) -> str:
    """The line-edited text if it loads to `expected`, else `expected` in kubeadm's layout."""
    try:
        edited = _edit_text(text, list_form, args, volumes)
    except _CannotEdit:
        return _write(expected)
    if yaml.load(edited, Loader=_Loader) == expected:
        return edited
    return _write(expected)


def _edit_text(
    text: str, list_form: bool, args: list[tuple[str, str]], volumes: list[dict[str, Any]]
) -> str:
    root = yt.compose(text)
    if not isinstance(root, yaml.MappingNode) or not root.value or not yt.is_block(root):
        raise _CannotEdit
    lines = text.splitlines(keepends=True)
    edit = yt.LineEdit.of(text)
    arg_items = (
        [[("name", n), ("value", v)] for n, v in args] if list_form else []
    )  # map form entries are rendered as `name: value`
    sections = (
        ("extraArgs", set(_OWNED_ARGS), args, arg_items),
        (
            "extraVolumes",
            {POLICY_VOLUME, LOG_VOLUME},
            volumes,
            [sorted(v.items()) for v in volumes],
        ),
    )
    pair = yt.get(root, "apiServer")
    if pair is None or yt.is_null(pair[1]):
        column = root.value[0][0].start_mark.column
        block = _new_sections(column + 2, sections, list_form)
        if block and pair is None:
            edit.insert(yt.last_line(root) + 1, [" " * column + "apiServer:", *block])
        elif block:
            edit.insert(pair[0].start_mark.line + 1, block)
        return edit.apply()
    api_key, api = pair
    if not isinstance(api, yaml.MappingNode) or not yt.is_block(api):
        raise _CannotEdit
    column = api.value[0][0].start_mark.column
    emptied = 0
    for key, owned, wanted, items in sections:
        found = yt.get(api, key)
        if found is None:
            if wanted:
                lines_new = [" " * column + f"{key}:"]
                lines_new += _section_body(column, key, wanted, items, list_form, None, lines)
                edit.insert(yt.last_line(api) + 1, lines_new)
            continue
        key_node, node = found
        entries = _entries(node, lines)
        ours = [i for i, (name, _) in enumerate(entries) if name in owned]
        for i in ours:
            edit.delete(*entries[i][1])
        if wanted:
            body = _section_body(column, key, wanted, items, list_form, node, lines)
            where = key_node.start_mark.line + 1 if yt.is_null(node) else yt.last_line(node) + 1
            edit.insert(where, body)
        elif len(ours) == len(entries):  # nothing left under the key: drop it, comments too
            end = key_node.start_mark.line + 1 if yt.is_null(node) else yt.last_line(node) + 1
            edit.delete(key_node.start_mark.line, end)
            emptied += 1
    if emptied == len(api.value):  # apiServer held only our sections
        edit.delete(api_key.start_mark.line, api_key.start_mark.line + 1)
    return edit.apply()


def _entries(node: yaml.Node, lines: list[str]) -> list[tuple[str | None, tuple[int, int]]]:
    """(name, line span) of each map entry or list item under extraArgs/extraVolumes."""
    if yt.is_null(node):
        return []
    if not yt.is_block(node):
        raise _CannotEdit
    if isinstance(node, yaml.MappingNode):
        starts = [k.start_mark.line for k, _ in node.value]
        ends = [*starts[1:], yt.last_line(node) + 1]
        return [
            (str(k.value), (s, e)) for (k, _), s, e in zip(node.value, starts, ends, strict=True)
        ]
    if isinstance(node, yaml.SequenceNode):
        spans = yt.item_spans(node, lines)
        names = []
        for item in node.value:
            name = yt.value(item, "name")
            names.append(str(name.value) if isinstance(name, yaml.ScalarNode) else None)
        return list(zip(names, spans, strict=True))
    raise _CannotEdit


def _section_body(
    column: int,
    key: str,
    wanted: list[Any],
    items: list[list[tuple[str, Any]]],
    list_form: bool,
    node: yaml.Node | None,
    lines: list[str],
) -> list[str]:
    """The lines of our entries, styled like the existing ones under the key."""
    if key == "extraArgs" and not list_form:
        inner = column + 2
        if isinstance(node, yaml.MappingNode) and node.value:
            inner = node.value[0][0].start_mark.column
        return [f"{' ' * inner}{name}: {yt.scalar(value)}" for name, value in wanted]
    prefix = " " * column + "- "
    if isinstance(node, yaml.SequenceNode) and node.value:
        prefix = yt.item_prefix(lines, node.value[-1])
    out = []
    for fields in items:
        for number, (name, value) in enumerate(fields):
            lead = prefix if number == 0 else " " * len(prefix)
            rendered = (
                ("true" if value else "false") if isinstance(value, bool) else yt.scalar(value)
            )
            out.append(f"{lead}{name}: {rendered}")
    return out


def _new_sections(column: int, sections: Any, list_form: bool) -> list[str]:
    out: list[str] = []
    for key, _owned, wanted, items in sections:
        if wanted:
            out.append(" " * column + f"{key}:")
            out.extend(_section_body(column, key, wanted, items, list_form, None, []))
    return out


def _write(data: Mapping[str, Any]) -> str:
    """go-yaml's layout as kubeadm produces it: sorted keys, unindented lists, no wrapping."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1 << 20)
