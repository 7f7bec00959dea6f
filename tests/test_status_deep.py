"""status --deep's analysis: log files, event times, rate, retention, the policy on disk.

The log is the real minikube v1.34 audit extract (testdata/audit-logs, 511 events over
69 minutes); the policies are real ones from testdata/policies. The node-side script runs
for real in a busybox root through LocalShell (needs root for chroot).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kubectl_audit.apiserver.manifest import read_manifest, render_enabled
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.apiserver.state import AuditState, audit_state
from kubectl_audit.status.deep import (
    DeepStatus,
    LogSample,
    analyse_log,
    analyse_policy,
    belongs_to_log,
)
from kubectl_audit.status.logproxy import under_var_log
from kubectl_audit.status.nodefacts import parse_facts, read_node_facts
from kubectl_audit.status.render import render_status
from kubectl_audit.status.report import ClusterStatus, node_status
from tests.conftest import TESTDATA

LOG = (TESTDATA / "audit-logs" / "minikube-v1.34-audit-extract.jsonl").read_bytes()
FIRST = datetime(2026, 1, 21, 19, 14, 4, 979707, tzinfo=timezone.utc)
LAST = datetime(2026, 1, 21, 20, 23, 1, 651996, tzinfo=timezone.utc)
POLICIES = TESTDATA / "policies"
KIND = TESTDATA / "apiserver-manifests" / "kind-v1.32.2-austintalbot-before-audit.yaml"
K = 64 << 10


def state(policy: bytes = b"x", **settings) -> AuditState:
    sha = hashlib.sha256(policy).hexdigest()
    text = render_enabled(KIND.read_text(), AuditSettings(policy_sha256=sha, **settings))
    return audit_state(read_manifest(text))


def current(data: bytes = LOG, name: str = "audit.log") -> LogSample:
    return LogSample(name, len(data), LAST, data[:K], data[-K:])


def test_event_times_rate_and_a_retention_bounded_by_maxage():
    log = analyse_log(state(), [current()], via="test", free_bytes=50 << 30, now=LAST)
    assert (log.oldest_event, log.newest_event) == (FIRST, LAST)
    assert log.rate_span == LAST - FIRST
    assert log.rate_bytes_per_hour == pytest.approx(
        len(LOG) / ((LAST - FIRST).seconds / 3600), 1e-3
    )
    # 1100 MiB at ~0.45 MiB/h would last months: maxage (30 d) decides.
    assert (log.retention, log.retention_bound) == (timedelta(days=30), "maxage")
    assert log.problems == ()


def test_small_rotation_settings_get_the_retention_advice():
    small = state(max_size=1, max_backup=1)
    log = analyse_log(small, [current()], via="test", free_bytes=50 << 30, now=LAST)
    assert log.retention_bound == "size"
    hours = 2 * 2**20 / log.rate_bytes_per_hour
    assert log.retention.total_seconds() / 3600 == pytest.approx(hours)
    [problem] = log.problems
    assert problem.code == "short-retention"
    assert f"reaches back ~{hours:.1f} h" in problem.message
    assert "raise --audit-log-maxbackup" in problem.hint


def test_backups_count_for_the_oldest_event_and_gzip_heads_are_read():
    half = LOG.index(b"\n", len(LOG) // 2) + 1
    older, newer = LOG[:half], LOG[half:]
    packed = gzip.compress(older)
    samples = [
        current(newer),
        LogSample("audit-2026-01-21T19-50-00.000.log.gz", len(packed), None, packed[:K]),
        LogSample("audit-2026-01-21T19-40-00.000.log", len(older), None, older[:K]),
    ]
    log = analyse_log(state(), samples, via="test", free_bytes=None, now=LAST)
    assert [f.name for f in log.files] == [
        "audit-2026-01-21T19-40-00.000.log",
        "audit-2026-01-21T19-50-00.000.log.gz",
        "audit.log",
    ]
    assert log.files[1].compressed and log.files[1].first_event == FIRST
    assert log.oldest_event == FIRST and log.backups == 2
    assert log.current.first_event > FIRST
    # The compressed size says nothing about the rate: only the plain files count.
    assert log.rate_bytes_per_hour == pytest.approx(
        (len(older) + len(newer)) / ((LAST - FIRST).total_seconds() / 3600)
    )


def test_a_log_that_outgrew_maxsize_a_stale_log_a_full_disk_and_a_missing_log():
    small = state(max_size=1, max_backup=1)
    big = LOG * 4  # 2 MiB > 1.5 x 1 MiB
    later = LAST + timedelta(hours=2)
    log = analyse_log(small, [current(big)], via="test", free_bytes=1 << 20, now=later)
    codes = {p.code for p in log.problems}
    assert {"log-not-rotating", "log-stale"} <= codes
    # 1100 MiB may still come (100 MiB x 11 files) and 1 MiB is free.
    full = analyse_log(state(), [current()], via="test", free_bytes=1 << 20, now=LAST)
    assert [p.code for p in full.problems] == ["disk-too-small"]
    missing = analyse_log(
        small, [LogSample("audit-2026-01-21T19-40-00.000.log", 10, None, b"")],
        via="test", free_bytes=None, now=LAST,
    )  # fmt: skip
    assert [p.code for p in missing.problems] == ["log-missing"]


def test_a_log_of_one_event_has_it_as_oldest_and_newest():
    line = LOG[: LOG.index(b"\n") + 1]
    log = analyse_log(state(), [current(line)], via="test", free_bytes=None, now=FIRST)
    assert log.oldest_event == log.newest_event == FIRST
    assert log.rate_bytes_per_hour is None and log.problems == ()


def test_which_files_belong_to_the_log():
    log = "/var/log/kubernetes/audit/audit.log"
    assert belongs_to_log("audit.log", log)
    assert belongs_to_log("audit-2026-01-21T19-40-00.000.log", log)
    assert belongs_to_log("audit-2026-01-21T19-40-00.000.log.gz", log)
    assert not belongs_to_log("audit.log.bak", log)
    assert not belongs_to_log("kube-apiserver.log", log)
    assert under_var_log("/var/log/kubernetes/audit/audit.log") == "kubernetes/audit/audit.log"
    assert under_var_log("/var/lib/rancher/k3s/server/logs/audit.log") is None
    assert under_var_log("/var/logs/audit.log") is None


def test_policy_on_disk_replaces_the_3_2_2_verdict_and_reports_drift():
    falco = (POLICIES / "falco-k8saudit-audit-policy.yaml").read_bytes()
    running = state(b"the policy enable wrote")
    policy = analyse_policy(running, "/etc/kubernetes/audit/policy.yaml", falco)
    assert policy.matches_annotation is False
    assert [p.code for p in policy.problems] == ["policy-changed-on-disk"]
    # Falco's policy logs configmaps at RequestResponse: CIS 3.2.2 wants Metadata at most.
    assert policy.cis.status == "FAIL" and "configmaps" in policy.cis.detail
    assert policy.warnings  # lint findings, e.g. deployments listed in the core group

    status = node_status("kind", _pod(running), server_version="v1.32.2")
    deep = status.with_deep(DeepStatus(None, policy))
    assert {c.id: c.status for c in deep.cis}["3.2.2"] == "FAIL"
    assert "evaluated on /etc/kubernetes/audit/policy.yaml" in deep.cis[-1].detail
    assert deep.to_dict()["policy"]["source"] == "node"
    text = render_status(ClusterStatus("v1.32.2", _kubeadm(), (deep,)))
    assert "DIFFERS from the running policy" in text


def test_policy_missing_or_unloadable():
    running = state()
    gone = analyse_policy(running, "/etc/kubernetes/audit/policy.yaml", None)
    assert [p.code for p in gone.problems] == ["policy-missing"]
    assert "will not start" in gone.problems[0].message
    broken = analyse_policy(running, "/p.yaml", b"apiVersion: audit.k8s.io/v1\nkind: Policy\n")
    assert "policy-invalid" in [p.code for p in broken.problems]
    gke = (POLICIES / "gke-gce-configure-helper-audit-policy.yaml").read_bytes()
    assert analyse_policy(state(gke), "/p.yaml", gke).cis.status == "PASS"


def test_parse_facts_reads_the_agent_protocol():
    import base64

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    out = "\n".join(
        [
            "policy_sha256\tabc",
            f"policy_b64\t{b64(b'rules: []')}",
            "log_dir\tpresent",
            "log_file\t1 12 1764000000 audit.log",
            f"log_head\t1 {b64(b'{}')}",
            f"log_tail\t1 {b64(b'{}')}",
            "log_file\t2 5 1764000000 other file.log",
            "log_head\t2 ",
            "df\t/dev/my disk 1000 10 123 1% /var/log",
        ]
    ).encode()
    facts = parse_facts(out, "/var/log/kubernetes/audit/audit.log")
    assert facts.policy == b"rules: []" and facts.policy_sha256 == "abc"
    assert [s.name for s in facts.samples] == ["audit.log"]
    assert facts.free_bytes == 123 * 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_facts_script_on_a_busybox_node(tmp_path: Path):
    from kubectl_audit.node.local import LocalShell
    from tests.kubesim.userland import install_busybox

    root = tmp_path / "node"
    install_busybox(root)
    policy = (POLICIES / "gke-gce-configure-helper-audit-policy.yaml").read_bytes()
    (root / "etc/kubernetes/audit").mkdir(parents=True)
    (root / "etc/kubernetes/audit/policy.yaml").write_bytes(policy)
    logs = root / "var/log/kubernetes/audit"
    logs.mkdir(parents=True)
    (logs / "audit.log").write_bytes(LOG)
    (logs / "audit-2026-01-21T19-40-00.000.log.gz").write_bytes(gzip.compress(LOG[:1000]))
    (logs / "unrelated.txt").write_text("no\n")
    facts = read_node_facts(
        LocalShell(root, node="cp"),
        "/etc/kubernetes/audit/policy.yaml",
        "/var/log/kubernetes/audit/audit.log",
        timeout=30,
    )
    assert facts.policy == policy
    assert facts.policy_sha256 == hashlib.sha256(policy).hexdigest()
    assert sorted(s.name for s in facts.samples) == [
        "audit-2026-01-21T19-40-00.000.log.gz",
        "audit.log",
    ]
    cur = next(s for s in facts.samples if s.name == "audit.log")
    assert (cur.size, cur.head, cur.tail) == (len(LOG), LOG[:K], LOG[-K:])
    # This chroot has no /proc, so busybox df finds no mount: free disk is unknown, not 0.
    # (On a node, and in tests/kubesim's node-agent pod, df answers; see tests/e2e.)
    assert facts.free_bytes is None
    log = analyse_log(state(), facts.samples, via="node-agent pod", free_bytes=None, now=LAST)
    assert (log.oldest_event, log.newest_event) == (FIRST, LAST)
    absent = read_node_facts(LocalShell(root, node="cp"), "/nope", "/nope/audit.log", timeout=30)
    skipped = read_node_facts(LocalShell(root, node="cp"), "", "", timeout=30)
    assert skipped.policy_sha256 is None and skipped.samples == () and skipped.free_bytes is None
    assert absent.policy_sha256 is None and not absent.log_dir_exists and absent.samples == ()


def _pod(running: AuditState):
    text = render_enabled(KIND.read_text(), AuditSettings(policy_sha256=running.policy_sha256))
    pod = dict(read_manifest(text).pod)
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [{"name": "kube-apiserver", "ready": True, "restartCount": 0}],
    }
    return pod


def _kubeadm():
    from kubectl_audit.apiserver.distribution import Distribution

    return Distribution("kubeadm", ("test",), ("kind",))


K3S_LINE = (
    'Nov 28 11:30:40 server-1 k3s[1907]: time="2026-11-28T11:30:40Z" level=info '
    'msg="Running kube-apiserver --advertise-port=6443 --allow-privileged=true '
    "--audit-log-maxage=30 --audit-log-maxbackup=10 --audit-log-maxsize=100 "
    "--audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log "
    '--audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml --secure-port=6444"'
)


def k3s_server(ready: str = "True") -> dict:
    return {
        "metadata": {
            "name": "server-1",
            "labels": {"node-role.kubernetes.io/control-plane": "true"},
        },
        "status": {
            "nodeInfo": {"kubeletVersion": "v1.30.6+k3s1"},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_k3s_flags_from_the_service_log_are_host_paths_with_k3s_benchmark_ids():
    from kubectl_audit.status.k3s import k3s_node_status

    status = k3s_node_status(k3s_server(), K3S_LINE)
    assert status.ok and status.runs_as == "k3s"
    assert status.state.log_host_path == "/var/lib/rancher/k3s/server/logs/audit.log"
    assert status.all_problems == ()  # no "not mounted": there is no container
    # k3s 1.30 -> k3s-cis-1.8, numbered like cis-1.8 (1.2.17-1.2.20).
    assert [(c.id, c.benchmark, c.status) for c in status.cis][:4] == [
        ("1.2.17", "k3s-cis-1.8", "PASS"), ("1.2.18", "k3s-cis-1.8", "PASS"),
        ("1.2.19", "k3s-cis-1.8", "PASS"), ("1.2.20", "k3s-cis-1.8", "PASS"),
    ]  # fmt: skip
    assert status.to_dict()["mounts"] == {"policy": None, "log": None}
    text = render_status(ClusterStatus("v1.30.6+k3s1", _kubeadm(), (status,)))
    assert "on the node: k3s runs kube-apiserver in its own process" in text
    row = text.splitlines()[1].split()
    assert row[:2] == ["server-1", "on"] and row[6] == "-"  # RESTARTS: not a container

    off = k3s_node_status(k3s_server("False"), K3S_LINE.split(" --audit")[0] + '"')
    assert [p.code for p in off.all_problems] == ["audit-off", "k3s-node-not-ready"]
    assert "/etc/rancher/k3s/config.yaml" in off.all_problems[0].hint
    unknown = k3s_node_status(k3s_server(), "k3s started")
    assert [p.code for p in unknown.all_problems] == ["k3s-flags-not-found"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_k3s_line_from_openrc_log_on_a_busybox_node(tmp_path: Path):
    from kubectl_audit.node.local import LocalShell
    from kubectl_audit.status.k3s import read_k3s_apiserver_line
    from tests.kubesim.userland import install_busybox

    root = tmp_path / "node"
    install_busybox(root)
    shell = LocalShell(root, node="server-1")
    assert read_k3s_apiserver_line(shell, timeout=30) == ""
    (root / "var/log").mkdir(parents=True, exist_ok=True)
    older = K3S_LINE.replace("--audit-log-maxage=30", "--audit-log-maxage=1")
    (root / "var/log/k3s.log").write_text(f"{older}\nother line\n{K3S_LINE}\nlast line\n")
    assert read_k3s_apiserver_line(shell, timeout=30) == K3S_LINE


class _Response:
    """What urllib3 hands back for a node-proxy GET (status, body, headers)."""

    def __init__(self, status: int, data: bytes = b"", **headers: str) -> None:
        self.status, self.data, self.headers = status, data, headers

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name.replace("-", "_"))


def test_kubelet_range_answers_give_size_and_bytes():
    from kubectl_audit.status.logproxy import KubeletLogs, NodeLogsUnavailable

    logs = KubeletLogs(None, "cp-1")
    assert logs._range_body(_Response(206, b"abc", Content_Range="bytes 0-2/900"), "a") == (
        900,
        b"abc",
    )
    # An empty file satisfies no range: 416 with `bytes */0`.
    assert logs._range_body(_Response(416, Content_Range="bytes */0"), "a") == (0, b"")
    assert logs._range_body(_Response(200, b"whole"), "a") == (5, b"whole")
    with pytest.raises(
        NodeLogsUnavailable, match=r"kubernetes/audit/audit\.log on cp-1: not found"
    ):
        logs._range_body(_Response(404, b"404 page not found\n"), "kubernetes/audit/audit.log")
    body = b'{"message":"error trying to reach service: dial tcp 10.0.0.1:10250: connect: refused"}'
    with pytest.raises(NodeLogsUnavailable, match=r"dial tcp 10\.0\.0\.1:10250"):
        logs._range_body(_Response(503, body), "a")


def test_manifest_on_disk_against_the_running_apiserver():
    from kubectl_audit.status.deep import analyse_manifest

    manifests = TESTDATA / "apiserver-manifests"
    after = (manifests / "kind-v1.32.2-austintalbot-after-audit.yaml").read_bytes()
    before = (manifests / "kind-v1.32.2-austintalbot-before-audit.yaml").read_bytes()
    running = read_manifest(after.decode()).flags
    running_audit = [(f.name, f.value) for f in running if f.name.startswith("--audit-")]
    path = "/etc/kubernetes/manifests/kube-apiserver.yaml"

    same = analyse_manifest(running_audit, None, path, after)
    assert same.matches_running is True and same.problems == ()
    # kubespray#9874: the file says one thing, the running apiserver another.
    stale = analyse_manifest(running_audit, None, path, before)
    assert stale.matches_running is False
    [problem] = stale.problems
    assert problem.code == "manifest-not-running"
    assert "sets no audit flags but the running apiserver has --audit-" in problem.message

    broken = analyse_manifest(running_audit, None, path, b"spec:\n  containers: [\n")
    assert broken.audit_flags is None and broken.problems[0].code == "manifest-unreadable"
    assert broken.problems[0].message.startswith(f"{path} line ")

    malformed = (manifests / "kubeadm-v1.21.0-mstelles-edited-malformed-volume.yaml").read_bytes()
    flags = read_manifest(malformed.decode()).flags
    odd = analyse_manifest(
        [(f.name, f.value) for f in flags if f.name.startswith("--audit-")], None, path, malformed
    )
    assert odd.matches_running and {p.code for p in odd.problems} == {"manifest-mistake"}
