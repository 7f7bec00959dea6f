"""AuditSettings validation and flags, and the dry-run diff."""

from __future__ import annotations

import pytest

from kubectl_audit.apiserver.diff import manifest_diff
from kubectl_audit.apiserver.manifest import render_enabled
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.errors import UsageError
from tests.conftest import TESTDATA


def test_defaults_are_the_cis_values() -> None:
    assert AuditSettings().flags() == (
        "--audit-log-maxage=30",
        "--audit-log-maxbackup=10",
        "--audit-log-maxsize=100",
        "--audit-log-path=/var/log/kubernetes/audit/audit.log",
        "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
    )
    assert AuditSettings().log_dir == "/var/log/kubernetes/audit"


def test_compress_flag_only_when_on() -> None:
    assert AuditSettings(compress=True).flags()[0] == "--audit-log-compress=true"
    assert ("audit-log-compress", "true") in AuditSettings(compress=True).extra_args()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"log_path": "-"}, "absolute path"),
        ({"policy_path": "policy.yaml"}, "absolute path"),
        ({"log_path": "/var/log/a b.log"}, "characters"),
        ({"log_path": "/var/log/../etc/x"}, "characters or segments"),
        ({"log_path": "/var/log/audit/"}, "names a directory"),
        ({"log_path": "/etc/p.yaml", "policy_path": "/etc/p.yaml"}, "same file"),
        ({"max_age": -1}, "--audit-log-maxage must be"),
        ({"max_size": True}, "--audit-log-maxsize must be"),
        ({"policy_sha256": "ABC"}, "64 lower-case hex"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        AuditSettings(**kwargs)  # type: ignore[arg-type]


def test_diff_has_headers_and_only_additions() -> None:
    text = (TESTDATA / "apiserver-manifests" / "kubeadm-v1.15.4-asktiger-k8s-ha.yaml").read_text()
    new = render_enabled(text, AuditSettings(policy_sha256="f" * 64))
    out = manifest_diff(text, new, node="cp-1")
    lines = out.splitlines()
    assert lines[0] == "--- a/cp-1:/etc/kubernetes/manifests/kube-apiserver.yaml"
    assert lines[1] == "+++ b/cp-1:/etc/kubernetes/manifests/kube-apiserver.yaml"
    body = [line for line in lines[2:] if not line.startswith("@@")]
    assert not [line for line in body if line.startswith("-")]
    # 3 annotation + 5 flag + 5 volumeMount + 8 volume lines
    assert sum(line.startswith("+") for line in body) == 21
    assert manifest_diff(text, text) == ""
    assert manifest_diff("a\n", "b\n").splitlines()[0] == (
        "--- a/etc/kubernetes/manifests/kube-apiserver.yaml"
    )


def test_diff_marks_a_missing_final_newline() -> None:
    out = manifest_diff("a\nb", "a\nb\nc\n")
    assert "\\ No newline at end of file" in out
