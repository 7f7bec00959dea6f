"""Would the real kube-apiserver start? Flags, mounts, policy and the log it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.kubesim import apiserver
from tests.kubesim.noderoot import seed_root

POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    seed_root(
        tmp_path, name="cp", ip="172.18.0.2", control_plane=True, version="v1.36.0", port=6443
    )
    return tmp_path


def manifest(root: Path) -> dict:
    return yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())


def with_audit(
    pod: dict, *flags: str, policy_type: str = "File", log_type: str = "DirectoryOrCreate"
) -> dict:
    container = pod["spec"]["containers"][0]
    container["command"] += list(flags)
    container["volumeMounts"] += [
        {"mountPath": "/etc/kubernetes/audit/policy.yaml", "name": "audit", "readOnly": True},
        {"mountPath": "/var/log/kubernetes/audit/", "name": "audit-log"},
    ]
    pod["spec"]["volumes"] += [
        {
            "name": "audit",
            "hostPath": {"path": "/etc/kubernetes/audit/policy.yaml", "type": policy_type},
        },
        {"name": "audit-log", "hostPath": {"path": "/var/log/kubernetes/audit/", "type": log_type}},
    ]
    return pod


FLAGS = (
    "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
    "--audit-log-path=/var/log/kubernetes/audit/audit.log",
)


def start(root: Path, pod: dict) -> apiserver.Started:
    return apiserver.try_start(pod, root, node_ip="172.18.0.2", bytes_per_mb=1024)


def failure(root: Path, pod: dict) -> apiserver.ApiserverWontStart:
    with pytest.raises(apiserver.ApiserverWontStart) as caught:
        start(root, pod)
    return caught.value


def write_policy(root: Path, text: str = POLICY) -> None:
    target = root / "etc/kubernetes/audit/policy.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_seeded_manifest_starts_without_audit(root: Path) -> None:
    started = start(root, manifest(root))
    assert not started.sink.enabled
    assert started.version == "v1.36.0"


def test_audit_fully_mounted_starts_and_creates_the_log(root: Path) -> None:
    write_policy(root)
    started = start(root, with_audit(manifest(root), *FLAGS))
    log_file = root / "var/log/kubernetes/audit/audit.log"
    assert started.sink.enabled and started.sink.node_file == log_file
    assert log_file.stat().st_mode & 0o777 == 0o600
    # 1.36 defaults: 100 "MB" of 1024 bytes each, 100 backups, 366 days.
    assert started.sink.writer is not None
    assert started.sink.writer.config == apiserver.auditlog.RotationConfig(102400, 100, 366, False)


def test_policy_flag_without_mount_crash_loops_in_the_apiservers_words(root: Path) -> None:
    write_policy(root)
    pod = manifest(root)
    pod["spec"]["containers"][0]["command"] += list(FLAGS)
    exc = failure(root, pod)
    assert exc.log[-1].startswith("E")
    assert exc.log[-1].endswith(
        '] "command failed" err="loading audit policy file: failed to read file path '
        '\\"/etc/kubernetes/audit/policy.yaml\\": open /etc/kubernetes/audit/policy.yaml: '
        'no such file or directory"'
    )
    assert " run.go:74] " in exc.log[-1]


def test_missing_file_hostpath_keeps_the_container_from_being_created(root: Path) -> None:
    with pytest.raises(apiserver.VolumeSetupFailed) as caught:
        start(root, with_audit(manifest(root), *FLAGS))
    assert str(caught.value) == (
        'MountVolume.SetUp failed for volume "audit" : hostPath type check failed: '
        "/etc/kubernetes/audit/policy.yaml is not a file"
    )


def test_directory_or_create_for_the_policy_makes_a_directory(root: Path) -> None:
    exc = failure(root, with_audit(manifest(root), *FLAGS, policy_type="DirectoryOrCreate"))
    assert (root / "etc/kubernetes/audit/policy.yaml").is_dir()
    assert "read /etc/kubernetes/audit/policy.yaml: is a directory" in str(exc)


def test_bad_policy_is_reported_with_the_file(root: Path) -> None:
    write_policy(root, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    exc = failure(root, with_audit(manifest(root), *FLAGS))
    assert str(exc) == (
        'loading audit policy file: rules[0].level: Unsupported value: "Everything": supported '
        'values: "None", "Metadata", "Request", "RequestResponse": from file '
        "/etc/kubernetes/audit/policy.yaml"
    )


def test_flag_values_validated_in_spec_order(root: Path) -> None:
    write_policy(root)
    pod = with_audit(
        manifest(root),
        *FLAGS,
        "--audit-log-format=xml",
        "--audit-log-maxage=-1",
        "--audit-log-mode=fast",
    )
    assert str(failure(root, pod)) == (
        '[invalid audit log mode fast, allowed modes are "batch,blocking,blocking-strict", '
        'invalid audit log format xml, allowed formats are "legacy,json", '
        "--audit-log-maxage -1 can't be a negative number]"
    )


def test_flags_are_not_validated_without_a_log_path(root: Path) -> None:
    pod = manifest(root)
    pod["spec"]["containers"][0]["command"] += ["--audit-log-maxage=-1"]
    assert not start(root, pod).sink.enabled


def test_unparsable_and_unknown_flags(root: Path) -> None:
    pod = manifest(root)
    pod["spec"]["containers"][0]["command"] += ["--audit-log-maxsize=ten"]
    assert failure(root, pod).log == [
        'Error: invalid argument "ten" for "--audit-log-maxsize" flag: strconv.ParseInt: '
        'parsing "ten": invalid syntax'
    ]
    pod = manifest(root)
    pod["spec"]["containers"][0]["command"] += ["--audit-log-max-size=10"]
    assert str(failure(root, pod)) == "unknown flag: --audit-log-max-size"


def test_unmounted_log_directory_starts_but_loses_events(root: Path) -> None:
    write_policy(root)
    pod = with_audit(manifest(root), *FLAGS)
    pod["spec"]["containers"][0]["volumeMounts"].pop()  # forgot the log mount
    started = start(root, pod)
    assert started.sink.enabled and started.sink.node_file is None
    assert not (root / "var/log/kubernetes/audit/audit.log").exists()


def test_read_only_log_mount_fails_ensure_log_file(root: Path) -> None:
    write_policy(root)
    pod = with_audit(manifest(root), *FLAGS)
    pod["spec"]["containers"][0]["volumeMounts"][-1]["readOnly"] = True
    assert str(failure(root, pod)) == (
        "ensureLogFile: open /var/log/kubernetes/audit/audit.log: read-only file system"
    )


def test_older_apiserver_keeps_rotating_at_maxsize_zero(root: Path) -> None:
    config = apiserver.rotation_config({"audit-log-maxsize": "0"}, (1, 32), 1024)
    assert config.max_bytes == 100 * 1024 and config.max_backups == 0
    assert apiserver.rotation_config({"audit-log-maxsize": "0"}, (1, 36), 1024).max_bytes == 0


def test_missing_serving_certificate_mount_fails(root: Path) -> None:
    pod = manifest(root)
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    pod["spec"]["containers"][0]["volumeMounts"] = [m for m in mounts if m["name"] != "k8s-certs"]
    assert str(failure(root, pod)) == (
        "open /etc/kubernetes/pki/apiserver.crt: no such file or directory"
    )


def test_log_mounted_as_a_single_file_cannot_rotate(root: Path) -> None:
    write_policy(root)
    pod = with_audit(manifest(root), *FLAGS, "--audit-log-maxsize=1")
    log_file = "/var/log/kubernetes/audit/audit.log"
    pod["spec"]["containers"][0]["volumeMounts"][-1]["mountPath"] = log_file
    pod["spec"]["volumes"][-1]["hostPath"] = {"path": log_file, "type": "FileOrCreate"}
    (root / "var/log/kubernetes/audit").mkdir(parents=True)
    sink = start(root, pod).sink
    assert sink.writer is not None and sink.writer.rename_blocked
    assert sink.writer.write(b"x" * 1000)
    assert not sink.writer.write(b"y" * 100)  # full, and the rename fails: the event is lost
    assert (root / log_file.lstrip("/")).stat().st_size == 1000


def test_stdout_log_goes_to_the_container_log(root: Path) -> None:
    write_policy(root)
    pod = with_audit(manifest(root), FLAGS[0], "--audit-log-path=-", "--audit-log-format=legacy")
    sink = start(root, pod).sink
    assert sink.enabled and sink.writer is None
    from tests.kubesim.tests.test_node_auditlog import record

    apiserver.record_request(sink, record())
    assert len(sink.to_stdout) == 2  # RequestReceived + ResponseComplete at Metadata
    assert sink.to_stdout[1].endswith(
        'stage="ResponseComplete" ip="127.0.0.1" method="create" user="kubernetes-admin" '
        'groups="\\"kubeadm:cluster-admins\\",\\"system:authenticated\\"" as="<self>" '
        'asgroups="<lookup>" user-agent="kubectl/v1.36.0 (linux/amd64) kubernetes/0000000" '
        'namespace="kube-system" uri="/api/v1/namespaces/kube-system/pods" response="201"'
    )
