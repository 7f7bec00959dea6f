"""The plugin as kubectl sees it: discovery, usage text, version, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from kubectl_audit import __version__

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@needs_kubectl
def test_kubectl_plugin_list_finds_the_plugin() -> None:
    result = run("kubectl", "plugin", "list")
    assert any(line.rstrip().endswith("/kubectl-audit") for line in result.stdout.splitlines())
    if result.returncode != 0:
        # pyenv puts both its shim and the real script on PATH; kubectl calls that a warning.
        warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
        assert warnings, result.stderr
        assert all("kubectl-audit is overshadowed" in line for line in warnings), result.stderr


@needs_kubectl
def test_help_through_kubectl_reads_kubectl_audit() -> None:
    result = run("kubectl", "audit", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: kubectl audit [OPTIONS] COMMAND [ARGS]...")
    assert "version" in result.stdout


@needs_kubectl
def test_version_through_kubectl() -> None:
    result = run("kubectl", "audit", "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kubectl-audit v{__version__}"


def test_version_json_via_python_m() -> None:
    result = run(sys.executable, "-m", "kubectl_audit", "version", "-o", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["version"] == __version__
    assert info["yaml"] in {"libyaml", "pure-python"}


def test_subcommand_help_uses_kubectl_prefix() -> None:
    result = run(sys.executable, "-m", "kubectl_audit", "version", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: kubectl audit version")


def test_unknown_command_is_a_usage_error() -> None:
    result = run(sys.executable, "-m", "kubectl_audit", "frobnicate")
    assert result.returncode == 2
    assert "No such command 'frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_value_is_a_usage_error() -> None:
    result = run(sys.executable, "-m", "kubectl_audit", "version", "-o", "xml")
    assert result.returncode == 2
    assert "Invalid value for '-o'" in result.stderr
