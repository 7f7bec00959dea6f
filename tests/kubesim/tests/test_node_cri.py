"""crictl and systemctl semantics over container records (tests/kubesim/cri.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.kubesim import cri

T0 = datetime(2026, 7, 23, 14, 0, 0, tzinfo=timezone.utc)


def record(
    name: str, attempt: int, state: str, minutes_ago: int, uid: str = "u1"
) -> cri.ContainerRecord:
    rec = cri.ContainerRecord(
        id=f"{name[:4]}{attempt}".ljust(64, "a"),
        name=name,
        attempt=attempt,
        pod_name=f"{name}-cp",
        pod_namespace="kube-system",
        pod_uid=uid,
        sandbox_id="b" * 64,
        image=f"registry.k8s.io/{name}:v1.36.0",
        image_ref="sha256:" + "c" * 64,
        created_at=T0 - timedelta(minutes=minutes_ago),
    )
    rec.start(rec.created_at)
    rec.log.append(cri.LogLine(rec.created_at, "stderr", f"{name} attempt {attempt} err"))
    rec.log.append(cri.LogLine(rec.created_at, "stdout", f"{name} attempt {attempt} out"))
    if state == cri.EXITED:
        rec.exit(rec.created_at + timedelta(seconds=1), 1, "Error")
    return rec


RECORDS = [
    record("kube-apiserver", 0, cri.EXITED, 5),
    record("kube-apiserver", 1, cri.RUNNING, 2),
    record("etcd", 0, cri.RUNNING, 90, uid="u2"),
]


def run(*argv: str) -> tuple[int, str, str]:
    code, out, err = cri.run_crictl(RECORDS, list(argv), now=T0)
    return code, out.decode(), err.decode()


def test_ps_lists_running_containers_newest_first_as_a_table() -> None:
    code, out, _ = run("ps")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD",
        "ID",
        "POD",
        "NAMESPACE",
    ]
    assert lines[0].startswith("CONTAINER           IMAGE")  # tabwriter: min width 20
    assert [line.split()[0] for line in lines[1:]] == ["kube1aaaaaaaa", "etcd0aaaaaaaa"]
    assert (
        "2 minutes ago" in lines[1] and "2 hours ago" in lines[2]
    )  # units.HumanDuration rounds hours


def test_ps_filters() -> None:
    assert run("ps", "-a", "-q")[1].split() == [r.id for r in (RECORDS[1], RECORDS[0], RECORDS[2])]
    assert run("ps", "--state", "exited", "-q")[1].split() == [RECORDS[0].id]
    assert run("ps", "-a", "--name", "^kube-", "-q")[1].split() == [RECORDS[1].id, RECORDS[0].id]
    labelled = run("ps", "-q", "--label", "io.kubernetes.pod.uid=u2")[1].split()
    assert labelled == [RECORDS[2].id]
    assert run("--runtime-endpoint", "unix:///run/containerd/containerd.sock", "ps", "-q")[0] == 0
    assert run("ps", "-a", "-q", "--namespace", "^default$")[1] == ""
    code, _, err = run("ps", "--state", "dead")
    assert code == 1 and "--state should be one of created, running, exited or unknown" in err


def test_ps_json_is_the_cri_list_response() -> None:
    listed = json.loads(run("ps", "-a", "-o", "json", "--name", "etcd")[1])["containers"]
    assert listed == [
        {
            "id": RECORDS[2].id,
            "podSandboxId": "b" * 64,
            "metadata": {"name": "etcd", "attempt": 0},
            "image": {
                "image": "sha256:" + "c" * 64,
                "annotations": {},
                "userSpecifiedImage": "registry.k8s.io/etcd:v1.36.0",
            },
            "imageRef": "sha256:" + "c" * 64,
            "state": "CONTAINER_RUNNING",
            "createdAt": str(int((T0 - timedelta(minutes=90)).timestamp() * 1e9)),
            "labels": RECORDS[2].labels,
            "annotations": RECORDS[2].annotations,
        }
    ]


def test_logs_keep_streams_apart_and_honour_tail_previous_and_timestamps() -> None:
    code, out, err = run("logs", RECORDS[1].id[:13])
    assert (code, out, err) == (
        0,
        "kube-apiserver attempt 1 out\n",
        "kube-apiserver attempt 1 err\n",
    )
    assert run("logs", "--tail", "1", RECORDS[1].id)[1:] == ("kube-apiserver attempt 1 out\n", "")
    assert run("logs", "--tail=0", RECORDS[1].id)[1:] == ("", "")
    assert run("logs", "-p", RECORDS[1].id)[2] == "kube-apiserver attempt 0 err\n"
    stamped = run("logs", "-t", RECORDS[2].id)[1]
    assert stamped == "2026-07-23T12:30:00.000000Z etcd attempt 0 out\n"


def test_inspect_reports_state_exit_code_and_times() -> None:
    status = json.loads(run("inspect", RECORDS[0].id[:5])[1])["status"]
    assert status["state"] == "CONTAINER_EXITED"
    assert (status["exitCode"], status["reason"]) == (1, "Error")
    assert status["startedAt"] == "2026-07-23T13:55:00.000000Z"
    assert status["finishedAt"] == "2026-07-23T13:55:01.000000Z"


def test_unknown_or_ambiguous_ids_fail_like_crictl() -> None:
    code, _, err = run("logs", "ffff")
    assert code == 1
    assert err == (
        'time="2026-07-23T14:00:00Z" level=fatal msg="rpc error: code = NotFound desc = an '
        'error occurred when try to find container \\"ffff\\": not found"\n'
    )
    assert "ambiguous" in run("inspect", "kube")[2]
    assert run("logs")[0] == 1
    assert run("frobnicate")[2] == "No help topic for 'frobnicate'\n"


def test_systemctl_restart_and_is_active() -> None:
    restarted: list[bool] = []
    code, out, _ = cri.run_systemctl(
        ["restart", "kubelet"], active=True, restart=lambda: restarted.append(True)
    )
    assert (code, out, restarted) == (0, b"", [True])
    assert cri.run_systemctl(["is-active", "kubelet.service"], active=False, restart=list)[:2] == (
        3,
        b"failed\n",
    )
    assert cri.run_systemctl(["is-active", "-q", "kubelet"], active=True, restart=list)[:2] == (
        0,
        b"",
    )
    code, _, err = cri.run_systemctl(["restart", "containerd"], active=True, restart=list)
    assert (code, err) == (
        5,
        b"Failed to restart containerd.service: Unit containerd.service not found.\n",
    )
