"""Cluster commands never import the generated API classes or models of the kubernetes client.

kubernetes>=37's CoreV1Api module pulls in hundreds of pydantic model modules, about a
second of start-up per command; kube/rest.py speaks plain JSON instead. What is checked is
sys.modules after the command ran, in a fresh interpreter, not a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import FAST
from tests.kubesim.cluster import Cluster

# Runs the CLI as `python -m kubectl_audit` would, then lists the client's API and model
# modules that got imported (the command's own exit goes through SystemExit).
_PROBE = """
import json, sys
from kubectl_audit.cli import main

report, argv = sys.argv[1], sys.argv[2:]
code = 0
try:
    main(argv)
except SystemExit as done:
    code = done.code
loaded = sorted(
    name for name in sys.modules
    if name.startswith(("kubernetes.client.api.", "kubernetes.client.models."))
)
with open(report, "w") as out:
    json.dump({"code": code, "loaded": loaded}, out)
"""


def run_probe(tmp_path: Path, kubeconfig: Path, *args: str) -> tuple[int, list[str], str]:
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert report.exists(), done.stderr
    found = json.loads(report.read_text())
    return found["code"], found["loaded"], done.stdout + done.stderr


@pytest.mark.cluster
def test_cluster_commands_import_no_generated_api_or_models(
    kubesim: Cluster, tmp_path: Path
) -> None:
    node = kubesim.control_plane_nodes[0]
    commands = [
        ("status",),  # nodes, kube-system pods, /version
        ("enable", "--dry-run", *FAST),  # + kubeadm-config, a node-agent pod and its exec
        ("cleanup",),  # + pods in every namespace by label, node locks through exec
    ]
    for command in commands:
        code, loaded, output = run_probe(tmp_path, kubesim.kubeconfig, *command)
        assert code in (0, 1), output  # status answers 1: audit is off in a fresh cluster
        assert node in output, output  # it did reach the cluster
        assert "kubernetes.client.api.core_v1_api" not in loaded, command
        assert loaded == [], f"{' '.join(command)} imported {loaded}"
