"""Reachability of the audit paths through hostPath mounts, on real manifests and faults."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_audit.apiserver.manifest import read_manifest
from kubectl_audit.apiserver.mounts import check_paths_reachable, resolve
from tests.conftest import TESTDATA

MANIFESTS = TESTDATA / "apiserver-manifests"


def codes(name: str) -> list[str]:
    pod = read_manifest((MANIFESTS / name).read_text())
    return [p.code for p in check_paths_reachable(pod.spec, pod.container)]


def test_devsec_mounts_the_log_file_itself() -> None:
    """Known failure (kubernetes/website#27126): FileOrCreate log mount breaks rotation."""
    pod = read_manifest((MANIFESTS / "kubeadm-v1.28.2-devsec-cks-audit.yaml").read_text())
    found = check_paths_reachable(pod.spec, pod.container)
    assert [p.code for p in found] == ["log-file-mounted"]
    assert "mount the directory /var/log instead" in (found[0].hint or "")


@pytest.mark.parametrize(
    "name",
    [
        "kubeadm-v1.26.1-kubeguardian-audit-enabled.yaml",
        "kind-v1.32.2-austintalbot-after-audit.yaml",
        "minikube-v1.34.0-mirror-pod-dump-audit.yaml",
    ],
)
def test_hand_made_setups_that_are_right(name: str) -> None:
    assert codes(name) == []


def test_tutugodfrey_one_directory_holds_policy_and_log_but_read_write() -> None:
    # Policy and logs share /etc/kubernetes/audit, mounted read-write: works, but the
    # policy is writable from the container.
    assert codes("kubeadm-v1.28.1-tutugodfrey-audit.yaml") == ["policy-writable"]


def test_resolve_maps_container_paths_to_host_paths() -> None:
    pod = read_manifest((MANIFESTS / "kubeadm-v1.28.1-tutugodfrey-audit.yaml").read_text())
    reach = resolve("/etc/kubernetes/audit/logs/audit.log", pod.volumes, pod.mounts)
    assert reach is not None
    assert reach.host_path == "/etc/kubernetes/audit/logs/audit.log"
    assert reach.mount["name"] == "audit" and not reach.exact
    assert resolve("/var/log/x.log", pod.volumes, pod.mounts) is None


def _pod(
    args: list[str], mounts: list[dict[str, Any]], volumes: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    container = {"name": "kube-apiserver", "command": ["kube-apiserver", *args]}
    container["volumeMounts"] = mounts
    return {"containers": [container], "volumes": volumes}, container


POLICY = "--audit-policy-file=/etc/kubernetes/audit/policy.yaml"
LOG = "--audit-log-path=/var/log/kubernetes/audit/audit.log"


def _host(name: str, path: str, kind: str = "") -> dict[str, Any]:
    host: dict[str, Any] = {"path": path}
    if kind:
        host["type"] = kind
    return {"name": name, "hostPath": host}


@pytest.mark.parametrize(
    ("mounts", "volumes", "expected"),
    [
        ([], [], ["policy-not-mounted", "log-not-mounted"]),
        (
            [
                {"name": "p", "mountPath": "/etc/kubernetes/audit/policy.yaml", "readOnly": True},
                {"name": "l", "mountPath": "/var/log/kubernetes/audit"},
            ],
            [
                _host("p", "/etc/kubernetes/audit/policy.yaml", "File"),
                {"name": "l", "emptyDir": {}},
            ],
            ["log-not-mounted"],
        ),
        (
            [
                {"name": "p", "mountPath": "/etc/kubernetes/audit/policy.yaml", "readOnly": True},
                {"name": "l", "mountPath": "/var/log/kubernetes/audit", "readOnly": True},
            ],
            [
                _host("p", "/etc/kubernetes/audit/policy.yaml", "DirectoryOrCreate"),
                _host("l", "/var/log/kubernetes/audit", "DirectoryOrCreate"),
            ],
            ["policy-mounted-as-directory", "log-read-only"],
        ),
        (
            [
                {"name": "p", "mountPath": "/etc/kubernetes/audit/policy.yaml", "readOnly": True},
                {"name": "l", "mountPath": "/var/log/kubernetes/audit/audit.log"},
            ],
            [
                _host("p", "/etc/kubernetes/audit/policy.yaml", "FileOrCreate"),
                _host("l", "/var/log/kubernetes/audit/audit.log", "FileOrCreate"),
            ],
            ["policy-file-or-create", "log-file-mounted"],
        ),
        (
            [
                {"name": "etc", "mountPath": "/etc/kubernetes", "readOnly": True},
                {"name": "var", "mountPath": "/var/log"},
            ],
            [_host("etc", "/etc/kubernetes", "Directory"), _host("var", "/var/log")],
            [],
        ),
        (
            [{"name": "missing", "mountPath": "/etc/kubernetes/audit"}],
            [],
            ["policy-not-mounted", "log-not-mounted"],
        ),
    ],
)
def test_mount_faults(
    mounts: list[dict[str, Any]], volumes: list[dict[str, Any]], expected: list[str]
) -> None:
    spec, container = _pod([POLICY, LOG], mounts, volumes)
    assert [p.code for p in check_paths_reachable(spec, container)] == expected


def test_deepest_mount_wins() -> None:
    spec, container = _pod(
        [LOG],
        [
            {"name": "ro", "mountPath": "/var/log", "readOnly": True},
            {"name": "rw", "mountPath": "/var/log/kubernetes/audit"},
        ],
        [_host("ro", "/var/log"), _host("rw", "/srv/audit", "DirectoryOrCreate")],
    )
    assert check_paths_reachable(spec, container) == []
    reach = resolve(
        "/var/log/kubernetes/audit/audit.log", spec["volumes"], container["volumeMounts"]
    )
    assert reach is not None and reach.host_path == "/srv/audit/audit.log"


def test_stdout_and_unset_paths_are_not_mount_problems() -> None:
    spec, container = _pod(["--audit-log-path=-"], [], [])
    assert check_paths_reachable(spec, container) == []
    spec, container = _pod([], [], [])
    assert check_paths_reachable(spec, container) == []


def test_messages_say_what_happens() -> None:
    spec, container = _pod([POLICY, LOG], [], [])
    messages = [p.message for p in check_paths_reachable(spec, container)]
    assert messages[0].startswith("policy path not mounted:")
    assert "will not start" in messages[0]
    assert messages[1].startswith("log path not mounted:")
    assert "lost with it" in messages[1]


def test_webhook_config_must_be_mounted_too() -> None:
    args = [POLICY, "--audit-webhook-config-file=/etc/kubernetes/audit/webhook.yaml"]
    spec, container = _pod(args, [], [])
    assert [p.code for p in check_paths_reachable(spec, container)] == [
        "policy-not-mounted",
        "webhook-config-not-mounted",
    ]
    spec, container = _pod(
        args,
        [{"name": "a", "mountPath": "/etc/kubernetes/audit", "readOnly": True}],
        [_host("a", "/etc/kubernetes/audit", "DirectoryOrCreate")],
    )
    assert check_paths_reachable(spec, container) == []
