"""The release archive: reproducible, and a working plugin with a bare python3.

"Bare" = a venv made without pip or site packages: none of our dependencies, as on a
user's machine that only has python3. The plugin then runs through the real kubectl from a
directory on PATH, laid out the way `kubectl krew install` lays it out (the manifest's
`files` operations, then a `kubectl-audit` link to `bin`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TESTDATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

BUILD = ROOT / "scripts" / "build-release"


def build(out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (archive,) = out.glob("kubectl-audit-v*.tar.gz")
    return archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def krew_install(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install like krew: unpack, apply `files` from the manifest, link bin into PATH."""
    work = tmp_path_factory.mktemp("krew")
    unpacked = work / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    platform = yaml.safe_load((ROOT / "krew-manifest.yaml").read_text())["spec"]["platforms"][0]
    install = work / "store" / "audit"
    install.mkdir(parents=True)
    for operation in platform["files"]:
        shutil.copy2(unpacked / operation["from"], install / Path(operation["from"]).name)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl-audit").symlink_to(install / platform["bin"])
    return bin_dir


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    probe = subprocess.run([venv / "bin" / "python3", "-c", "import click"], capture_output=True)
    assert probe.returncode != 0, "the bare python3 must not have our dependencies"
    return venv / "bin"


def run_plugin(bin_dir: Path, bare: Path, *args: str) -> subprocess.CompletedProcess[str]:
    kubectl_dir = str(Path(shutil.which("kubectl")).parent)
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(bare), kubectl_dir, "/bin"])}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        ["kubectl", "audit", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_two_builds_give_the_same_bytes(archive: Path, tmp_path: Path) -> None:
    again = build(tmp_path)
    assert (
        hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(archive.read_bytes()).digest()
    )


def test_archive_holds_a_license_and_one_executable(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["LICENSE", "kubectl-audit"]
    assert members["kubectl-audit"].mode == 0o755
    assert all(m.mtime == members["LICENSE"].mtime and m.uid == 0 for m in members.values())


def test_krew_layout_passes_the_license_check(krew_install: Path) -> None:
    installed = (krew_install / "kubectl-audit").resolve().parent
    assert (installed / "LICENSE").is_file()


def test_version_through_kubectl_with_a_bare_python(krew_install: Path, bare_python: Path) -> None:
    result = run_plugin(krew_install, bare_python, "version", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert '"yaml": "pure-python"' in result.stdout


def test_validate_through_kubectl_with_a_bare_python(krew_install: Path, bare_python: Path) -> None:
    good = TESTDATA / "policies" / "gke-gce-configure-helper-audit-policy.yaml"
    result = run_plugin(krew_install, bare_python, "validate", str(good))
    assert result.returncode == 0, result.stdout + result.stderr
    bad = TESTDATA / "policies" / "openshift-logging-osd-example-policy-nonstandard.yaml"
    result = run_plugin(krew_install, bare_python, "validate", "-o", "json", str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"valid": false' in result.stdout


def test_cluster_commands_explain_the_missing_client(
    krew_install: Path, bare_python: Path, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = run_plugin(krew_install, bare_python, "status", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 1
    assert "Kubernetes Python client is not installed" in result.stderr
    assert "Traceback" not in result.stderr
