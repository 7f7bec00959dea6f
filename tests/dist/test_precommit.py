"""Our .pre-commit-hooks.yaml, run by the real `pre-commit` in a sample repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubectl_audit.policy.presets import read_preset, read_preset_tests
from tests.conftest import ROOT, TESTDATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("pre-commit") is None, reason="pre-commit is not installed"),
]

CONFIG = """\
repos:
- repo: {repo}
  rev: {rev}
  hooks:
  - id: kubectl-audit-validate
  - id: kubectl-audit-test
    args: [audit/policy.yaml, audit/policy.tests.yaml]
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


@pytest.fixture(scope="module")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("sample")
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "ci@example.com")
    git(repo, "config", "user.name", "ci")
    (repo / "audit").mkdir()
    (repo / "audit" / "policy.yaml").write_text(read_preset("recommended"))
    (repo / "audit" / "policy.tests.yaml").write_text(read_preset_tests("recommended"))
    rev = git(ROOT, "rev-parse", "HEAD")
    (repo / ".pre-commit-config.yaml").write_text(CONFIG.format(repo=ROOT, rev=rev))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sample")
    return repo


def pre_commit(repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    return subprocess.run(
        ["pre-commit", "run", "--all-files"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_hooks_pass_on_a_valid_policy_and_fail_on_a_broken_one(
    sample_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("pre-commit-home")
    result = pre_commit(sample_repo, home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit policy unit tests" in result.stdout

    broken = TESTDATA / "policies" / "openshift-logging-osd-example-policy-nonstandard.yaml"
    shutil.copy(broken, sample_repo / "audit" / "osd-policy.yaml")
    git(sample_repo, "add", "-A")
    result = pre_commit(sample_repo, home)
    assert result.returncode == 1
    assert "osd-policy.yaml" in result.stdout
    assert "unknown group version field" in result.stdout
