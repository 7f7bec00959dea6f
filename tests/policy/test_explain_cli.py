"""`kubectl audit explain` through the real click root, and once as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubectl_audit.cli import cli
from kubectl_audit.errors import AuditError
from tests.conftest import TESTDATA

GKE = str(TESTDATA / "policies" / "gke-gce-configure-helper-audit-policy.yaml")
FALCO = str(TESTDATA / "policies" / "falco-k8saudit-audit-policy.yaml")


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    error: BaseException | None


def invoke(*args: str) -> Run:
    """Run like `main()` does: our errors become their exit code, click's its own."""
    result = CliRunner().invoke(cli, list(args))
    error = result.exception
    code = result.exit_code
    if isinstance(error, AuditError):
        code = error.exit_code
    elif error is not None and not isinstance(error, SystemExit):
        raise error
    return Run(code, result.stdout, result.stderr, error)


def explain_json(*args: str) -> dict[str, object]:
    run = invoke("explain", *args, "-o", "json")
    assert run.code == 0, (run.stdout, run.stderr, run.error)
    return json.loads(run.stdout)


def test_json_is_exactly_the_decision() -> None:
    assert explain_json("-f", GKE, "get", "secrets", "-n", "prod", "--as", "alice") == {
        "level": "Metadata",
        "omitStages": ["RequestReceived"],
        "omitManagedFields": False,
        "rule": 13,
    }


@pytest.mark.parametrize(
    ("args", "level", "rule"),
    [
        (("get", "/healthz/etcd"), "None", 8),
        (("watch", "endpoints", "--as", "system:kube-proxy"), "None", 0),
        (("get", "nodes/n1", "--subresource", "status", "--as", "system:node:n1",
          "--as-group", "system:nodes"), "None", 3),
        (("patch", "nodes/n1", "--subresource", "status", "--as-group", "system:nodes", "--as",
          "system:node:n1"), "Request", 11),
        (("list", "deploy", "-A", "--as", "alice"), "Request", 14),
        (("create", "deployments.apps", "-n", "prod", "--as", "alice"), "RequestResponse", 15),
        (("create", "widgets.example.com", "-n", "prod"), "Metadata", 16),
        (("get", "/metrics"), "Metadata", 16),
    ],
)  # fmt: skip
def test_gke_decisions(args: tuple[str, ...], level: str, rule: int) -> None:
    decision = explain_json("-f", GKE, *args)
    assert (decision["level"], decision["rule"]) == (level, rule)


def test_no_user_information_without_as() -> None:
    # GKE's rule 0 drops `system:kube-proxy` watches; without --as it cannot match.
    with_user = explain_json("-f", GKE, "watch", "endpoints", "--as", "system:kube-proxy")
    without = explain_json("-f", GKE, "watch", "endpoints")
    assert with_user["rule"] == 0
    assert without["rule"] != 0
    run = invoke("explain", "-f", GKE, "watch", "endpoints")
    assert "Note: without --as the request carries no user information" in run.stdout
    assert "Note:" not in invoke("explain", "-f", GKE, "watch", "endpoints", "--as", "a").stdout


def test_text_output_names_rule_line_and_yaml() -> None:
    run = invoke("explain", "-f", FALCO, "create", "configmaps", "-n", "kube-system", "--as", "bob")
    assert run.code == 0, run.stderr
    out = run.stdout
    assert "Level:              Request\n" in out
    assert "Rule:               rules[6] (line 51)" in out
    assert "    - level: Request" in out
    assert "      namespaces:\n      - kube-system" in out
    assert "- configmaps" in out
    assert "Omitted stages:" in out
    assert "Omit managedFields: false" in out
    assert "user bob (groups: system:authenticated)" in out


def test_text_output_when_nothing_matches() -> None:
    from kubectl_audit.policy.loader import load_policy
    from kubectl_audit.policy.presets import read_preset

    recommended = load_policy(read_preset("recommended")).policy
    assert recommended is not None
    catch_all = len(recommended.rules) - 1
    run = invoke("explain", "--preset", "recommended", "get", "pods", "--as", "x")
    assert f"Rule:               rules[{catch_all}] (line " in run.stdout
    none_matched = invoke(
        "explain", "-f", str(TESTDATA / "policies" / "audit2rbac-demo-policy.yaml"), "get", "pods"
    )
    assert none_matched.code == 0
    assert "none matched: the request is not logged at all" in none_matched.stdout
    assert "Level:              None" in none_matched.stdout


def test_preset_instead_of_file() -> None:
    decision = explain_json("--preset", "recommended", "create", "po/web", "--subresource", "exec")
    assert decision == {
        "level": "Metadata",
        "omitStages": ["RequestReceived"],
        "omitManagedFields": True,
        "rule": 1,
    }


def test_notes_go_to_stderr() -> None:
    run = invoke("explain", "-f", GKE, "get", "widgets", "-o", "json")
    assert run.code == 0
    assert json.loads(run.stdout)["rule"] == 14  # core group: GKE's get/list/watch rule
    assert "taken literally" in run.stderr


def test_policy_that_does_not_load_exits_1_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    run = invoke("explain", "-f", str(broken), "get", "pods")
    assert run.code == 1
    assert isinstance(run.error, AuditError)
    assert f"{broken}:4: rules[0].level" in run.error.message


@pytest.mark.parametrize(
    "args",
    [
        ("get", "pods"),  # no policy
        ("-f", GKE, "--preset", "metadata", "get", "pods"),  # two policies
        ("-f", GKE, "get", "pods/"),
        ("-f", GKE, "get", "pods", "--as-group", "dev"),
        ("--preset", "nope", "get", "pods"),
        ("-f", GKE, "get"),
        ("-f", GKE, "get", "pods", "-o", "yaml"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert invoke("explain", *args).code == 2


def test_unreadable_policy_exits_2(tmp_path: Path) -> None:
    run = invoke("explain", "-f", str(tmp_path / "missing.yaml"), "get", "pods")
    assert run.code == 2
    assert "cannot read policy" in str(run.error)


def test_subprocess_explain() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubectl_audit", "explain", "-f", GKE, "get", "secrets", "-o",
         "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rule"] == 13


def test_subprocess_broken_policy_has_no_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "p.yaml"
    broken.write_text("kind: Policy\nrules:\n- level: None\n")
    result = subprocess.run(
        [sys.executable, "-m", "kubectl_audit", "explain", "-f", str(broken), "get", "pods"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
