"""Exec through the whole simulator: the real `kubernetes` client and real `kubectl` over HTTPS
into a debug pod that has the node's root at /host, as `kubectl debug node/...` would."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.stream import stream

from tests.kubesim import Cluster
from tests.kubesim.tests.test_exec_protocol import collect, collect_frames


def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def start_debug_pod(cluster: Cluster, api: client.CoreV1Api, node: str) -> str:
    name = "node-debugger"
    api.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "hostPID": True,
                "containers": [
                    {
                        "name": "debugger",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host-root", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
                "tolerations": [{"operator": "Exists"}],
            },
        },
    )
    cluster.wait_for(
        lambda: cluster.get_object("pods", "default", name)["status"].get("phase") == "Running",
        timeout=10,
        what="the debug pod running",
    )
    return name


def exec_in(api: client.CoreV1Api, pod: str, command: list[str], **kw):
    return stream(
        api.connect_get_namespaced_pod_exec,
        pod,
        "default",
        command=command,
        stdout=True,
        stderr=True,
        stdin=kw.pop("stdin", False),
        tty=False,
        binary=True,
        _preload_content=False,
        **kw,
    )


def host_pids(cmdline: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ") == cmdline:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_node_admin_commands_through_chroot_host(kubesim: Cluster) -> None:
    api = core(kubesim)
    node = kubesim.control_plane_nodes[0]
    pod = start_debug_pod(kubesim, api, node)
    manifest = kubesim.node_root(node) / "etc/kubernetes/manifests/kube-apiserver.yaml"

    ws = exec_in(api, pod, ["chroot", "/host", "sh", "-c", "cat " + "/" + str(
        manifest.relative_to(kubesim.node_root(node)))])  # fmt: skip
    out, err = collect(ws)
    assert (ws.returncode, err) == (0, b"")
    assert out == manifest.read_bytes()

    ws = exec_in(api, pod, ["chroot", "/host", "crictl", "ps", "--name", "kube-apiserver", "-o",
                            "json"])  # fmt: skip
    out, err = collect(ws)
    assert ws.returncode == 0, err
    (container,) = json.loads(out)["containers"]
    assert container["metadata"]["name"] == "kube-apiserver"
    assert container["state"] == "CONTAINER_RUNNING"


def test_setsid_process_survives_its_exec_and_dies_with_the_pod(kubesim: Cluster) -> None:
    api = core(kubesim)
    pod = start_debug_pod(kubesim, api, kubesim.worker_nodes[0])
    ws = exec_in(api, pod, ["sh", "-c", "setsid nohup sleep 5151 </dev/null >/dev/null 2>&1 &"])
    collect(ws)
    assert ws.returncode == 0
    deadline = time.monotonic() + 5
    while not host_pids(b"sleep 5151"):
        assert time.monotonic() < deadline, "the detached process did not survive its exec"
        time.sleep(0.05)
    api.delete_namespaced_pod(pod, "default", grace_period_seconds=0)
    deadline = time.monotonic() + 10
    while host_pids(b"sleep 5151"):
        assert time.monotonic() < deadline, "the detached process outlived its pod"
        time.sleep(0.05)


def test_fifty_megabytes_of_random_bytes_arrive_intact_over_https(kubesim: Cluster) -> None:
    api = core(kubesim)
    node = kubesim.worker_nodes[0]
    pod = start_debug_pod(kubesim, api, node)
    blob = os.urandom(50 * 1024 * 1024)
    (kubesim.node_root(node) / "tmp" / "blob").write_bytes(blob)
    channels = collect_frames(exec_in(api, pod, ["cat", "/host/tmp/blob"]))
    assert hashlib.sha256(channels.get(1, b"")).digest() == hashlib.sha256(blob).digest()
    assert json.loads(channels[3]) == {"metadata": {}, "status": "Success"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_exec_streams_stdin_and_returns_the_exit_code(kubesim: Cluster) -> None:
    api = core(kubesim)
    pod = start_debug_pod(kubesim, api, kubesim.worker_nodes[0])
    base = ["kubectl", "--kubeconfig", str(kubesim.kubeconfig), "--request-timeout=20s"]
    done = subprocess.run(
        [*base, "exec", "-i", pod, "--", "sh", "-c", "cat; echo err >&2; exit 3"],
        input=b"from stdin\n",
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == b"from stdin\n"
    assert done.stderr.startswith(b"err\n")
    assert b"command terminated with exit code 3" in done.stderr
