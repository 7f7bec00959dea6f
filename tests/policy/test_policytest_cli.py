"""`kubectl audit test` through the real click root, and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_audit.errors import AuditError
from tests.conftest import TESTDATA
from tests.policy.test_explain_cli import invoke

GKE = str(TESTDATA / "policies" / "gke-gce-configure-helper-audit-policy.yaml")

PASSING = """\
tests:
- name: secrets are never logged with bodies
  request: {user: alice, groups: [dev], verb: get, namespace: default, resource: secrets,
            name: db-password}
  expect: {level: Metadata, omitStages: [RequestReceived], omitManagedFields: false, rule: 13}
- name: health checks are dropped
  request: {verb: get, path: /healthz}
  expect: {level: None, rule: 8}
"""

FAILING = """\
tests:
- name: health checks are dropped
  request: {verb: get, path: /healthz}
  expect: {level: None}
- name: configmaps are logged with bodies
  request: {user: bob, verb: create, namespace: prod, resource: configmaps}
  expect: {level: RequestResponse}
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("pass.yaml", PASSING), ("fail.yaml", FAILING)):
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def test_all_pass_exit_0(files: dict[str, str]) -> None:
    run = invoke("test", GKE, files["pass.yaml"])
    assert run.code == 0, (run.stdout, run.stderr, run.error)
    assert "PASS  secrets are never logged with bodies" in run.stdout
    assert run.stdout.rstrip().endswith("2 passed, 0 failed")


def test_a_failure_exits_1_naming_expected_and_actual(files: dict[str, str]) -> None:
    run = invoke("test", GKE, files["pass.yaml"], files["fail.yaml"])
    assert run.code == 1
    assert f"FAIL  configmaps are logged with bodies ({files['fail.yaml']}:5)" in run.stdout
    assert "level: expected RequestResponse, got Metadata; decided by rules[13]" in run.stdout
    assert run.stdout.rstrip().endswith("3 passed, 1 failed")


def test_json_shape(files: dict[str, str]) -> None:
    run = invoke("test", GKE, files["fail.yaml"], "-o", "json")
    assert run.code == 1
    report = json.loads(run.stdout)
    assert report["policy"] == GKE
    assert (report["passed"], report["failed"]) == (1, 1)
    failed = report["results"][1]
    assert failed == {
        "file": files["fail.yaml"],
        "name": "configmaps are logged with bodies",
        "line": 5,
        "passed": False,
        "mismatches": ["level"],
        "expected": {"level": "RequestResponse"},
        "actual": {
            "level": "Metadata",
            "omitStages": ["RequestReceived"],
            "omitManagedFields": False,
            "rule": 13,
        },
    }


def test_preset_runs_its_own_tests() -> None:
    run = invoke("test", "--preset", "recommended")
    assert run.code == 0, run.stdout
    assert " 0 failed" in run.stdout


def test_preset_with_other_test_file(files: dict[str, str]) -> None:
    # GKE's rule indices do not fit the metadata preset: level passes, rule fails.
    run = invoke("test", "--preset", "metadata", files["pass.yaml"], "-o", "json")
    assert run.code == 1
    report = json.loads(run.stdout)
    assert [r["mismatches"] for r in report["results"]] == [["rule"], ["level", "rule"]]


def test_malformed_test_file_exits_2_naming_test_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "tests:\n- name: typo\n  request: {verb: get, resource: pods}\n"
        "  expect: {level: None, omitStage: [Panic]}\n"
    )
    run = invoke("test", GKE, str(bad))
    assert run.code == 2
    assert isinstance(run.error, AuditError)
    assert f"{bad}:4: tests[0] \"typo\": expect: unknown field 'omitStage'" in run.error.message


def test_broken_policy_exits_1(tmp_path: Path, files: dict[str, str]) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")
    run = invoke("test", str(broken), files["pass.yaml"])
    assert run.code == 1
    assert str(broken) in str(run.error)


@pytest.mark.parametrize(
    "args",
    [
        (),
        (GKE,),
        ("--preset", "nope"),
        (GKE, "/nonexistent/tests.yaml"),
    ],
)
def test_usage_and_unreadable_exit_2(args: tuple[str, ...]) -> None:
    assert invoke("test", *args).code == 2


def test_help_documents_the_format_and_json_shape() -> None:
    run = invoke("test", "--help")
    assert run.code == 0
    assert "resourceRequest: true" in run.stdout
    assert '"mismatches"' in run.stdout


def test_subprocess_test(files: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubectl_audit", "test", GKE, files["fail.yaml"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "1 passed, 1 failed" in result.stdout
    assert result.stderr == ""
