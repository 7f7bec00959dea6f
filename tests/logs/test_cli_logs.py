"""`kubectl audit logs --file ...` end to end: CliRunner and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from click.testing import CliRunner

from kubectl_audit.cli import cli, main
from tests.conftest import ROOT
from tests.logs.conftest import MINIKUBE, OPENSHIFT, V1BETA1, json_lines


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, ["logs", *args], input=input, catch_exceptions=False)


@dataclass
class MainResult:
    exit_code: int
    stdout: str
    stderr: str


def run_main(*args: str) -> MainResult:
    """Through `main()`, which turns our errors into `error:` lines and exit codes."""
    runner = CliRunner()
    with runner.isolation() as (stdout, stderr, _):
        try:
            main(["logs", *args])
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        else:
            code = 0
        return MainResult(code, stdout.getvalue().decode(), stderr.getvalue().decode())


def test_table_shows_the_documented_columns() -> None:
    result = run("--file", str(MINIKUBE), "--user", "minikube-user", "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "TIME",
        "NODE",
        "USER",
        "VERB",
        "RESOURCE",
        "NAMESPACE/NAME",
        "CODE",
    ]
    assert len(lines) == 4
    first = lines[1].split()
    assert first[0].endswith("Z") and len(first[0]) == len("2026-01-21T19:14:04Z")
    assert first[1:3] == [MINIKUBE.name, "minikube-user"]


def test_wide_adds_stage_level_ip_agent_latency() -> None:
    result = run("--file", str(MINIKUBE), "--verb", "create", "-o", "wide", "--limit", "1")
    header = result.stdout.splitlines()[0].split()
    assert header[-5:] == ["STAGE", "LEVEL", "SOURCE-IP", "USER-AGENT", "LATENCY"]


def test_jsonl_is_byte_for_byte_the_log_lines() -> None:
    result = run("--file", str(MINIKUBE), "--denied", "-o", "jsonl")
    assert result.exit_code == 0
    expected = [
        line
        for line in MINIKUBE.read_bytes().splitlines()
        if json.loads(line).get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
    ]
    assert result.stdout_bytes.splitlines() == expected


def test_json_and_yaml_outputs_parse_back_to_the_events() -> None:
    as_json = run("--file", str(V1BETA1), "--user", "bob", "--verb", "create", "-o", "json")
    document = json.loads(as_json.stdout)
    expected = [
        e
        for e in json_lines(V1BETA1)
        if e.get("impersonatedUser", {}).get("username") == "bob" and e["verb"] == "create"
    ]
    assert document["kind"] == "EventList" and document["items"] == expected
    as_yaml = run("--file", str(V1BETA1), "--user", "bob", "--verb", "create", "-o", "yaml")
    assert list(yaml.safe_load_all(as_yaml.stdout)) == expected
    empty = run("--file", str(V1BETA1), "--user", "nobody", "-o", "json")
    assert json.loads(empty.stdout)["items"] == []


def test_no_match_is_exit_0_with_a_note_on_stderr() -> None:
    result = run("--file", str(MINIKUBE), "--user", "nobody")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No matching audit events." in result.stderr


def test_limit_and_tail() -> None:
    lines = MINIKUBE.read_bytes().splitlines()
    head = run("--file", str(MINIKUBE), "-o", "jsonl", "--limit", "4")
    assert head.stdout_bytes.splitlines() == lines[:4]
    tail = run("--file", str(MINIKUBE), "-o", "jsonl", "--tail", "3")
    assert tail.stdout_bytes.splitlines() == lines[-3:]
    both = run("--file", str(MINIKUBE), "-o", "jsonl", "--tail", "3", "--limit", "1")
    assert both.stdout_bytes.splitlines() == lines[-3:-2]


def test_stats_reports_what_fills_the_log() -> None:
    result = run("--file", str(OPENSHIFT / "vrl-audit_in.log"), "--stats", "-o", "json")
    stats = json.loads(result.stdout)
    events = json_lines(OPENSHIFT / "vrl-audit_in.log")
    assert stats["events"] == len(events) == 100
    assert stats["bytes"] == (OPENSHIFT / "vrl-audit_in.log").stat().st_size
    top_user = stats["top"]["user"][0]
    by_user: dict[str, int] = {}
    for line in (OPENSHIFT / "vrl-audit_in.log").read_bytes().splitlines():
        user = json.loads(line)["user"]["username"]
        by_user[user] = by_user.get(user, 0) + len(line) + 1
    assert top_user["value"] == max(by_user, key=by_user.__getitem__)
    assert top_user["bytes"] == max(by_user.values())
    text = run("--file", str(OPENSHIFT / "vrl-audit_in.log"), "--stats")
    assert "TOP USER" in text.stdout and "TOP VERB" in text.stdout


def test_skipped_lines_make_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(MINIKUBE.read_bytes()[:5000])  # cut in the middle of a line
    result = run("--file", str(path), "-o", "jsonl")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "truncated" in warnings[0] and str(path) in warnings[0]


def test_usage_errors_exit_2() -> None:
    for args in (
        ["--file", str(MINIKUBE), "--code", "4x"],
        ["--file", str(MINIKUBE), "--resource", "pods/"],
        ["--file", str(MINIKUBE), "--since", "yesterday"],
        ["--file", str(MINIKUBE), "-n", "a", "-A"],
        ["--file", str(MINIKUBE), "--level", "verbose"],
        ["--file", str(MINIKUBE), "--node", "cp-1"],
        ["--file", str(MINIKUBE), "--stats", "--tail", "3"],
    ):
        result = run_main(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith(("error:", "Error:", "Usage:")), result.stderr
        assert "Traceback" not in result.stderr


def test_stdin_dash(tmp_path: Path) -> None:
    result = run("--file", "-", "--verb", "watch", "-o", "jsonl", input=MINIKUBE.read_bytes())
    expected = [
        line for line in MINIKUBE.read_bytes().splitlines() if json.loads(line)["verb"] == "watch"
    ]
    assert result.stdout_bytes.splitlines() == expected


def _subprocess(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kubectl_audit", "logs", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_subprocess_missing_file_and_bad_kubeconfig(tmp_path: Path) -> None:
    missing = _subprocess("--file", str(tmp_path / "nope.log"))
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith(f"error: {tmp_path / 'nope.log'}: no such file")
    assert b"Traceback" not in missing.stderr
    directory = _subprocess("--file", str(tmp_path))
    assert directory.returncode == 2 and b"is a directory" in directory.stderr
    cluster = _subprocess("--user", "alice", "--kubeconfig", str(tmp_path / "none"))
    assert cluster.returncode == 1
    assert b"kubeconfig" in cluster.stderr and b"Traceback" not in cluster.stderr


def test_subprocess_reads_and_filters(tmp_path: Path) -> None:
    result = _subprocess("--file", str(MINIKUBE), "--code", "4xx", "--verb", "get", "-o", "jsonl")
    assert result.returncode == 0, result.stderr
    expected = [
        line
        for line in MINIKUBE.read_bytes().splitlines()
        if json.loads(line)["verb"] == "get"
        and 400 <= json.loads(line)["responseStatus"]["code"] < 500
    ]
    assert expected and result.stdout.splitlines() == expected


def test_subprocess_reader_leaving_early_is_not_an_error(tmp_path: Path) -> None:
    big = tmp_path / "audit.log"
    big.write_bytes(MINIKUBE.read_bytes() * 20)
    process = subprocess.Popen(
        [sys.executable, "-m", "kubectl_audit", "logs", "--file", str(big), "-o", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0, stderr
    assert first == MINIKUBE.read_bytes().splitlines(keepends=True)[0]
    assert b"Traceback" not in stderr and b"Error" not in stderr


def test_follow_on_stdin_ends_with_its_input() -> None:
    first = MINIKUBE.read_bytes().splitlines(keepends=True)[0]
    result = _subprocess("--file", "-", "-f", "-o", "jsonl", stdin=first)
    assert result.returncode == 0
    assert result.stdout == first


def test_yaml_input_is_explained(audit_logs: Path) -> None:
    result = run("--file", str(audit_logs / "khi-oss-kind-v1.32-event.yaml"))
    assert result.exit_code == 0
    assert "hint: no line was an audit event" in result.stderr
    assert "YAML" in result.stderr
