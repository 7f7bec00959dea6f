"""Patching kubeadm's ClusterConfiguration in the v1beta2/v1beta3 map and v1beta4 list forms."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubectl_audit.apiserver.kubeadm_config import (
    KubeadmConfigError,
    manual_snippet,
    patch_cluster_configuration,
    patch_kubeadm_config_map,
    unpatch_cluster_configuration,
    unpatch_kubeadm_config_map,
)
from kubectl_audit.apiserver.settings import AuditSettings
from tests.conftest import TESTDATA

OURS = Path(__file__).parent / "data"
MANIFESTS = TESTDATA / "apiserver-manifests"
SETTINGS = AuditSettings()
WANTED_ARGS = {
    "audit-log-maxage": "30",
    "audit-log-maxbackup": "10",
    "audit-log-maxsize": "100",
    "audit-log-path": "/var/log/kubernetes/audit/audit.log",
    "audit-policy-file": "/etc/kubernetes/audit/policy.yaml",
}
WANTED_VOLUMES = [
    {
        "hostPath": "/etc/kubernetes/audit/policy.yaml",
        "mountPath": "/etc/kubernetes/audit/policy.yaml",
        "name": "kubectl-audit-policy",
        "pathType": "File",
        "readOnly": True,
    },
    {
        "hostPath": "/var/log/kubernetes/audit",
        "mountPath": "/var/log/kubernetes/audit",
        "name": "kubectl-audit-log",
        "pathType": "DirectoryOrCreate",
    },
]


def kind_patch() -> str:
    """The v1beta3 ClusterConfiguration patch inside the KHI docs' kind config."""
    kind = yaml.safe_load(
        (MANIFESTS / "kind-config-clusterconfig-v1beta3-map-extraargs-khi-docs.yaml").read_text()
    )
    return kind["nodes"][0]["kubeadmConfigPatches"][0]


def as_map(args: object) -> dict[str, str]:
    if isinstance(args, list):
        return {item["name"]: item["value"] for item in args}
    assert isinstance(args, dict)
    return args


def test_v1beta2_map_form_add_remove_idempotent() -> None:
    text = (MANIFESTS / "kubeadm-clusterconfig-v1beta2-ha-asktiger.yaml").read_text()
    patched = patch_cluster_configuration(text, SETTINGS)
    data = yaml.safe_load(patched)
    assert data["apiServer"]["extraArgs"] == WANTED_ARGS
    assert data["apiServer"]["extraVolumes"] == WANTED_VOLUMES
    assert data["apiServer"]["certSANs"] == ["master.cluster.local"]
    assert patch_cluster_configuration(patched, SETTINGS) == patched
    assert yaml.safe_load(unpatch_cluster_configuration(patched)) == yaml.safe_load(text)


GENERATED = [
    "clusterconfig-v1beta3-kubeadm-generated.yaml",
    "clusterconfig-v1beta4-kubeadm-generated.yaml",
]


@pytest.mark.parametrize("name", GENERATED)
def test_kubeadm_generated_documents_round_trip_byte_for_byte(name: str) -> None:
    text = (OURS / name).read_text()
    patched = patch_cluster_configuration(text, SETTINGS)
    assert unpatch_cluster_configuration(patched) == text
    added = [line for line in patched.splitlines() if line not in text.splitlines()]
    assert any("kubectl-audit-policy" in line for line in added)
    # What was there stays there, in place.
    data = yaml.safe_load(patched)
    assert as_map(data["apiServer"]["extraArgs"])["authorization-mode"] == "Node,RBAC"


def test_v1beta4_uses_the_list_form() -> None:
    text = (OURS / "clusterconfig-v1beta4-kubeadm-generated.yaml").read_text()
    data = yaml.safe_load(patch_cluster_configuration(text, SETTINGS))
    args = data["apiServer"]["extraArgs"]
    assert args[:2] == [
        {"name": "authorization-mode", "value": "Node,RBAC"},
        {"name": "feature-gates", "value": "ValidatingAdmissionPolicy=true"},
    ]
    assert args[2:] == [{"name": k, "value": v} for k, v in WANTED_ARGS.items()]


def test_kind_v1beta3_patch_with_hand_made_audit_args_conflicts() -> None:
    text = kind_patch()
    with pytest.raises(KubeadmConfigError) as caught:
        patch_cluster_configuration(text, SETTINGS)
    assert "audit-policy-file=/etc/kubernetes/audit/audit-policy.yaml" in caught.value.message
    taken = yaml.safe_load(patch_cluster_configuration(text, SETTINGS, take_over=True))
    assert taken["apiServer"]["extraArgs"] == WANTED_ARGS
    # Their volumes stay; ours are added.
    names = [v["name"] for v in taken["apiServer"]["extraVolumes"]]
    assert names == ["audit-config", "audit-logs", "kubectl-audit-policy", "kubectl-audit-log"]
    same = AuditSettings(
        policy_path="/etc/kubernetes/audit/audit-policy.yaml",
        log_path="/var/log/kubernetes/audit.log",
    )
    untaken = yaml.safe_load(patch_cluster_configuration(text, same))
    assert untaken["apiServer"]["extraArgs"]["audit-log-path"] == "/var/log/kubernetes/audit.log"


def test_v1beta4_duplicates_collapse_to_one_entry_each() -> None:
    text = (OURS / "clusterconfig-v1beta4-hand-audit.yaml").read_text()
    with pytest.raises(KubeadmConfigError, match="audit-log-maxage=7"):
        patch_cluster_configuration(text, SETTINGS)
    data = yaml.safe_load(patch_cluster_configuration(text, SETTINGS, take_over=True))
    names = [item["name"] for item in data["apiServer"]["extraArgs"]]
    assert sorted(names) == sorted(WANTED_ARGS)
    cleaned = yaml.safe_load(unpatch_cluster_configuration(yaml.safe_dump(data)))
    assert "extraArgs" not in cleaned["apiServer"]
    assert [v["name"] for v in cleaned["apiServer"]["extraVolumes"]] == ["audit-logs"]


def test_unknown_api_version_gives_the_snippet_to_add_by_hand() -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta9\nkind: ClusterConfiguration\n"
    with pytest.raises(KubeadmConfigError) as caught:
        patch_cluster_configuration(text, SETTINGS)
    assert "'kubeadm.k8s.io/v1beta9' is not one we know" in caught.value.message
    hint = caught.value.hint or ""
    assert "    audit-log-maxage: '30'" in hint  # map form
    assert "  - name: audit-log-maxage\n    value: '30'" in hint  # list form


def test_snippet_forms_load_as_kubeadm_expects() -> None:
    map_form = yaml.safe_load(manual_snippet(SETTINGS, list_form=False))["apiServer"]
    list_form = yaml.safe_load(manual_snippet(SETTINGS, list_form=True))["apiServer"]
    assert map_form["extraArgs"] == WANTED_ARGS == as_map(list_form["extraArgs"])
    assert map_form["extraVolumes"] == WANTED_VOLUMES


def test_config_map_wrappers() -> None:
    text = (OURS / "clusterconfig-v1beta3-kubeadm-generated.yaml").read_text()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": text},
    }
    patched = patch_kubeadm_config_map(config_map, SETTINGS)
    assert config_map["data"]["ClusterConfiguration"] == text  # not modified in place
    assert "kubectl-audit-log" in patched["data"]["ClusterConfiguration"]
    assert unpatch_kubeadm_config_map(patched) == config_map
    with pytest.raises(KubeadmConfigError, match=r"no data\.ClusterConfiguration"):
        patch_kubeadm_config_map({"data": {}}, SETTINGS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("apiVersion: v1\nkind: Pod\n", "not a kubeadm ClusterConfiguration"),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
            "apiServer:\n  extraArgs:\n    audit-log-maxage: '3'\n",
            "v1beta4 apiServer.extraArgs must be a list",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
            "apiServer:\n  extraArgs:\n  - name: a\n",
            "must be a map",
        ),
        ("a: [", "not valid YAML"),
    ],
)
def test_bad_documents(text: str, fragment: str) -> None:
    with pytest.raises(KubeadmConfigError, match=fragment):
        patch_cluster_configuration(text, SETTINGS)


@pytest.mark.parametrize("name", GENERATED)
def test_patching_a_kubeadm_generated_document_only_adds_lines(name: str) -> None:
    import difflib

    text = (OURS / name).read_text()
    patched = patch_cluster_configuration(text, SETTINGS)
    diff = difflib.unified_diff(text.splitlines(True), patched.splitlines(True), n=0)
    body = [line for line in diff if not line.startswith(("---", "+++", "@@"))]
    assert body and all(line.startswith("+") for line in body)


def test_comments_and_layout_survive_the_text_edit() -> None:
    text = kind_patch()
    patched = patch_cluster_configuration(text, SETTINGS, take_over=True)
    for comment in ("# Mount the audit policy directory", "# Creates the directory if"):
        assert comment in patched
    assert "    - name: audit-config\n" in patched  # their indented list style stays
    unpatched = unpatch_cluster_configuration(patched)
    assert "extraArgs" not in unpatched and "# Tell the API server" not in unpatched
    assert "# Mount the audit policy directory" in unpatched
    expected = yaml.safe_load(text)
    del expected["apiServer"]["extraArgs"]
    assert yaml.safe_load(unpatched) == expected


def test_hand_written_v1beta2_round_trips_byte_for_byte() -> None:
    text = (MANIFESTS / "kubeadm-clusterconfig-v1beta2-ha-asktiger.yaml").read_text()
    patched = patch_cluster_configuration(text, SETTINGS)
    assert '    - "master.cluster.local"\n' in patched  # their quoting and indentation stay
    assert unpatch_cluster_configuration(patched) == text


def test_flow_style_falls_back_to_kubeadm_layout() -> None:
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
        "apiServer: {extraArgs: {authorization-mode: 'Node,RBAC'}}\n"
    )
    patched = patch_cluster_configuration(text, SETTINGS)
    assert patched.startswith("apiServer:\n  extraArgs:\n")
    data = yaml.safe_load(patched)
    assert data["apiServer"]["extraArgs"]["authorization-mode"] == "Node,RBAC"
    assert yaml.safe_load(unpatch_cluster_configuration(patched)) == yaml.safe_load(text)
