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

kubeadm writes this document from Go structs, so its keys are sorted and its lists are not
indented; we read it, change the data and write it back the same way. A document already
in that form comes back byte for byte after patch + unpatch; any other form (comments, a
hand-written file) comes back in that canonical form - same meaning, stable on re-runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

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
    return _write(data)


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
    return _write(data)


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


def _write(data: Mapping[str, Any]) -> str:
    """go-yaml's layout as kubeadm produces it: sorted keys, unindented lists, no wrapping."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1 << 20)
