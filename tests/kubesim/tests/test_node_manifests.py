"""How the simulated kubelet reads /etc/kubernetes/manifests (pkg/kubelet/config/file.go)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import TESTDATA
from tests.kubesim.manifests import MANIFESTS, ManifestSource, config_hash, decode_manifest
from tests.kubesim.noderoot import seed_root

APISERVER = "kube-system/kube-apiserver-cp"


@pytest.fixture
def source(tmp_path: Path) -> ManifestSource:
    seed_root(
        tmp_path, name="cp", ip="172.18.0.2", control_plane=True, version="v1.36.0", port=6443
    )
    return ManifestSource(tmp_path, "cp")


def manifests(source: ManifestSource) -> Path:
    return source.directory


def test_the_four_static_pods_are_read(source: ManifestSource) -> None:
    source.relist()
    assert sorted(source.pods) == [
        "kube-system/etcd-cp",
        "kube-system/kube-apiserver-cp",
        "kube-system/kube-controller-manager-cp",
        "kube-system/kube-scheduler-cp",
    ]


def test_hash_ignores_formatting_but_not_content(source: ManifestSource) -> None:
    path = manifests(source) / "kube-apiserver.yaml"
    text = path.read_text()
    before = decode_manifest(text.encode(), f"{MANIFESTS}/kube-apiserver.yaml", "cp").uid
    reformatted = "# a comment\n" + text.replace("tier: control-plane", "tier: 'control-plane'")
    assert (
        decode_manifest(reformatted.encode(), f"{MANIFESTS}/kube-apiserver.yaml", "cp").uid
        == before
    )
    edited = text.replace("--profiling=false", "--profiling=true")
    assert decode_manifest(edited.encode(), f"{MANIFESTS}/kube-apiserver.yaml", "cp").uid != before
    # The file path and node name are part of the hash (common.go applyDefaults).
    assert (
        decode_manifest(text.encode(), f"{MANIFESTS}/kube-apiserver.yaml.bak", "cp").uid != before
    )
    assert len(before) == 32 and before == config_hash(
        decode_manifest(text.encode(), "x", "cp").manifest,
        "cp",
        f"{MANIFESTS}/kube-apiserver.yaml",
    )


def test_hidden_files_and_directories_are_ignored(source: ManifestSource) -> None:
    directory = manifests(source)
    text = (directory / "kube-apiserver.yaml").read_text()
    (directory / ".kube-apiserver.yaml.swp").write_text(text.replace("--profiling=false", "--v=9"))
    (directory / "backup").mkdir()
    (directory / "backup/kube-apiserver.yaml").write_text(
        text.replace("--profiling=false", "--v=9")
    )
    source.relist()
    command = source.pods[APISERVER].manifest["spec"]["containers"][0]["command"]
    assert "--v=9" not in command


def test_any_extension_counts_and_the_backup_sorting_last_wins(source: ManifestSource) -> None:
    """kubernetes/kubernetes#136962: `kube-apiserver.yaml.bak` sorts after the real file."""
    directory = manifests(source)
    source.relist()
    old = (directory / "kube-apiserver.yaml").read_text()
    (directory / "kube-apiserver.yaml.bak").write_text(old)
    (directory / "kube-apiserver.yaml").write_text(old.replace("--profiling=false", "--v=4"))
    assert source.watch_events()  # the edit is noticed (inotify) ...
    assert source.pods[APISERVER].source == f"{MANIFESTS}/kube-apiserver.yaml"
    source.relist()  # ... and undone by the next periodic relist: the flapping
    assert source.pods[APISERVER].source == f"{MANIFESTS}/kube-apiserver.yaml.bak"
    assert "--v=4" not in source.pods[APISERVER].manifest["spec"]["containers"][0]["command"]


def test_a_backup_sorting_first_loses(source: ManifestSource) -> None:
    directory = manifests(source)
    old = (directory / "kube-apiserver.yaml").read_text()
    (directory / "backup-kube-apiserver.yaml").write_text(old)
    (directory / "kube-apiserver.yaml").write_text(old.replace("--profiling=false", "--v=4"))
    source.relist()
    assert source.pods[APISERVER].source == f"{MANIFESTS}/kube-apiserver.yaml"


def test_an_invalid_manifest_removes_its_pod(source: ManifestSource) -> None:
    directory = manifests(source)
    source.relist()
    text = (directory / "kube-apiserver.yaml").read_text()
    # A volumeMount naming no volume fails ValidatePodCreate: the pod is dropped.
    broken = text.replace("name: k8s-certs\n      readOnly", "name: k8s-certz\n      readOnly")
    (directory / "kube-apiserver.yaml").write_text(broken)
    source.relist()
    assert APISERVER not in source.pods
    assert "volumeMounts[2].name: Not found" in source.errors[f"{MANIFESTS}/kube-apiserver.yaml"]


def test_real_hand_edited_manifest_with_a_nameless_volume_is_rejected(
    source: ManifestSource,
) -> None:
    # Provenance: mstelles/cks files/kube-apiserver.yaml @e571cb9b (see PROVENANCE.md there).
    real = TESTDATA / "apiserver-manifests/kubeadm-v1.21.0-mstelles-edited-malformed-volume.yaml"
    shutil.copy(real, manifests(source) / "kube-apiserver.yaml")
    source.relist()
    assert APISERVER not in source.pods
    assert source.errors[f"{MANIFESTS}/kube-apiserver.yaml"] == (
        "invalid pod: spec.volumes[0].name: Required value"
    )


def test_removing_a_file_removes_its_pod(source: ManifestSource) -> None:
    source.relist()
    (manifests(source) / "kube-scheduler.yaml").rename(source.root / "etc/kubernetes/tmp/s.yaml")
    assert source.watch_events()
    assert "kube-system/kube-scheduler-cp" not in source.pods
