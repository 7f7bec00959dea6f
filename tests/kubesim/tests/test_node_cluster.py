"""The node side of a running simulated cluster, seen through the real `kubernetes` client,
the node's files and its crictl/systemctl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes
import yaml

from tests.kubesim.cluster import Cluster
from tests.kubesim.manifests import MANIFESTS, config_hash
from tests.kubesim.noderoot import UNREACHABLE

CP = "kubesim-control-plane"
WORKER = "kubesim-worker"
POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/readyz*", "/livez*", "/healthz*"]
- level: Metadata
"""
AUDIT_FLAGS = [
    "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log",
    "--audit-log-maxsize=1",
    "--audit-log-maxbackup=2",
]


def core(cluster: Cluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    )


def manifest_path(cluster: Cluster, node: str = CP) -> Path:
    return cluster.node_root(node) / MANIFESTS.lstrip("/") / "kube-apiserver.yaml"


def read_manifest(cluster: Cluster, node: str = CP) -> dict:
    return yaml.safe_load(manifest_path(cluster, node).read_text())


def write_manifest(cluster: Cluster, pod: dict, node: str = CP) -> None:
    """Atomically, as an admin (or the plugin) would: a hidden temp file, then rename."""
    target = manifest_path(cluster, node)
    temp = target.with_name(".kube-apiserver.yaml.tmp")
    temp.write_text(yaml.safe_dump(pod, sort_keys=False))
    os.replace(temp, target)


def write_policy(cluster: Cluster, node: str = CP) -> None:
    policy = cluster.node_root(node) / "etc/kubernetes/audit/policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(POLICY)


def enable_audit(pod: dict, *, mount_policy: bool = True, mount_log: bool = True) -> dict:
    container = pod["spec"]["containers"][0]
    container["command"] += AUDIT_FLAGS
    pod["spec"]["volumes"] += [
        {
            "name": "audit",
            "hostPath": {"path": "/etc/kubernetes/audit/policy.yaml", "type": "File"},
        },
        {
            "name": "audit-log",
            "hostPath": {"path": "/var/log/kubernetes/audit/", "type": "DirectoryOrCreate"},
        },
    ]
    if mount_policy:
        container["volumeMounts"].append(
            {"mountPath": "/etc/kubernetes/audit/policy.yaml", "name": "audit", "readOnly": True}
        )
    if mount_log:
        container["volumeMounts"].append(
            {"mountPath": "/var/log/kubernetes/audit/", "name": "audit-log"}
        )
    return pod


def mirror(cluster: Cluster, node: str = CP) -> dict:
    pod = cluster.get_object("pods", "kube-system", f"kube-apiserver-{node}")
    assert pod is not None
    return pod


def mirror_hash(cluster: Cluster, node: str = CP) -> str:
    pod = cluster.get_object("pods", "kube-system", f"kube-apiserver-{node}")
    return "" if pod is None else pod["metadata"]["annotations"]["kubernetes.io/config.hash"]


def _on_node(cluster: Cluster, tool: str, path: str, args: tuple[str, ...], node: str):
    """`<tool> args` as an admin runs it on the node: the stand-in inside the node root.
    Where the stand-ins are not installed, the kubelet answers directly (same semantics,
    without the transport)."""
    root = cluster.node_root(node)
    if (root / path).exists():
        return subprocess.run(
            ["chroot", str(root), tool, *args], capture_output=True, text=True, timeout=20
        )
    kubelet = cluster.nodes[node].kubelet
    run = kubelet.run_crictl if tool == "crictl" else kubelet.run_systemctl
    code, out, err = cluster.call(run, list(args))
    return subprocess.CompletedProcess([tool, *args], code, out.decode(), err.decode())


def crictl(cluster: Cluster, *args: str, node: str = CP) -> subprocess.CompletedProcess[str]:
    return _on_node(cluster, "crictl", "usr/local/bin/crictl", args, node)


def systemctl(cluster: Cluster, *args: str, node: str = CP) -> subprocess.CompletedProcess[str]:
    return _on_node(cluster, "systemctl", "usr/bin/systemctl", args, node)


def test_mirror_pods_look_like_the_kubelets(kubesim: Cluster) -> None:
    api = core(kubesim)
    pods = {p.metadata.name: p for p in api.list_namespaced_pod("kube-system").items}
    assert set(pods) == {
        f"{c}-{CP}" for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    }
    pod = pods[f"kube-apiserver-{CP}"]
    annotations = pod.metadata.annotations
    assert annotations["kubernetes.io/config.source"] == "file"
    assert annotations["kubernetes.io/config.hash"] == annotations["kubernetes.io/config.mirror"]
    node = api.read_node(CP)
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Node",
        CP,
        node.metadata.uid,
        True,
    )
    assert pod.spec.node_name == CP
    assert "--secure-port" in " ".join(pod.spec.containers[0].command)
    assert {v.name for v in pod.spec.volumes} >= {"k8s-certs", "ca-certs"}
    status = pod.status.container_statuses[0]
    assert status.ready and status.restart_count == 0 and status.state.running.started_at
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    expected = config_hash(read_manifest(kubesim), CP, f"{MANIFESTS}/kube-apiserver.yaml")
    assert annotations["kubernetes.io/config.hash"] == expected
    # The worker runs no static pods.
    assert not list((kubesim.node_root(WORKER) / MANIFESTS.lstrip("/")).iterdir())


def test_mirror_pod_lags_behind_readyz_on_a_single_control_plane(kubesim: Cluster) -> None:
    """The kubelet can only replace the mirror pod once an apiserver is back: right after the
    API answers again, it still shows the old hash. Waiting for /readyz is not enough."""
    kubesim.set_knob("kubelet_period", 1.0)  # the lag is one to two periods
    api = core(kubesim)  # built first: the client's first use imports for seconds
    before = mirror_hash(kubesim)
    pod = read_manifest(kubesim)
    pod["spec"]["containers"][0]["command"].append("--v=2")
    write_manifest(kubesim, pod)
    kubesim.wait_for(lambda: not kubesim.api_up(), 10, "the restart to begin")
    kubesim.wait_for(kubesim.api_up, 10, "the API back")
    stale = api.read_namespaced_pod(f"kube-apiserver-{CP}", "kube-system")
    assert stale.metadata.annotations["kubernetes.io/config.hash"] == before
    expected = config_hash(pod, CP, f"{MANIFESTS}/kube-apiserver.yaml")
    kubesim.wait_for(lambda: mirror_hash(kubesim) == expected, 10, "the mirror pod to catch up")


def test_a_deleted_mirror_pod_comes_back(kubesim: Cluster) -> None:
    api = core(kubesim)
    name = f"kube-scheduler-{CP}"
    old = api.read_namespaced_pod(name, "kube-system")
    api.delete_namespaced_pod(name, "kube-system")

    def recreated() -> bool:
        pod = kubesim.get_object("pods", "kube-system", name)
        return pod is not None and pod["metadata"]["uid"] != old.metadata.uid

    kubesim.wait_for(recreated, 10, "the kubelet to recreate the mirror pod")
    new = api.read_namespaced_pod(name, "kube-system")
    hash_key = "kubernetes.io/config.hash"
    assert new.metadata.annotations[hash_key] == old.metadata.annotations[hash_key]
    assert new.status.container_statuses[0].state.running  # the static pod never stopped


def test_manifest_edit_restarts_the_apiserver_with_a_new_hash(kubesim: Cluster) -> None:
    before = mirror_hash(kubesim)
    pod = read_manifest(kubesim)
    pod["spec"]["containers"][0]["command"].append("--v=2")
    write_manifest(kubesim, pod)
    kubesim.wait_for(lambda: mirror_hash(kubesim) not in ("", before), 10, "a new config.hash")
    kubesim.wait_for(kubesim.api_up, 10, "the apiserver back")
    live = core(kubesim).read_namespaced_pod(f"kube-apiserver-{CP}", "kube-system")
    assert "--v=2" in live.spec.containers[0].command
    assert live.status.container_statuses[0].restart_count == 0  # a new pod, not a restart


def apiserver_containers(cluster: Cluster, node: str = CP) -> list[dict]:
    listing = crictl(cluster, "ps", "-a", "--name", "kube-apiserver", "-o", "json", node=node)
    assert listing.returncode == 0, listing.stderr
    return json.loads(listing.stdout)["containers"]


def test_forgotten_volume_mount_takes_the_api_down_and_crictl_says_why(kubesim: Cluster) -> None:
    write_policy(kubesim)
    original = read_manifest(kubesim)
    write_manifest(kubesim, enable_audit(read_manifest(kubesim), mount_policy=False))
    kubesim.wait_for(lambda: not kubesim.api_up(), 10, "the API to go down")

    def crash_looping() -> bool:
        exited = [c for c in apiserver_containers(kubesim) if c["state"] == "CONTAINER_EXITED"]
        return any(c["metadata"]["attempt"] >= 1 for c in exited)

    # With the only apiserver down nothing reaches the API: the node is where to look.
    kubesim.wait_for(crash_looping, 15, "a crash loop")
    assert not kubesim.api_up()
    exited = [c for c in apiserver_containers(kubesim) if c["state"] == "CONTAINER_EXITED"]
    inspected = json.loads(crictl(kubesim, "inspect", exited[0]["id"]).stdout)["status"]
    assert (inspected["state"], inspected["exitCode"], inspected["reason"]) == (
        "CONTAINER_EXITED",
        1,
        "Error",
    )
    assert inspected["startedAt"] <= inspected["finishedAt"]
    logs = crictl(kubesim, "logs", "--tail", "1", exited[0]["id"][:13])
    assert logs.returncode == 0
    assert (
        '"command failed" err="loading audit policy file: failed to read file path' in logs.stderr
    )
    assert "open /etc/kubernetes/audit/policy.yaml: no such file or directory" in logs.stderr
    pod_logs = list(
        (kubesim.node_root(CP) / "var/log/pods").glob(
            "kube-system_kube-apiserver-*/kube-apiserver/*.log"
        )
    )
    why = "loading audit policy file: failed to read file path"
    assert any(why in p.read_text() and " stderr F E" in p.read_text() for p in pod_logs)

    write_manifest(kubesim, original)  # the rollback brings it back
    kubesim.wait_for(kubesim.api_up, 15, "the API back after the rollback")
    restored = config_hash(original, CP, f"{MANIFESTS}/kube-apiserver.yaml")
    kubesim.wait_for(lambda: mirror_hash(kubesim) == restored, 10, "the mirror pod to catch up")


def test_fixed_policy_and_kubelet_restart_end_the_crash_loop_without_a_manifest_change(
    kubesim: Cluster,
) -> None:
    policy = kubesim.node_root(CP) / "etc/kubernetes/audit/policy.yaml"
    policy.parent.mkdir(parents=True)
    policy.write_text("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n")
    audit_manifest = enable_audit(read_manifest(kubesim))
    write_manifest(kubesim, audit_manifest)

    def crashed_on_the_policy() -> bool:
        exited = [c for c in apiserver_containers(kubesim) if c["state"] == "CONTAINER_EXITED"]
        return any(
            'no kind \\"Policy\\" is registered' in crictl(kubesim, "logs", c["id"]).stderr
            for c in exited
        )

    kubesim.wait_for(crashed_on_the_policy, 10, "a crash on the v1beta1 policy")
    kubesim.set_knob("apiserver_restart_delay", 30.0)  # back-offs from now on outlast the test
    crashes = len(apiserver_containers(kubesim))
    kubesim.wait_for(lambda: len(apiserver_containers(kubesim)) > crashes, 10, "one more crash")
    write_policy(kubesim)  # the next attempt would load the fixed file, but it is far away
    kubelet = kubesim.nodes[CP].kubelet
    ticks = kubesim.call(lambda: kubelet.ticks)
    kubesim.wait_for(lambda: kubesim.call(lambda: kubelet.ticks) > ticks + 5, 10, "ticks")
    assert not kubesim.api_up()
    assert systemctl(kubesim, "restart", "kubelet").returncode == 0  # forgets the back-off
    kubesim.wait_for(kubesim.api_up, 5, "the apiserver to come up on its next attempt")
    expected = config_hash(audit_manifest, CP, f"{MANIFESTS}/kube-apiserver.yaml")
    kubesim.wait_for(lambda: mirror_hash(kubesim) == expected, 10, "the mirror pod")
    status = core(kubesim).read_namespaced_pod(f"kube-apiserver-{CP}", "kube-system").status
    assert status.container_statuses[0].restart_count >= 1 and status.container_statuses[0].ready


def test_missing_file_volume_never_creates_a_container_and_the_kubelet_says_why(
    kubesim: Cluster,
) -> None:
    before = [c["id"] for c in apiserver_containers(kubesim)]
    write_manifest(kubesim, enable_audit(read_manifest(kubesim)))  # no policy file written
    kubesim.wait_for(lambda: not kubesim.api_up(), 10, "the API to go down")

    def complaint() -> bool:
        status = systemctl(kubesim, "status", "kubelet").stdout
        return (
            "hostPath type check failed: /etc/kubernetes/audit/policy.yaml is not a file" in status
        )

    kubesim.wait_for(complaint, 10, "the kubelet's journal to name the volume")
    assert [c["id"] for c in apiserver_containers(kubesim)] == before  # nothing new started
    assert not kubesim.api_up()


def test_stop_and_start_apiserver_fault(kubesim: Cluster) -> None:
    kubesim.stop_apiserver(CP)
    assert not kubesim.api_up()
    table = crictl(kubesim, "ps", "-a", "--name", "apiserver").stdout
    assert "Exited" in table and "kube-apiserver" in table
    kubesim.start_apiserver(CP)
    kubesim.wait_for(kubesim.api_up, 10, "the apiserver back")

    def restarted_once() -> bool:
        status = mirror(kubesim)["status"]["containerStatuses"][0]
        return status["restartCount"] == 1 and status["ready"]

    kubesim.wait_for(restarted_once, 10, "the mirror pod to show the restart")
    status = core(kubesim).read_namespaced_pod(f"kube-apiserver-{CP}", "kube-system").status
    assert status.container_statuses[0].last_state.terminated.exit_code == 137


def test_audit_events_are_written_to_the_mounted_log_and_rotated(kubesim: Cluster) -> None:
    kubesim.set_knob("bytes_per_mb", 2048)
    write_policy(kubesim)
    before = mirror_hash(kubesim)
    write_manifest(kubesim, enable_audit(read_manifest(kubesim)))
    kubesim.wait_for(lambda: mirror_hash(kubesim) not in ("", before), 10, "the audit manifest")
    kubesim.wait_for(kubesim.api_up, 10, "the API with audit on")
    api = core(kubesim)
    for _ in range(8):
        api.list_namespaced_pod("kube-system")
    log_dir = kubesim.node_root(CP) / "var/log/kubernetes/audit"
    events = [
        json.loads(line)
        for path in sorted(log_dir.glob("audit*.log"))
        for line in path.read_text().splitlines()
    ]
    lists = [
        e
        for e in events
        if e["verb"] == "list" and e.get("objectRef", {}).get("resource") == "pods"
    ]
    assert lists and all(e["stage"] == "ResponseComplete" for e in lists)
    assert lists[0]["level"] == "Metadata" and lists[0]["objectRef"]["namespace"] == "kube-system"
    assert not [e for e in events if e["requestURI"].startswith("/readyz")]
    backups = sorted(p.name for p in log_dir.iterdir() if p.name != "audit.log")
    assert 1 <= len(backups) <= 2 and all(n.startswith("audit-") for n in backups)


def test_audit_events_are_lost_without_a_log_mount(kubesim: Cluster) -> None:
    write_policy(kubesim)
    before = mirror_hash(kubesim)
    write_manifest(kubesim, enable_audit(read_manifest(kubesim), mount_log=False))
    kubesim.wait_for(lambda: mirror_hash(kubesim) not in ("", before), 10, "the audit manifest")
    kubesim.wait_for(kubesim.api_up, 10, "the API with audit on")
    core(kubesim).list_namespaced_pod("kube-system")
    assert not (kubesim.node_root(CP) / "var/log/kubernetes/audit/audit.log").exists()
    node = kubesim.nodes[CP]
    assert kubesim.call(lambda: node.kubelet.apiserver.sink.lost) > 0


def test_backup_left_in_the_manifests_folder_wins(kubesim: Cluster) -> None:
    """kubernetes/kubernetes#136962: the .bak sorts last, so every relist puts it back; the
    edit is noticed (inotify) and then silently undone."""
    directory = manifest_path(kubesim).parent
    shutil.copy(directory / "kube-apiserver.yaml", directory / "kube-apiserver.yaml.bak")
    bak_hash = config_hash(read_manifest(kubesim), CP, f"{MANIFESTS}/kube-apiserver.yaml.bak")
    # Even an identical copy restarts the apiserver: the file path is part of the hash.
    kubesim.wait_for(lambda: mirror_hash(kubesim) == bak_hash, 10, "the copy to be picked up")
    kubesim.wait_for(kubesim.api_up, 10, "the API up on the copy")
    write_policy(kubesim)
    write_manifest(kubesim, enable_audit(read_manifest(kubesim)))
    kubelet = kubesim.nodes[CP].kubelet
    ticks = kubesim.call(lambda: kubelet.ticks)
    kubesim.wait_for(lambda: kubesim.call(lambda: kubelet.ticks) > ticks + 25, 10, "two relists")
    kubesim.wait_for(kubesim.api_up, 10, "the API up on the backup's manifest")
    kubesim.wait_for(lambda: mirror_hash(kubesim) == bak_hash, 10, "the backup to win")
    running = core(kubesim).read_namespaced_pod(f"kube-apiserver-{CP}", "kube-system")
    assert not [f for f in running.spec.containers[0].command if f.startswith("--audit")]
    assert "--audit-policy-file" in manifest_path(kubesim).read_text()  # the edit is on disk


def test_kubelet_that_needs_a_restart_notices_the_edit_after_systemctl_restart(
    kubesim: Cluster,
) -> None:
    kubesim.kubelet_needs_restart(CP)
    before = mirror_hash(kubesim)
    pod = read_manifest(kubesim)
    pod["spec"]["containers"][0]["command"].append("--v=3")
    write_manifest(kubesim, pod)
    node = kubesim.nodes[CP]
    ticks = kubesim.call(lambda: node.kubelet.ticks)
    kubesim.wait_for(lambda: kubesim.call(lambda: node.kubelet.ticks) > ticks + 12, 10, "relists")
    assert mirror_hash(kubesim) == before
    result = systemctl(kubesim, "restart", "kubelet")
    assert result.returncode == 0, result.stderr
    kubesim.wait_for(lambda: mirror_hash(kubesim) not in ("", before), 10, "the edit noticed")
    assert systemctl(kubesim, "is-active", "kubelet").stdout == "active\n"


def test_broken_kubelet_marks_the_node_unknown_and_ignores_edits(kubesim: Cluster) -> None:
    kubesim.break_kubelet(CP)
    node = core(kubesim).read_node(CP)
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "Unknown"
    assert {(t.key, t.effect) for t in node.spec.taints} >= {(UNREACHABLE, "NoExecute")}
    inactive = systemctl(kubesim, "is-active", "kubelet")
    assert (inactive.returncode, inactive.stdout) == (3, "failed\n")
    before = mirror_hash(kubesim)
    pod = read_manifest(kubesim)
    pod["spec"]["containers"][0]["command"].append("--v=5")
    write_manifest(kubesim, pod)
    kubelet = kubesim.nodes[CP].kubelet
    ticks = kubesim.call(lambda: kubelet.ticks)
    kubesim.wait_for(lambda: kubesim.call(lambda: kubelet.ticks) > ticks + 12, 10, "ticks")
    assert mirror_hash(kubesim) == before
    kubesim.break_kubelet(CP, False)
    kubesim.wait_for(lambda: mirror_hash(kubesim) not in ("", before), 10, "the edit noticed")
    kubesim.wait_for(kubesim.api_up, 10, "the restarted apiserver")
    node = core(kubesim).read_node(CP)
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"
    assert all(t.key != UNREACHABLE for t in node.spec.taints or [])


def test_ha_cluster_keeps_serving_and_shows_the_broken_node(kubesim_ha: Cluster) -> None:
    node = kubesim_ha.control_plane_nodes[1]
    pod = read_manifest(kubesim_ha, node)
    pod["spec"]["containers"][0]["command"].append("--audit-log-path=/var/log/a.log")
    pod["spec"]["containers"][0]["command"].append("--audit-log-maxbackup=-3")
    write_manifest(kubesim_ha, pod, node)
    api = core(kubesim_ha)

    def shows_crash_loop() -> bool:
        live = api.read_namespaced_pod(f"kube-apiserver-{node}", "kube-system")
        state = live.status.container_statuses[0].state
        return bool(state.waiting and state.waiting.reason == "CrashLoopBackOff")

    kubesim_ha.wait_for(shows_crash_loop, 10, "a crash loop visible through the API")
    live = api.read_namespaced_pod(f"kube-apiserver-{node}", "kube-system")
    message = live.status.container_statuses[0].last_state.terminated.message
    assert "--audit-log-maxbackup -3 can't be a negative number" in message


def debug_pod(name: str, image: str, command: list[str], **spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": WORKER,
            "restartPolicy": "Never",
            "containers": [{"name": "debugger", "image": image, "command": command}],
            **spec,
        },
    }


def pod_status(cluster: Cluster, name: str) -> dict:
    pod = cluster.get_object("pods", "default", name)
    return (pod or {}).get("status") or {}


def waiting_reason(cluster: Cluster, name: str) -> str:
    statuses = pod_status(cluster, name).get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting", {}).get("reason", "")


def test_unpullable_image_waits_in_image_pull_back_off(kubesim: Cluster) -> None:
    core(kubesim).create_namespaced_pod(
        "default", debug_pod("nopull", "registry.example.invalid/tools:1", ["sleep", "60"])
    )
    kubesim.wait_for(
        lambda: waiting_reason(kubesim, "nopull") == "ErrImagePull", 10, "ErrImagePull"
    )
    message = pod_status(kubesim, "nopull")["containerStatuses"][0]["state"]["waiting"]["message"]
    assert 'failed to pull and unpack image "registry.example.invalid/tools:1"' in message
    kubesim.wait_for(
        lambda: waiting_reason(kubesim, "nopull") == "ImagePullBackOff", 10, "ImagePullBackOff"
    )
    assert pod_status(kubesim, "nopull")["phase"] == "Pending"


def test_made_unpullable_busybox_is_refused(kubesim: Cluster) -> None:
    kubesim.make_image_unpullable("busybox")
    core(kubesim).create_namespaced_pod("default", debug_pod("bb", "busybox:1.36", ["true"]))
    kubesim.wait_for(lambda: waiting_reason(kubesim, "bb") == "ErrImagePull", 10, "ErrImagePull")


def test_active_deadline_kills_the_pod(kubesim: Cluster) -> None:
    core(kubesim).create_namespaced_pod(
        "default", debug_pod("deadline", "busybox", ["sleep", "300"], activeDeadlineSeconds=1)
    )
    kubesim.wait_for(
        lambda: pod_status(kubesim, "deadline").get("phase") == "Running", 10, "Running"
    )
    node = kubesim.nodes[WORKER]
    assert kubesim.call(node.sandbox_for, "default", "deadline") is not None
    kubesim.wait_for(lambda: pod_status(kubesim, "deadline").get("phase") == "Failed", 10, "Failed")
    assert pod_status(kubesim, "deadline")["reason"] == "DeadlineExceeded"
    assert kubesim.call(node.sandbox_for, "default", "deadline") is None


def test_debug_pod_runs_with_the_node_root_and_exits(kubesim: Cluster) -> None:
    pod = debug_pod(
        "reader",
        "busybox",
        ["sh", "-c", "test -f /host/etc/kubernetes/pki/ca.crt"],
        volumes=[{"name": "host", "hostPath": {"path": "/"}}],
    )
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]
    core(kubesim).create_namespaced_pod("default", pod)
    kubesim.wait_for(
        lambda: pod_status(kubesim, "reader").get("phase") in ("Succeeded", "Failed"), 15, "exit"
    )
    assert pod_status(kubesim, "reader")["phase"] == "Succeeded"


def test_deleting_a_debug_pod_kills_it(kubesim: Cluster) -> None:
    api = core(kubesim)
    api.create_namespaced_pod("default", debug_pod("sleeper", "busybox", ["sleep", "300"]))
    kubesim.wait_for(
        lambda: pod_status(kubesim, "sleeper").get("phase") == "Running", 10, "Running"
    )
    node = kubesim.nodes[WORKER]
    sandbox = kubesim.call(node.sandbox_for, "default", "sleeper")
    api.delete_namespaced_pod("sleeper", "default")
    kubesim.wait_for(lambda: not sandbox.running, 10, "the pod's processes to die")


def test_running_debug_pod_output_reaches_crictl_logs(kubesim: Cluster) -> None:
    command = ["sh", "-c", "echo hello from the pod; sleep 300"]
    core(kubesim).create_namespaced_pod("default", debug_pod("talker", "busybox", command))
    kubesim.wait_for(lambda: pod_status(kubesim, "talker").get("phase") == "Running", 10, "Running")
    ids = crictl(kubesim, "ps", "--name", "debugger", "-q", node=WORKER).stdout.split()
    assert len(ids) == 1 and len(ids[0]) == 64

    def said_hello() -> bool:
        return crictl(kubesim, "logs", ids[0], node=WORKER).stdout == "hello from the pod\n"

    kubesim.wait_for(said_hello, 10, "the pod's output")


def test_debug_pod_with_a_missing_file_volume_stays_container_creating(kubesim: Cluster) -> None:
    pod = debug_pod(
        "needs-file",
        "busybox",
        ["sleep", "60"],
        volumes=[{"name": "f", "hostPath": {"path": "/etc/nothing.conf", "type": "File"}}],
    )
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "f", "mountPath": "/etc/x.conf"}]
    core(kubesim).create_namespaced_pod("default", pod)

    def complaint() -> bool:
        status = systemctl(kubesim, "status", "kubelet", node=WORKER).stdout
        return "hostPath type check failed: /etc/nothing.conf is not a file" in status

    kubesim.wait_for(complaint, 10, "the kubelet's journal to name the volume")
    assert waiting_reason(kubesim, "needs-file") == "ContainerCreating"
    assert pod_status(kubesim, "needs-file")["phase"] == "Pending"


def test_noexecute_taint_rejects_an_intolerant_pod(kubesim: Cluster) -> None:
    api = core(kubesim)
    taint = {"key": "maintenance", "value": "now", "effect": "NoExecute"}
    api.patch_node(WORKER, {"spec": {"taints": [taint]}})
    api.create_namespaced_pod("default", debug_pod("intolerant", "busybox", ["sleep", "1"]))
    kubesim.wait_for(
        lambda: pod_status(kubesim, "intolerant").get("phase") == "Failed", 10, "Failed"
    )
    assert "untolerated taint {maintenance: now}" in pod_status(kubesim, "intolerant")["message"]
