"""`kubectl audit logs` from the cluster, end to end against tests/kubesim (issue 5).

The real CLI, through the real `kubernetes` client: after `enable`, the plugin's own
requests are in the nodes' audit logs, and `logs` finds them over the kubelet `/logs`
proxy and over the node-agent pod, on one and on three control planes.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.e2e.conftest import FAST, kubectl_audit
from tests.kubesim.cluster import Cluster

LOG = "var/log/kubernetes/audit/audit.log"


def enable(cluster: Cluster, *args: str) -> None:
    result = kubectl_audit(cluster.kubeconfig, "enable", "--yes", *FAST, *args)
    assert result.returncode == 0, result.stderr


def logs(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl_audit(cluster.kubeconfig, "logs", *args, timeout=120)


def events(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def lines_on_node(cluster: Cluster, node: str, predicate) -> list[dict]:
    """Every event of the node's current log that satisfies `predicate`, read directly."""
    found = []
    for line in (cluster.node_root(node) / LOG).read_bytes().splitlines():
        event = json.loads(line)
        if predicate(event):
            found.append(event)
    return found


def touch_configmaps(cluster: Cluster, user: str, count: int) -> None:
    """`count` requests by `user`: the events a selective filter picks out. A connection
    each, so that the simulator's round robin spreads them over every apiserver."""
    kubeconfig = str(cluster.kubeconfig_for(user))
    for _ in range(count):
        with config.new_client_from_config(config_file=kubeconfig) as api_client:
            client.CoreV1Api(api_client).list_namespaced_config_map("default")


@pytest.mark.cluster
def test_one_control_plane_over_proxy_and_debug_pod(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    off = logs(kubesim, "--user", "alice")
    assert off.returncode == 1, off.stderr
    assert "audit logging is off" in off.stderr and "kubectl audit enable" in off.stderr

    enable(kubesim)
    touch_configmaps(kubesim, "alice", 3)
    expected = lines_on_node(kubesim, node, lambda e: e["user"]["username"] == "alice")
    assert len(expected) >= 3

    for via in ("node-proxy", "debug-pod"):
        found = events(logs(kubesim, "--user", "alice", "-o", "jsonl", "--via", via))
        assert found == expected, via

    # Without RBAC for the kubelet proxy, auto falls back to the node-agent pod (and says so).
    kubesim.forbid("get", "nodes/proxy")
    refused = logs(kubesim, "--user", "alice", "--via", "node-proxy")
    assert refused.returncode == 1 and "cannot get nodes/proxy" in refused.stderr, refused.stderr
    auto = logs(kubesim, "--user", "alice", "-o", "jsonl")
    assert events(auto) == expected and "reading through a node-agent pod" in auto.stderr
    kubesim.allow("get", "nodes/proxy")

    # The plugin's own requests show up: the node-agent pod's execs of the last query
    # (its grep on the node), and its listing of the nodes, in a table by node.
    execs = events(logs(kubesim, "--resource", "pods/exec", "-o", "jsonl"))
    assert any("grep" in e["requestURI"] and "alice" in e["requestURI"] for e in execs)
    table = logs(kubesim, "--verb", "list", "--resource", "nodes", "--tail", "3")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["TIME", "NODE", "USER"] and len(rows) == 4
    assert all(row.split()[1] == node for row in rows[1:])

    # A log outside /var/log (which is all the kubelet serves): auto reads it through the
    # node-agent pod; asking for the proxy is a usage error that says why.
    enable(kubesim, "--log-path", "/srv/audit/audit.log")
    touch_configmaps(kubesim, "alice", 2)
    refused = logs(kubesim, "--user", "alice", "--via", "node-proxy")
    assert refused.returncode == 2 and "outside /var/log" in refused.stderr
    moved = kubesim.node_root(node) / "srv/audit/audit.log"
    expected = [e for e in map(json.loads, moved.read_bytes().splitlines()) if by_user("alice")(e)]
    assert len(expected) >= 2
    assert events(logs(kubesim, "--user", "alice", "-o", "jsonl")) == expected

    # No node-agent pod is left behind.
    pods = client.CoreV1Api(
        config.new_client_from_config(config_file=str(kubesim.kubeconfig))
    ).list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=kubectl-audit")
    assert pods.items == []


@pytest.mark.cluster
def test_three_control_planes_merged_by_time(kubesim_ha: Cluster) -> None:
    nodes = kubesim_ha.control_plane_nodes
    enable(kubesim_ha, "--node", nodes[0])
    touch_configmaps(kubesim_ha, "erin", 3)  # round robin: one reaches the first node
    partial = logs(kubesim_ha, "--user", "erin", "-o", "jsonl")
    for node in nodes[1:]:  # audit off there: said once per node, the others still read
        assert f"warning: {node}: audit logging is off" in partial.stderr
    assert events(partial) == lines_on_node(kubesim_ha, nodes[0], by_user("erin")) != []

    enable(kubesim_ha)
    touch_configmaps(kubesim_ha, "bob", 6)
    expected = []
    for node in nodes:
        expected += lines_on_node(kubesim_ha, node, lambda e: e["user"]["username"] == "bob")
    expected.sort(key=lambda e: e["stageTimestamp"])

    for via in ("node-proxy", "debug-pod"):
        result = logs(kubesim_ha, "--user", "bob", "-o", "jsonl", "--via", via)
        found = events(result)
        assert sorted(map(json.dumps, found)) == sorted(map(json.dumps, expected)), via
        times = [e["stageTimestamp"] for e in found]
        assert times == sorted(times), via

    assert all(
        lines_on_node(kubesim_ha, n, lambda e: e["user"]["username"] == "bob") for n in nodes
    )
    one = events(logs(kubesim_ha, "--user", "bob", "-o", "jsonl", "--node", nodes[1]))
    assert one == lines_on_node(kubesim_ha, nodes[1], lambda e: e["user"]["username"] == "bob")
    # A node whose kubelet is down: a warning naming it; the others' events still come.
    kubesim_ha.break_kubelet(nodes[2])
    broken = logs(kubesim_ha, "--user", "bob", "-o", "jsonl")
    assert f"warning: {nodes[2]}: cannot read its audit log: " in broken.stderr
    assert events(broken) == [
        e for e in expected if e not in lines_on_node(kubesim_ha, nodes[2], by_user("bob"))
    ]
    kubesim_ha.break_kubelet(nodes[2], False)

    table = logs(kubesim_ha, "--user", "bob")
    assert table.returncode == 0, table.stderr
    assert {line.split()[1] for line in table.stdout.splitlines()[1:]} <= set(nodes)


def all_events_on_node(cluster: Cluster, node: str, predicate) -> list[dict]:
    """Matching events of every file of the node's log (backups oldest first, gunzipped)."""
    directory = cluster.node_root(node) / LOG.rsplit("/", 1)[0]
    backups: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("audit-"):
            stem = path.name.removesuffix(".gz")
            if stem not in backups or not path.name.endswith(".gz"):
                backups[stem] = path
    found = []
    for path in [*(backups[k] for k in sorted(backups)), directory / "audit.log"]:
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        found += [e for e in map(json.loads, data.splitlines()) if predicate(e)]
    return found


def canonical(event: str | dict) -> str:
    return json.dumps(json.loads(event) if isinstance(event, str) else event, sort_keys=True)


def by_user(name: str):
    return lambda event: event["user"]["username"] == name


def read_lines(process: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """The lines the process prints, collected by a thread as they come."""
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    return lines, reader


def wait_for_lines(lines: list[str], want: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(lines) < want and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.cluster
def test_rotated_and_gzipped_backups_then_follow_across_rotation(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    kubesim.set_knob("bytes_per_mb", 4096)  # "1 MiB" = 4 KiB: a rotation every few events
    enable(kubesim, "--compress", "--max-size", "1", "--max-backup", "200")
    touch_configmaps(kubesim, "carol", 12)
    directory = kubesim.node_root(node) / LOG.rsplit("/", 1)[0]
    assert len(list(directory.glob("audit-*.log.gz"))) >= 3
    expected = all_events_on_node(kubesim, node, by_user("carol"))
    assert len(expected) >= 12

    for via in ("node-proxy", "debug-pod"):
        found = events(logs(kubesim, "--user", "carol", "-o", "jsonl", "--via", via))
        assert found == expected, via

        # -f: what the scan read, then what comes, through several rotations, once each.
        user = f"dave-{via}"
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubectl_audit",
                "logs",
                "-f",
                "--user",
                user,
                "-o",
                "jsonl",
                "--via",
                via,
                "--kubeconfig",
                str(kubesim.kubeconfig),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines, reader = read_lines(follower)
        rotated_before = len(list(directory.glob("audit-*")))
        try:
            touch_configmaps(kubesim, user, 4)
            if via == "node-proxy":  # an API outage while following: it resumes after
                wait_for_lines(lines, 1, timeout=30)
                kubesim.stop_apiserver(node)
                time.sleep(2.5)
                kubesim.start_apiserver(node)
                kubesim.wait_for(kubesim.api_up, timeout=20, what="the apiserver back")
            touch_configmaps(kubesim, user, 4)
            wanted = all_events_on_node(kubesim, node, by_user(user))
            wait_for_lines(lines, len(wanted), timeout=30)
            time.sleep(1.5)  # a poll or two more: nothing may come twice
        finally:
            follower.send_signal(signal.SIGINT)
            follower.wait(timeout=30)
            reader.join(timeout=10)
        assert follower.stderr is not None
        stderr = follower.stderr.read()
        follower.stderr.close()
        follower.stdout.close()
        assert sorted(map(canonical, lines)) == sorted(map(canonical, wanted)), stderr
        if via == "node-proxy":
            assert "; retrying" in stderr
        assert len(list(directory.glob("audit-*"))) > rotated_before  # it did rotate
    pods = client.CoreV1Api(
        config.new_client_from_config(config_file=str(kubesim.kubeconfig))
    ).list_pod_for_all_namespaces(label_selector="app.kubernetes.io/managed-by=kubectl-audit")
    assert pods.items == []
