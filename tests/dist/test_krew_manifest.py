"""krew-manifest.yaml passes every rule krew enforces, and matches a fresh release build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubectl_audit import __version__
from tests.conftest import ROOT, TESTDATA
from tests.dist.krew_rules import bot_tips, violations

MANIFEST = ROOT / "krew-manifest.yaml"
KREW = TESTDATA / "krew-manifests"


def as_index_entry(tmp_path: Path) -> Path:
    """krew-index stores a plugin as plugins/<name>.yaml; our repo keeps krew-manifest.yaml."""
    name = yaml.safe_load(MANIFEST.read_text())["metadata"]["name"]
    target = tmp_path / f"{name}.yaml"
    shutil.copy(MANIFEST, target)
    return target


def test_manifest_passes_krew_validation(tmp_path: Path) -> None:
    assert violations(as_index_entry(tmp_path)) == []


def test_manifest_follows_the_review_bot_tips(tmp_path: Path) -> None:
    assert bot_tips(as_index_entry(tmp_path)) == []


def test_manifest_version_is_the_package_version() -> None:
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]
    assert spec["version"] == f"v{__version__}"
    for platform in spec["platforms"]:
        assert f"/v{__version__}/kubectl-audit-v{__version__}.tar.gz" in platform["uri"]


def test_manifest_covers_linux_and_darwin_on_amd64_and_arm64() -> None:
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]
    pairs = {
        (p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"])
        for p in spec["platforms"]
    }
    assert pairs == {(o, a) for o in ("linux", "darwin") for a in ("amd64", "arm64")}
    assert "python3" in spec["caveats"]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in KREW.glob("*.yaml")), ids=lambda n: n.removesuffix(".yaml")
)
def test_the_rules_accept_real_krew_index_manifests(name: str) -> None:
    # Published index entries passed krew's CI, so our rules must accept every one.
    assert violations(KREW / name) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("badplugin.yaml", "unknown field 'BADKEYFIELD'"),
        ("badplugin2.yaml", "spec.version"),
        ("wrongname.yaml", "must equal the file name"),
    ],
)
def test_the_rules_reject_krews_own_bad_manifests(name: str, expected: str) -> None:
    problems = violations(KREW / "krew-testdata" / name)
    assert any(expected in problem for problem in problems), problems


def test_the_rules_catch_uppercase_sha_and_overlap(tmp_path: Path) -> None:
    doc = yaml.safe_load(MANIFEST.read_text())
    doc["spec"]["platforms"][0]["sha256"] = doc["spec"]["platforms"][0]["sha256"].upper()
    doc["spec"]["platforms"][1]["selector"] = {"matchLabels": {"os": "linux"}}
    target = tmp_path / "audit.yaml"
    target.write_text(yaml.safe_dump(doc))
    problems = violations(target)
    assert any("lowercase hex" in p for p in problems)
    assert any("both match linux/amd64" in p for p in problems)


@pytest.mark.slow
def test_manifest_sha256_matches_a_fresh_build(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build-release"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    digest = out.split("sha256 ", 1)[1].split()[0]
    for platform in yaml.safe_load(MANIFEST.read_text())["spec"]["platforms"]:
        assert platform["sha256"] == digest, "run scripts/build-release --update-manifest"
