"""Keep audit on across `kubeadm upgrade` and control-plane joins: kube-system/kubeadm-config.

kubeadm regenerates kube-apiserver.yaml from the ClusterConfiguration in this ConfigMap, so
flags only in the manifest vanish at the next upgrade (kubernetes/kubeadm#2157).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubectl_audit.apiserver.diff import manifest_diff
from kubectl_audit.apiserver.kubeadm_config import (
    CONFIG_MAP_KEY,
    patch_kubeadm_config_map,
    unpatch_kubeadm_config_map,
)
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.kube.errors import NotFound, api_call
from kubectl_audit.kube.rest import Rest, core_path

NAMESPACE = "kube-system"
NAME = "kubeadm-config"
WHERE = f"configmap/{NAME} -n {NAMESPACE} ({CONFIG_MAP_KEY})"
_PATH = core_path("configmaps", NAME, namespace=NAMESPACE)


@dataclass(frozen=True)
class PersistPlan:
    """What would change in kubeadm-config; `config_map` is None when there is none."""

    config_map: dict[str, Any] | None
    patched: dict[str, Any] | None

    @property
    def changes(self) -> bool:
        return self.patched is not None and self.patched != self.config_map

    def diff(self) -> str:
        if not self.changes or self.config_map is None or self.patched is None:
            return ""
        return manifest_diff(
            self.config_map["data"][CONFIG_MAP_KEY],
            self.patched["data"][CONFIG_MAP_KEY],
            path=f"kube-system/kubeadm-config:{CONFIG_MAP_KEY}",
        )


def plan_persist(
    api_client: Any, mode: str, settings: AuditSettings, *, take_over: bool
) -> PersistPlan:
    try:
        with api_call(f"read {WHERE}"):
            config_map = Rest(api_client).get(_PATH)
    except NotFound:
        return PersistPlan(None, None)
    if mode == "enable":
        patched = patch_kubeadm_config_map(config_map, settings, take_over=take_over)
    else:
        patched = unpatch_kubeadm_config_map(config_map)
    return PersistPlan(config_map, patched)


def apply_persist(api_client: Any, plan: PersistPlan) -> bool:
    """Write the patched ConfigMap (optimistic concurrency: its resourceVersion); True if
    something changed."""
    if not plan.changes or plan.patched is None:
        return False
    with api_call(f"update {WHERE}"):
        Rest(api_client).replace(_PATH, plan.patched)
    return True
