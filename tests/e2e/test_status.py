"""status end to end: the real CLI against tests/kubesim (issue 5, status part).

Faults are made the way people make them: by hand-editing kube-apiserver.yaml on the node
and letting the simulated kubelet restart the apiserver from it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from kubectl_audit.apiserver.manifest import render_enabled
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.cli import main
from kubectl_audit.policy.presets import read_preset
from tests.conftest import TESTDATA
from tests.e2e.conftest import FAST, kubectl_audit
from tests.kubesim.cluster import Cluster

MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"
POLICY = read_preset("recommended").encode()
POLICY_SHA = hashlib.sha256(POLICY).hexdigest()
EVENTS = (TESTDATA / "audit-logs" / "minikube-v1.34-audit-extract.jsonl").read_bytes()


def status(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, in this process: the Kubernetes client is imported once, not
    per call (it takes seconds). `kubectl_audit()` (a subprocess) is used where the process
    boundary matters."""
    argv = ["status", *args, "--kubeconfig", str(cluster.kubeconfig)]
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exit_:
            code = exit_.code
    assert isinstance(code, int), code
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def hand_edit(cluster: Cluster, node: str, *, drop_mount: str) -> None:
    """Audit flags written by hand with one mount forgotten (no kubectl-audit record)."""
    root = cluster.node_root(node)
    (root / "etc/kubernetes/audit").mkdir(parents=True, exist_ok=True)
    (root / "etc/kubernetes/audit/policy.yaml").write_bytes(POLICY)
    manifest = root / MANIFEST
    pod = yaml.safe_load(
        render_enabled(manifest.read_text(), AuditSettings(policy_sha256=POLICY_SHA))
    )
    container = pod["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != drop_mount]
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != drop_mount]
    del pod["metadata"]["annotations"]["kubectl-audit.io/managed"]
    manifest.write_text(yaml.safe_dump(pod))


def wait_for(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.cluster
def test_single_control_plane_off_on_deep_and_a_hand_broken_log_mount(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    before = kubectl_audit(kubesim.kubeconfig, "status", timeout=120)
    assert before.returncode == 1, before.stderr
    assert "audit logging is off" in before.stdout and "kubectl audit enable" in before.stdout
    assert before.stdout.splitlines()[1].split()[:2] == [node, "off"]

    enabled = kubectl_audit(kubesim.kubeconfig, "enable", "--yes", *FAST)
    assert enabled.returncode == 0, enabled.stderr

    after = status(kubesim, "-o", "json")
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["kind"] == "AuditStatus" and report["ok"] is True
    [entry] = report["nodes"]
    assert entry["node"] == node and entry["audit"]["enabled"] is True
    assert entry["policy"] == {
        "sha256": POLICY_SHA,
        "identifiedAs": "preset:recommended",
        "source": "preset",
    }
    assert {f["name"]: f["value"] for f in entry["flags"]} == {
        "--audit-log-maxage": "30",
        "--audit-log-maxbackup": "10",
        "--audit-log-maxsize": "100",
        "--audit-log-path": "/var/log/kubernetes/audit/audit.log",
        "--audit-policy-file": "/etc/kubernetes/audit/policy.yaml",
    }
    assert entry["mounts"]["log"]["type"] == "DirectoryOrCreate"
    assert entry["mounts"]["policy"]["readOnly"] is True
    assert entry["apiserver"]["ready"] is True
    # v1.36 -> cis-1.12: the four log flags are 1.2.16-1.2.19.
    assert [(c["id"], c["status"]) for c in entry["cis"]] == [
        ("1.2.16", "PASS"), ("1.2.17", "PASS"), ("1.2.18", "PASS"), ("1.2.19", "PASS"),
        ("3.2.1", "PASS"), ("3.2.2", "PASS"),
    ]  # fmt: skip
    assert {c["benchmark"] for c in entry["cis"]} == {"cis-1.12"}
    assert [p for p in entry["problems"] if p["severity"] == "error"] == []

    # --deep without a pod: the log through the kubelet /logs proxy only, with an older
    # compressed backup next to it (real events from testdata, gzipped as lumberjack does).
    audit_log = kubesim.node_root(node) / "var/log/kubernetes/audit/audit.log"
    backup = audit_log.with_name("audit-2026-01-21T20-23-02.000.log.gz")
    backup.write_bytes(gzip.compress(EVENTS))
    deep = status(kubesim, "--deep", "--no-pod", "-o", "yaml")
    assert deep.returncode == 0, deep.stderr
    log = yaml.safe_load(deep.stdout)["nodes"][0]["deep"]["log"]
    assert log["via"] == "kubelet /logs proxy"
    assert [f["name"] for f in log["files"]] == [backup.name, "audit.log"]
    assert log["files"][0]["compressed"] is True
    assert log["files"][0]["size"] == backup.stat().st_size
    assert log["oldestEvent"] == "2026-01-21T19:14:04.979707Z"
    assert 0 < log["totalBytes"] - backup.stat().st_size <= audit_log.stat().st_size
    assert log["oldestEvent"] <= log["newestEvent"]
    assert log["retentionSeconds"] > 0 and log["freeBytes"] is None
    assert "node-agent" not in deep.stderr

    # --deep with the node-agent pod: the policy on disk and free disk too.
    full = status(kubesim, "--deep")
    assert full.returncode == 0, full.stderr
    assert "matches the running policy" in full.stdout
    assert "through the kubelet /logs proxy" in full.stdout
    assert "at this rate the log reaches back ~" in full.stdout
    assert "free disk " in full.stdout
    assert "(evaluated on /etc/kubernetes/audit/policy.yaml on the node)" in full.stdout
    assert "kube-apiserver.yaml: the same audit flags and policy as the running" in full.stdout

    # Without RBAC for nodes/proxy the node-agent pod reads the log instead, and says why.
    kubesim.forbid("get", "nodes/proxy")
    fallback = status(kubesim, "--deep", "-o", "json")
    assert fallback.returncode == 0, fallback.stderr
    found = json.loads(fallback.stdout)["nodes"][0]["deep"]
    assert found["log"]["via"] == "node-agent pod" and found["log"]["freeBytes"] > 0
    [why] = found["skipped"]
    assert why.startswith("the kubelet /logs proxy: permission denied") and "nodes/proxy" in why
    kubesim.allow("get", "nodes/proxy")

    # A hand edit that forgets the log mount: events stay in the container.
    hand_edit(kubesim, node, drop_mount="kubectl-audit-log")
    broken = wait_for(
        "the apiserver restarted from the hand-edited manifest",
        lambda: (r := status(kubesim)).returncode == 1 and "NOT-MOUNTED" in r.stdout and r,
    )
    assert "log path not mounted" in broken.stdout and "lost with it" in broken.stdout
    assert "fix: mount the log's directory from the host" in broken.stdout
    assert broken.stdout.splitlines()[1].split()[1] == "broken"

    # A manifest edit the kubelet cannot read: --deep says so while the old apiserver still
    # runs. (A real kubelet drops a pod whose file no longer parses at its next relist, so
    # this is the window before that: the kubelet here has not noticed the edit yet.)
    kubesim.kubelet_needs_restart(node)
    manifest = kubesim.node_root(node) / MANIFEST
    manifest.write_text(manifest.read_text() + "  bad: [\n")
    typo = status(kubesim, "--deep", "--no-pod")
    assert "the policy file and free disk: they need the node-agent pod" in typo.stdout
    unreadable = status(kubesim, "--deep", "-o", "json")
    assert unreadable.returncode == 1
    deep = json.loads(unreadable.stdout)["nodes"][0]["deep"]
    assert deep["manifest"]["auditFlags"] is None
    codes = [p["code"] for p in json.loads(unreadable.stdout)["nodes"][0]["problems"]]
    assert "manifest-unreadable" in codes and "log-not-mounted" in codes


@pytest.mark.cluster
def test_three_control_planes_one_with_the_policy_not_mounted(kubesim_ha: Cluster) -> None:
    cp1, cp2, cp3 = kubesim_ha.control_plane_nodes
    hand_edit(kubesim_ha, cp2, drop_mount="kubectl-audit-policy")

    def cp2_down():
        result = status(kubesim_ha, "-o", "json")
        if result.returncode != 1 or not result.stdout:
            return None
        nodes = {n["node"]: n for n in json.loads(result.stdout)["nodes"]}
        return nodes if nodes[cp2]["flags"] and not nodes[cp2]["apiserver"]["ready"] else None

    nodes = wait_for("cp2's apiserver to fail on the missing policy mount", cp2_down)
    assert list(nodes) == [cp1, cp2, cp3]
    codes = {n: [p["code"] for p in nodes[n]["problems"]] for n in nodes}
    assert "policy-not-mounted" in codes[cp2] and "apiserver-not-ready" in codes[cp2]
    assert codes[cp1] == codes[cp3] == ["audit-off"]
    assert nodes[cp2]["mounts"]["policy"] is None

    text = status(kubesim_ha, "--node", cp2)
    assert text.returncode == 1
    rows = text.stdout.split("\n\n")[0].splitlines()
    assert len(rows) == 2 and rows[1].split()[:3] == [cp2, "broken", "recommended"]
    assert "policy path not mounted" in text.stdout and "will not start" in text.stdout

    unknown = status(kubesim_ha, "--node", "kubesim-worker")
    assert unknown.returncode == 2
    assert "not a control-plane node: kubesim-worker" in unknown.stderr


def test_help_states_the_exit_status() -> None:
    result = kubectl_audit(Path("/nonexistent"), "status", "--help")
    assert result.returncode == 0
    assert "Exit status: 0 when audit logging is on and healthy" in " ".join(result.stdout.split())


@pytest.mark.cluster
def test_k3s_is_answered_from_its_service_log(kubesim: Cluster) -> None:
    """A kubesim node marked as a k3s server, with k3s's files in its root (OpenRC layout)."""
    from kubernetes import client, config

    node = kubesim.control_plane_nodes[0]
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubesim.kubeconfig)))
    core.patch_node(node, {"metadata": {"annotations": {"k3s.io/node-args": '["server"]'}}})
    root = kubesim.node_root(node)
    server = root / "var/lib/rancher/k3s/server"
    (server / "logs").mkdir(parents=True)
    (server / "audit.yaml").write_bytes(POLICY)
    (server / "logs" / "audit.log").write_bytes(EVENTS)
    (root / "var/log/k3s.log").write_text(
        'time="2026-11-28T11:30:40Z" level=info msg="Running kube-apiserver '
        "--audit-log-maxage=30 --audit-log-maxbackup=10 --audit-log-maxsize=100 "
        "--audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log "
        '--audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml --secure-port=6444"\n'
    )

    shallow = status(kubesim)
    assert shallow.returncode == 1
    assert "looks like k3s" in shallow.stdout and "journalctl -u k3s" in shallow.stdout

    deep = status(kubesim, "--deep", "-o", "json")
    assert deep.returncode == 0, deep.stdout + deep.stderr
    [entry] = json.loads(deep.stdout)["nodes"]
    assert entry["runsAs"] == "k3s" and entry["ok"] is True
    assert {c["benchmark"] for c in entry["cis"]} == {"k3s-cis-1.8"}
    assert [c["status"] for c in entry["cis"]] == ["PASS"] * 6
    log = entry["deep"]["log"]
    assert log["via"] == "node-agent pod" and log["totalBytes"] == len(EVENTS)
    assert log["oldestEvent"].startswith("2026-01-21T19:14:04")
    assert entry["deep"]["policy"]["sha256"] == POLICY_SHA
    # The newest event is months old: the apiserver does not write there any more.
    assert [p["code"] for p in entry["problems"]] == ["log-stale"]
