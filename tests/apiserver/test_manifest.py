"""enable/disable edits of real kube-apiserver manifests (shared testdata + re-indented copies)."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import pytest
import yaml

from kubectl_audit.apiserver.flags import last_values
from kubectl_audit.apiserver.manifest import (
    LOG_VOLUME,
    MANAGED_ANNOTATION,
    POLICY_VOLUME,
    ManifestConflictError,
    ManifestError,
    manifest_is_managed,
    pod_from_object,
    read_manifest,
    render_disabled,
    render_enabled,
)
from kubectl_audit.apiserver.mounts import check_paths_reachable
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.errors import AuditError, UsageError
from tests.conftest import TESTDATA

MANIFESTS = TESTDATA / "apiserver-manifests"
OURS = Path(__file__).parent / "data"
SHA = hashlib.sha256(b"apiVersion: audit.k8s.io/v1\nkind: Policy\n").hexdigest()
SETTINGS = AuditSettings(policy_sha256=SHA)

# Generated manifests without hand-made audit settings: enable must only add lines.
CLEAN = [
    MANIFESTS / "kubeadm-v1.15.4-asktiger-k8s-ha.yaml",
    MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml",
    MANIFESTS / "kubeadm-v1.25.3-sallyom-tracing.yaml",
    MANIFESTS / "kind-v1.25.16-tiggoins-proxy-env.yaml",
    MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml",
    MANIFESTS / "minikube-v1.32.0-harounjlassi.yaml",
    MANIFESTS / "docker-desktop-v1.25.9-mirror-pod-dump-nevenamaksic.yaml",
    OURS / "kubeadm-v1.16.2-indented-4space.yaml",
    OURS / "kind-v1.25.16-indented-lists.yaml",
]
HAND_MADE = [
    MANIFESTS / "kubeadm-v1.26.1-kubeguardian-audit-enabled.yaml",
    MANIFESTS / "kubeadm-v1.28.1-tutugodfrey-audit.yaml",
    MANIFESTS / "kubeadm-v1.28.2-devsec-cks-audit.yaml",
    MANIFESTS / "kind-v1.32.2-austintalbot-after-audit.yaml",
    MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml",
]


def diff_lines(old: str, new: str) -> list[str]:
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), n=0)
    return [line for line in lines if not line.startswith(("---", "+++", "@@"))]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.mark.parametrize("path", CLEAN, ids=_ids(CLEAN))
def test_enable_only_adds_lines_and_means_what_we_asked(path: Path) -> None:
    text = path.read_text()
    enabled = render_enabled(text, SETTINGS)
    changed = diff_lines(text, enabled)
    assert changed and all(line.startswith("+") for line in changed), changed
    pod = read_manifest(enabled)
    values = last_values(pod.flags)
    assert values["--audit-policy-file"] == "/etc/kubernetes/audit/policy.yaml"
    assert values["--audit-log-path"] == "/var/log/kubernetes/audit/audit.log"
    assert (values["--audit-log-maxage"], values["--audit-log-maxbackup"]) == ("30", "10")
    assert values["--audit-log-maxsize"] == "100"
    assert "--audit-log-compress" not in values
    volumes = {v["name"]: v for v in pod.volumes}
    assert volumes[POLICY_VOLUME]["hostPath"] == {
        "path": "/etc/kubernetes/audit/policy.yaml",
        "type": "File",
    }
    assert volumes[LOG_VOLUME]["hostPath"] == {
        "path": "/var/log/kubernetes/audit",
        "type": "DirectoryOrCreate",
    }
    mounts = {m["name"]: m for m in pod.mounts}
    assert mounts[POLICY_VOLUME]["readOnly"] is True
    assert mounts[LOG_VOLUME]["mountPath"] == "/var/log/kubernetes/audit"
    assert not mounts[LOG_VOLUME].get("readOnly")
    assert pod.policy_sha256 == SHA
    assert check_paths_reachable(pod.spec, pod.container) == []
    # The flags sit right after the last existing flag, styled like it.
    flag_lines = [line for line in changed if "- --audit-" in line]
    assert len(flag_lines) == 5
    original_flag = next(line for line in text.splitlines() if line.strip().startswith("- --"))
    indent = original_flag[: original_flag.index("-")]
    assert all(line[1:].startswith(indent + "- --audit-") for line in flag_lines)


@pytest.mark.parametrize("path", CLEAN, ids=_ids(CLEAN))
def test_enable_is_idempotent_and_disable_restores_bytes(path: Path) -> None:
    text = path.read_text()
    enabled = render_enabled(text, SETTINGS)
    assert render_enabled(enabled, SETTINGS) == enabled
    assert manifest_is_managed(enabled) and not manifest_is_managed(text)
    assert render_disabled(enabled) == text
    assert render_disabled(text) == text  # nothing of ours: nothing to do


@pytest.mark.parametrize("path", CLEAN[:3], ids=_ids(CLEAN[:3]))
def test_crlf_manifest_keeps_its_line_endings(path: Path) -> None:
    text = path.read_text().replace("\n", "\r\n")
    enabled = render_enabled(text, SETTINGS)
    assert enabled.count("\n") == enabled.count("\r\n")
    assert render_disabled(enabled) == text


def test_manifest_without_final_newline_round_trips() -> None:
    text = (MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml").read_text().rstrip("\n")
    enabled = render_enabled(text, SETTINGS)
    assert not enabled.endswith("\n")
    assert all(line.startswith("+") for line in diff_lines(text + "\n", enabled + "\n"))
    assert render_disabled(enabled) == text


def test_changed_settings_update_in_place() -> None:
    text = (MANIFESTS / "kubeadm-v1.25.3-sallyom-tracing.yaml").read_text()
    first = render_enabled(text, SETTINGS)
    other_sha = hashlib.sha256(b"other policy").hexdigest()
    changed = AuditSettings(max_age=90, max_backup=20, compress=True, policy_sha256=other_sha)
    second = render_enabled(first, changed)
    lines = diff_lines(first, second)
    removed = [line.rstrip("\n") for line in lines if line.startswith("-")]
    added = [line.rstrip("\n") for line in lines if line.startswith("+")]
    assert [line for line in removed if MANAGED_ANNOTATION not in line] == [
        f"-    kubectl-audit.io/policy-sha256: '{SHA}'",
        "-    - --audit-log-maxage=30",
        "-    - --audit-log-maxbackup=10",
    ]
    assert "+    - --audit-log-compress=true" in added
    assert "+    - --audit-log-maxage=90" in added
    assert f"+    kubectl-audit.io/policy-sha256: '{other_sha}'" in added
    # The record changes too (compress is now ours); nothing else moves.
    assert sum(MANAGED_ANNOTATION in line for line in lines) == 2
    assert len(lines) == 9  # 4 out, 5 in (compress is new)
    assert render_disabled(second) == text


def test_new_policy_digest_changes_the_manifest_so_the_kubelet_restarts() -> None:
    text = (MANIFESTS / "minikube-v1.32.0-harounjlassi.yaml").read_text()
    one = render_enabled(text, SETTINGS)
    two = render_enabled(one, AuditSettings(policy_sha256="0" * 64))
    assert diff_lines(one, two) == [
        f"-    kubectl-audit.io/policy-sha256: '{SHA}'\n",
        f"+    kubectl-audit.io/policy-sha256: '{'0' * 64}'\n",
    ]


def test_manifest_without_annotations_gets_a_block_that_disable_removes() -> None:
    text = (MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text()
    assert "annotations" not in text
    enabled = render_enabled(text, SETTINGS)
    assert enabled.splitlines()[3:6] == [
        "  annotations:",
        f"    kubectl-audit.io/policy-sha256: '{SHA}'",
        enabled.splitlines()[5],
    ]
    assert read_manifest(enabled).pod["metadata"]["creationTimestamp"] is None
    assert render_disabled(enabled) == text


def test_four_space_indented_lists_keep_their_style() -> None:
    text = (OURS / "kubeadm-v1.16.2-indented-4space.yaml").read_text()
    added = [line[1:] for line in diff_lines(text, render_enabled(text, SETTINGS))]
    assert "                - --audit-log-maxage=30\n" in added
    assert "        -   hostPath:\n" in added
    assert "                path: /var/log/kubernetes/audit\n" in added
    assert "                -   mountPath: /etc/kubernetes/audit/policy.yaml\n" in added
    assert "                    name: kubectl-audit-policy\n" in added
    assert "        kubectl-audit.io/policy-sha256: '" + SHA + "'\n" in added


def test_log_is_mounted_as_directory_never_as_file() -> None:
    text = (MANIFESTS / "kubeadm-v1.15.4-asktiger-k8s-ha.yaml").read_text()
    settings = AuditSettings(log_path="/var/log/apiserver/audit/kube.json", policy_sha256=SHA)
    pod = read_manifest(render_enabled(text, settings))
    log_mount = next(m for m in pod.mounts if m["name"] == LOG_VOLUME)
    assert log_mount["mountPath"] == "/var/log/apiserver/audit"


def test_author_made_the_same_change_by_hand_in_kind_after_audit() -> None:
    """austintalbot enabled audit by hand (after-audit file); we reach the same meaning."""
    before = (MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml").read_text()
    after = read_manifest((MANIFESTS / "kind-v1.32.2-austintalbot-after-audit.yaml").read_text())
    settings = AuditSettings(
        policy_path="/etc/kubernetes/audit-policy.yaml",
        log_path="/var/log/kubernetes/audit/audit.log",
        policy_sha256=SHA,
    )
    ours = read_manifest(render_enabled(before, settings))
    audit_flags = {n: v for n, v in last_values(after.flags).items() if n.startswith("--audit")}
    assert {n: v for n, v in last_values(ours.flags).items() if n.startswith("--audit")} == (
        audit_flags
    )

    def audit_mounts(pod) -> set[tuple[str, str, str]]:
        by_name = {v["name"]: v["hostPath"] for v in pod.volumes}
        return {
            (
                m["mountPath"].rstrip("/"),
                by_name[m["name"]]["path"].rstrip("/"),
                by_name[m["name"]]["type"],
            )
            for m in pod.mounts
            if "audit" in m["mountPath"]
        }

    assert audit_mounts(ours) == audit_mounts(after)


def test_same_values_set_by_hand_are_taken_over_without_conflict() -> None:
    text = (MANIFESTS / "kind-v1.32.2-austintalbot-after-audit.yaml").read_text()
    settings = AuditSettings(policy_path="/etc/kubernetes/audit-policy.yaml", policy_sha256=SHA)
    enabled = render_enabled(text, settings)
    pod = read_manifest(enabled)
    # Their mounts already serve both paths: we add no volume of our own.
    assert {v["name"] for v in pod.volumes} == {v["name"] for v in read_manifest(text).volumes}
    assert [f.name for f in pod.flags].count("--audit-log-path") == 1
    assert render_disabled(enabled) == text


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (HAND_MADE[0], ["line 43: --audit-log-path=/var/log/kube-audit/audit.log", "line 44"]),
        (HAND_MADE[1], ["line 16: --audit-log-path", "line 17: --audit-log-maxsize=5"]),
        (HAND_MADE[2], ["line 19: --audit-policy-file", "line 21: --audit-log-maxage=3"]),
        (HAND_MADE[4], ["line 56: --audit-policy-file=/etc/kubernetes/audit-policy.yaml"]),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_hand_made_audit_settings_are_conflicts(path: Path, expected: list[str]) -> None:
    with pytest.raises(ManifestConflictError) as caught:
        render_enabled(path.read_text(), SETTINGS)
    text = "\n".join(caught.value.conflicts)
    for fragment in expected:
        assert fragment in text
    assert "--take-over" in (caught.value.hint or "")


def test_a_single_file_log_mount_is_a_conflict_even_with_matching_flags() -> None:
    text = (MANIFESTS / "kubeadm-v1.28.2-devsec-cks-audit.yaml").read_text()
    settings = AuditSettings(
        policy_path="/etc/kubernetes/audit-policy.yaml",
        log_path="/var/log/audit.log",
        max_age=3,
        max_backup=5,
        max_size=100,
        policy_sha256=SHA,
    )
    with pytest.raises(ManifestConflictError) as caught:
        render_enabled(text, settings)
    assert caught.value.conflicts == (
        "line 101: volumeMount 'audit-log' mounts the log file itself, which breaks rotation",
    )
    enabled = render_enabled(text, settings, take_over=True)
    pod = read_manifest(enabled)
    assert "audit-log" not in {m["name"] for m in pod.mounts}
    assert check_paths_reachable(pod.spec, pod.container) == []
    assert render_disabled(enabled) == text


@pytest.mark.parametrize("path", HAND_MADE, ids=_ids(HAND_MADE))
def test_take_over_replaces_and_disable_puts_back(path: Path) -> None:
    text = path.read_text()
    enabled = render_enabled(text, SETTINGS, take_over=True)
    pod = read_manifest(enabled)
    names = [f.name for f in pod.flags]
    for flag in ("--audit-log-path", "--audit-policy-file", "--audit-log-maxage"):
        assert names.count(flag) == 1
    assert last_values(pod.flags)["--audit-log-path"] == SETTINGS.log_path
    assert not [p for p in check_paths_reachable(pod.spec, pod.container) if p.is_error]
    assert render_enabled(enabled, SETTINGS) == enabled  # the take-over is remembered
    assert render_disabled(enabled) == text


def test_tutugodfrey_comments_travel_with_the_replaced_lines() -> None:
    text = (MANIFESTS / "kubeadm-v1.28.1-tutugodfrey-audit.yaml").read_text()
    enabled = render_enabled(text, SETTINGS, take_over=True)
    removed = [line for line in diff_lines(text, enabled) if line.startswith("-")]
    assert len(removed) == 4 and all("# audit logging" in line for line in removed)
    # Their directory mount already serves our policy path: no second mount for it.
    assert POLICY_VOLUME not in {m["name"] for m in read_manifest(enabled).mounts}


def test_malformed_manifest_is_a_clear_error_naming_each_problem() -> None:
    text = (MANIFESTS / "kubeadm-v1.21.0-mstelles-edited-malformed-volume.yaml").read_text()
    with pytest.raises(ManifestError) as caught:
        render_enabled(text, SETTINGS)
    message = caught.value.message
    assert "line 83: unknown volumeMount field 'readOlny' (did you mean 'readOnly'?)" in message
    assert "line 102: volume has no name" in message
    assert "line 81: volumeMount 'etcd' names no volume" in message
    assert message.index("line 81") < message.index("line 102")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [1\n", "line 2: not valid YAML"),
        ("- 1\n", "not a Pod manifest"),
        ("kind: Deployment\nspec: {}\n", "kind is 'Deployment'"),
        ("kind: Pod\nspec:\n  containers:\n  - name: a\n  - name: b\n", "no kube-apiserver"),
    ],
)
def test_unreadable_documents_are_manifest_errors(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment.replace("[", r"\[")):
        render_enabled(text, SETTINGS)


def test_flow_style_command_is_refused_not_reformatted() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n    command: [kube-apiserver, --secure-port=6443]\n"
    )
    with pytest.raises(ManifestError, match="flow style"):
        render_enabled(text, SETTINGS)


def test_enable_needs_the_policy_digest() -> None:
    text = (MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text()
    with pytest.raises(UsageError, match="policy_sha256"):
        render_enabled(text, AuditSettings())


def test_tampered_record_is_reported() -> None:
    text = render_enabled((MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text(), SETTINGS)
    broken = "\n".join(
        f"    {MANAGED_ANNOTATION}: 'not json'" if MANAGED_ANNOTATION in line else line
        for line in text.splitlines()
    )
    with pytest.raises(ManifestError, match="not what kubectl-audit wrote"):
        render_disabled(broken)


def test_our_volume_without_record_is_not_guessed_at() -> None:
    text = render_enabled((MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text(), SETTINGS)
    no_record = "\n".join(line for line in text.splitlines() if MANAGED_ANNOTATION not in line)
    with pytest.raises(AuditError, match="cannot tell what to remove"):
        render_disabled(no_record + "\n")


def test_args_list_and_space_separated_flags_are_understood() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    args:\n"
        "    - --secure-port=6443\n    - --audit-log-path\n"
        "    - /var/log/kubernetes/audit/audit.log\n"
        "    volumeMounts:\n    - mountPath: /etc/kubernetes/pki\n      name: pki\n"
        "  volumes:\n  - hostPath:\n      path: /etc/kubernetes/pki\n    name: pki\n"
    )
    enabled = render_enabled(text, SETTINGS)
    pod = read_manifest(enabled)
    assert [f.name for f in pod.flags].count("--audit-log-path") == 1
    assert pod.container["args"][-1] == "--audit-policy-file=/etc/kubernetes/audit/policy.yaml"
    assert render_disabled(enabled) == text


def test_manifest_without_volumes_gets_them_created_and_removed() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n"
        "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --secure-port=6443\n"
        "    name: kube-apiserver\n  hostNetwork: true\n"
    )
    enabled = render_enabled(text, SETTINGS)
    data = yaml.safe_load(enabled)
    assert [v["name"] for v in data["spec"]["volumes"]] == [POLICY_VOLUME, LOG_VOLUME]
    assert len(data["spec"]["containers"][0]["volumeMounts"]) == 2
    assert render_disabled(enabled) == text


@pytest.mark.parametrize(
    "path",
    [
        MANIFESTS / "docker-desktop-v1.25.9-mirror-pod-dump-nevenamaksic.yaml",
        MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml",
    ],
    ids=lambda p: p.name,
)
def test_mirror_pod_dumps_read_for_status(path: Path) -> None:
    pod = read_manifest(path.read_text())
    assert pod.container["name"] == "kube-apiserver"
    assert pod.annotations["kubernetes.io/config.mirror"]
    assert pod.structure_problems == ()
    assert pod.record is None


def test_minikube_mirror_pod_status_view() -> None:
    pod = read_manifest((MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml").read_text())
    assert str(pod.kube_version) == "v1.34.0"
    values = last_values(pod.flags)
    # The Russian comments are YAML comments, not part of the values.
    assert values["--audit-policy-file"] == "/etc/kubernetes/audit-policy.yaml"
    assert values["--audit-log-path"] == "/var/log/kubernetes/audit/audit.log"
    assert check_paths_reachable(pod.spec, pod.container) == []


def test_hand_set_invalid_audit_flags_stop_enable_with_their_upstream_message() -> None:
    text = (MANIFESTS / "kind-v1.32.2-austintalbot-before-audit.yaml").read_text()
    broken = text.replace(
        "    - --secure-port=6443\n", "    - --secure-port=6443\n    - --audit-log-mode=fast\n"
    )
    with pytest.raises(ManifestError) as caught:
        render_enabled(broken, SETTINGS)
    assert "invalid audit log mode fast" in caught.value.message
    assert "nothing was written" in (caught.value.hint or "")


def test_pod_objects_from_the_api_read_like_manifests() -> None:
    data = yaml.safe_load((MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml").read_text())
    pod = pod_from_object(data)
    assert (
        pod.flags
        == read_manifest(
            (MANIFESTS / "minikube-v1.34.0-mirror-pod-dump-audit.yaml").read_text()
        ).flags
    )
    with pytest.raises(ManifestError, match="no kube-apiserver container"):
        pod_from_object({"metadata": {"name": "x"}, "spec": {"containers": []}})


def test_record_naming_flags_we_never_add_is_refused() -> None:
    text = render_enabled((MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text(), SETTINGS)
    tampered = text.replace('"flags":["--audit-log-maxage"', '"flags":["--etcd-servers"')
    assert tampered != text
    with pytest.raises(ManifestError, match="--etcd-servers, which kubectl-audit never adds"):
        render_disabled(tampered)


def test_items_whose_dash_stands_alone_are_handled() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --secure-port=6443\n"
        "    volumeMounts:\n    -\n      mountPath: /etc/kubernetes/pki\n      name: pki\n"
        "  volumes:\n  -\n    hostPath:\n      path: /etc/kubernetes/pki\n    name: pki\n"
    )
    enabled = render_enabled(text, SETTINGS)
    assert all(line.startswith("+") for line in diff_lines(text, enabled))
    assert "  - hostPath:\n      path: /etc/kubernetes/audit/policy.yaml\n" in enabled
    assert render_disabled(enabled) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("--audit-log-path=/var/log/a.log", "--audit-log-path=/var/log/a.log"),
        ("/var/log/kubernetes/audit", "/var/log/kubernetes/audit"),
        ("true", '"true"'),
        ("1e5", '"1e5"'),  # a float to go-yaml, which the kubelet uses
        ("y", '"y"'),  # a boolean to go-yaml v2
        ("a: b", '"a: b"'),
        ("x #y", '"x #y"'),
        ("/p/a:", '"/p/a:"'),
    ],
)
def test_scalars_are_written_so_both_yaml_readers_get_a_string(value: str, written: str) -> None:
    from kubectl_audit.apiserver.yamltext import scalar

    assert scalar(value) == written
    assert yaml.safe_load(f"- {written}\n") == [value]


def test_yaml_aliases_are_refused() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  labels: &l\n"
        "    tier: control-plane\n  annotations: *l\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --secure-port=6443\n"
    )
    with pytest.raises(ManifestError, match="anchors and aliases"):
        render_enabled(text, SETTINGS)


def test_command_that_is_not_a_list_is_a_clear_error() -> None:
    text = (
        "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: kube-apiserver\n"
    )
    with pytest.raises(ManifestError, match="command is not a list"):
        read_manifest(text)


def test_empty_annotations_key_gets_entries_and_returns_to_empty() -> None:
    text = (MANIFESTS / "kubeadm-v1.16.2-maxxmoney.yaml").read_text()
    empty = text.replace("metadata:\n", "metadata:\n  annotations:\n", 1)
    enabled = render_enabled(empty, SETTINGS)
    assert read_manifest(enabled).policy_sha256 == SHA
    assert render_disabled(enabled) == empty
    flow = text.replace("metadata:\n", "metadata:\n  annotations: {}\n", 1)
    with pytest.raises(ManifestError, match="flow style"):
        render_enabled(flow, SETTINGS)


def test_empty_volume_lists_get_items_and_return_to_empty() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n"
        "  - command:\n    - kube-apiserver\n    - --secure-port=6443\n    name: kube-apiserver\n"
        "    volumeMounts:\n  hostNetwork: true\n  volumes:\nstatus: {}\n"
    )
    enabled = render_enabled(text, SETTINGS)
    assert all(line.startswith("+") for line in diff_lines(text, enabled))
    assert len(read_manifest(enabled).volumes) == 2
    assert render_disabled(enabled) == text
