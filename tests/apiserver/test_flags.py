"""Flag parsing and `--audit-*` validation, case by case from spec §6.1-6.2."""

from __future__ import annotations

import pytest

from kubectl_audit.apiserver.flags import (
    audit_options,
    default_for,
    parse_command,
    validate_audit_flags,
)
from kubectl_audit.apiserver.kubeversion import parse_version
from kubectl_audit.apiserver.manifest import read_manifest
from kubectl_audit.errors import InputError
from tests.conftest import TESTDATA

LOG = "--audit-log-path=/var/log/kubernetes/audit/audit.log"
POLICY = "--audit-policy-file=/etc/kubernetes/audit/policy.yaml"
ROTATE = ["--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100"]


def problems(*args: str, version: str = "v1.36.0") -> list[str]:
    flags = parse_command(["kube-apiserver", *args])
    return [p.message for p in validate_audit_flags(flags, version) if p.upstream]


def codes(*args: str, version: str = "v1.36.0") -> list[str]:
    flags = parse_command(["kube-apiserver", *args])
    return [p.code for p in validate_audit_flags(flags, version) if not p.upstream]


def test_parse_forms() -> None:
    flags = parse_command(
        ["kube-apiserver", "--a=1", "--b", "two", "--audit-log-compress", "--c", "-v=6", "--d="]
    )
    assert [(f.name, f.value, f.index) for f in flags] == [
        ("--a", "1", 1),
        ("--b", "two", 2),
        ("--audit-log-compress", None, 4),
        ("--c", None, 5),  # the next word is a flag: `--c` is bare
        ("-v", "6", 6),
        ("--d", "", 7),
    ]


def test_bool_flag_never_takes_the_next_word() -> None:
    flags = parse_command(["kube-apiserver", "--profiling", "false"])
    assert [(f.name, f.value) for f in flags] == [("--profiling", None)]


def test_nothing_is_validated_without_a_log_path() -> None:
    assert problems("--audit-log-maxage=-1", "--audit-log-format=xml") == []


def test_all_log_errors_in_upstream_order() -> None:
    assert problems(
        LOG,
        "--audit-log-mode=fast",
        "--audit-log-truncate-max-event-size=0",
        "--audit-log-version=audit.k8s.io/v1beta1",
        "--audit-log-format=xml",
        "--audit-log-maxage=-1",
        "--audit-log-maxbackup=-2",
        "--audit-log-maxsize=-3",
    ) == [
        'invalid audit log mode fast, allowed modes are "batch,blocking,blocking-strict"',
        "invalid audit truncate log max event size 0, must be a positive number",
        'invalid group version, allowed versions are ["audit.k8s.io/v1"]',
        'invalid audit log format xml, allowed formats are "legacy,json"',
        "--audit-log-maxage -1 can't be a negative number",
        "--audit-log-maxbackup -2 can't be a negative number",
        "--audit-log-maxsize -3 can't be a negative number",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--audit-log-mode=batch", "--audit-log-batch-buffer-size=0"],
            "invalid audit batch log buffer size 0, must be a positive number",
        ),
        (
            ["--audit-log-mode=batch", "--audit-log-batch-max-size=-1"],
            "invalid audit batch log max batch size -1, must be a positive number",
        ),
        (
            ["--audit-log-mode=batch", "--audit-log-batch-throttle-enable"],
            "invalid audit batch log throttle QPS 0, must be a positive number",
        ),
        (
            [
                "--audit-log-mode=batch",
                "--audit-log-batch-throttle-enable=true",
                "--audit-log-batch-throttle-qps=5",
            ],
            "invalid audit batch log throttle burst 0, must be a positive number",
        ),
        (
            ["--audit-log-truncate-max-batch-size=100"],
            "invalid audit truncate log max batch size 100, must be greater than max event "
            "size (102400)",
        ),
        (["--audit-log-version=a/b/c"], "unexpected GroupVersion string: a/b/c"),
        (
            ["--audit-log-version="],
            'invalid group version, allowed versions are ["audit.k8s.io/v1"]',
        ),
    ],
)
def test_single_upstream_errors(args: list[str], expected: str) -> None:
    assert problems(LOG, *args) == [expected]


def test_batch_checks_stop_at_the_first_and_are_ignored_outside_batch_mode() -> None:
    assert problems(
        LOG,
        "--audit-log-mode=batch",
        "--audit-log-batch-buffer-size=0",
        "--audit-log-batch-max-size=0",
    ) == ["invalid audit batch log buffer size 0, must be a positive number"]
    assert problems(LOG, "--audit-log-mode=blocking", "--audit-log-batch-buffer-size=0") == []


def test_truncate_is_checked_even_when_disabled() -> None:
    found = problems(
        LOG, "--audit-log-truncate-enabled=false", "--audit-log-truncate-max-event-size=-5"
    )
    assert found == ["invalid audit truncate log max event size -5, must be a positive number"]


def test_webhook_backend_is_validated_when_its_config_is_set() -> None:
    assert problems(
        "--audit-webhook-config-file=/etc/kubernetes/webhook.yaml",
        "--audit-webhook-mode=sync",
    ) == ['invalid audit webhook mode sync, allowed modes are "batch,blocking,blocking-strict"']
    # The webhook's own batch defaults (throttle on, qps 10, burst 15) are valid.
    assert problems("--audit-webhook-config-file=/etc/kubernetes/webhook.yaml") == []


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            "--audit-log-maxage=abc",
            'invalid argument "abc" for "--audit-log-maxage" flag: strconv.ParseInt: '
            'parsing "abc": invalid syntax',
        ),
        (
            "--audit-log-compress=yes",
            'invalid argument "yes" for "--audit-log-compress" flag: strconv.ParseBool: '
            'parsing "yes": invalid syntax',
        ),
        (
            "--audit-log-batch-max-wait=5",
            'invalid argument "5" for "--audit-log-batch-max-wait" flag: time: invalid '
            'duration "5"',
        ),
    ],
)
def test_unparsable_values_are_reported_like_pflag(arg: str, expected: str) -> None:
    assert problems(arg) == [expected]


def test_go_integer_syntax_is_accepted() -> None:
    options, found = audit_options(parse_command(["x", "--audit-log-maxsize=0x10"]), "1.30")
    assert found == [] and options.number("--audit-log-maxsize") == 16


def test_defaults_changed_in_1_36() -> None:
    names = ("--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize")
    assert [default_for(name, "v1.35.4") for name in names] == [0, 0, 0]
    assert [default_for(name, "v1.36.0") for name in names] == [366, 100, 100]


def test_maxsize_zero_means_no_rotation_only_from_1_36() -> None:
    assert "no-rotation" in codes(POLICY, LOG, "--audit-log-maxsize=0", "--audit-log-maxage=3")
    assert "no-rotation" not in codes(
        POLICY, LOG, "--audit-log-maxsize=0", "--audit-log-maxage=3", version="v1.35.0"
    )


def test_before_1_36_unset_rotation_flags_keep_backups_forever() -> None:
    assert codes(POLICY, LOG, version="v1.28.2") == ["backups-never-deleted"]
    assert codes(POLICY, LOG, version="v1.36.0") == []
    assert codes(POLICY, LOG, *ROTATE, version="v1.28.2") == []


def test_stdout_and_missing_pieces_are_our_warnings() -> None:
    assert codes(POLICY, "--audit-log-path=-", "--audit-log-maxsize=100") == [
        "log-to-stdout",
        "rotation-ignored",
    ]
    assert codes(LOG) == ["no-policy"]
    assert codes(POLICY) == ["no-backend"]
    assert codes(POLICY, "--audit-webhook-config-file=/etc/k/w.yaml") == ["webhook-only"]
    assert codes(POLICY, "--audit-log-path=audit.log") == ["relative-log-path"]
    assert codes(POLICY, LOG, "--audit-log-path=/tmp/other.log") == ["duplicate-flag"]


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("kubeadm-v1.28.2-devsec-cks-audit.yaml", None, []),
        ("kubeadm-v1.26.1-kubeguardian-audit-enabled.yaml", None, ["backups-never-deleted"]),
        ("kubeadm-v1.28.1-tutugodfrey-audit.yaml", None, []),
        ("minikube-v1.34.0-mirror-pod-dump-audit.yaml", None, ["backups-never-deleted"]),
        ("minikube-v1.34.0-mirror-pod-dump-audit.yaml", "v1.36.1", []),
        ("kind-v1.32.2-austintalbot-before-audit.yaml", None, []),
    ],
)
def test_real_manifests(name: str, version: str | None, expected: list[str]) -> None:
    pod = read_manifest((TESTDATA / "apiserver-manifests" / name).read_text())
    found = validate_audit_flags(pod.flags, version or pod.kube_version)
    assert [p.code for p in found] == expected


def test_versions() -> None:
    assert parse_version("v1.28.9+k3s1").minor_version == (1, 28)
    assert parse_version("v1.29.0-eks-5e0fdde").suffix == "-eks-5e0fdde"
    assert str(parse_version("1.30")) == "v1.30.0"
    with pytest.raises(InputError):
        parse_version("latest")


def test_known_string_flags_take_the_next_word_even_a_dash() -> None:
    flags = parse_command(["kube-apiserver", "--audit-log-path", "-", "--audit-log-maxage", "-1"])
    assert [(f.name, f.value) for f in flags] == [
        ("--audit-log-path", "-"),
        ("--audit-log-maxage", "-1"),
    ]


@pytest.mark.parametrize(
    ("raw", "value"), [("017", 15), ("0x1e", 30), ("1_000", 1000), ("-0b11", -3), ("+30", 30)]
)
def test_integers_read_like_go_parse_int_base_0(raw: str, value: int) -> None:
    options, found = audit_options(parse_command(["x", f"--audit-log-maxage={raw}"]), "1.36")
    assert found == [] and options.number("--audit-log-maxage") == value


def test_integer_with_spaces_is_refused_like_go() -> None:
    assert problems("--audit-log-maxage= 30")[0].startswith('invalid argument " 30"')
