"""CIS Kubernetes Benchmark checks for audit logging, numbered as the cluster's benchmark.

The check IDs move between benchmark versions (reference/field-notes.md §4.3), so checks
are keyed by what they test and printed with the ID of the benchmark kube-bench would pick
for the cluster's Kubernetes version. Flag conditions are kube-bench's: the flag must be
present (a default that would satisfy the rule does not count) and `gte` the threshold.
The policy-content check (3.2.2, Manual in the benchmark) is decided by running concrete,
representative requests through the policy matcher.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kubectl_audit.apiserver.flags import Flag, last_values
from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.policy.checker import PolicyChecker
from kubectl_audit.policy.model import Policy, RequestAttributes, UserInfo, level_rank

PASS, FAIL, WARN = "PASS", "FAIL", "WARN"

# check key -> ID, per benchmark (kube-bench cfg/<benchmark>/master.yaml).
_PRE_1_24 = ("1.2.22", "1.2.23", "1.2.24", "1.2.25")
_FROM_1_24 = ("1.2.18", "1.2.19", "1.2.20", "1.2.21")
_CIS_1_8 = ("1.2.17", "1.2.18", "1.2.19", "1.2.20")
_FROM_1_9 = ("1.2.16", "1.2.17", "1.2.18", "1.2.19")
_FLAG_IDS: Mapping[str, tuple[str, str, str, str]] = MappingProxyType(
    {
        "cis-1.6": _PRE_1_24,
        "cis-1.24": _FROM_1_24,
        "cis-1.7": _FROM_1_24,
        "cis-1.8": _CIS_1_8,
        "cis-1.9": _FROM_1_9,
        "cis-1.10": _FROM_1_9,
        "cis-1.11": _FROM_1_9,
        "cis-1.12": _FROM_1_9,
    }
)
_AS_APPROPRIATE = "Ensure that the --audit-log-{} argument is set to {} or as appropriate"
_FLAG_CHECKS = (
    ("--audit-log-path", None, "Ensure that the --audit-log-path argument is set"),
    ("--audit-log-maxage", 30, _AS_APPROPRIATE.format("maxage", 30)),
    ("--audit-log-maxbackup", 10, _AS_APPROPRIATE.format("maxbackup", 10)),
    ("--audit-log-maxsize", 100, _AS_APPROPRIATE.format("maxsize", 100)),
)


@dataclass(frozen=True)
class Benchmark:
    """A kube-bench benchmark: its name and the generic CIS numbering its IDs follow."""

    name: str
    numbering: str  # key of _FLAG_IDS


@dataclass(frozen=True)
class CisResult:
    id: str
    benchmark: str
    title: str
    status: str  # PASS, FAIL or WARN
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "benchmark": self.benchmark,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


def benchmark_for(version: KubeVersion | str, distribution: str = "kubeadm") -> Benchmark:
    """kube-bench's mapping: 1.27 cis-1.9, 1.28 cis-1.10, 1.29-1.31 cis-1.11, 1.32+ cis-1.12.

    Versions newer than the newest known benchmark get the newest; versions older than
    1.24 get cis-1.6, the oldest benchmark whose numbering we carry. k3s and RKE2 have
    their own profiles (k3s-cis-*, rke2-cis-*) with the generic IDs.
    """
    minor = parse_version(version).minor_version
    if distribution in ("k3s", "rke2"):
        if minor <= (1, 24):
            return Benchmark(f"{distribution}-cis-1.24", "cis-1.24")
        if minor == (1, 25):
            return Benchmark(f"{distribution}-cis-1.7", "cis-1.7")
        return Benchmark(f"{distribution}-cis-1.8", "cis-1.8")
    table = (
        ((1, 23), "cis-1.6"),
        ((1, 24), "cis-1.24"),
        ((1, 25), "cis-1.7"),
        ((1, 26), "cis-1.8"),
        ((1, 27), "cis-1.9"),
        ((1, 28), "cis-1.10"),
        ((1, 31), "cis-1.11"),
    )
    for newest, name in table:
        if minor <= newest:
            return Benchmark(name, name)
    return Benchmark("cis-1.12", "cis-1.12")


def check_audit_flags(
    flags: Sequence[Flag], version: KubeVersion | str, distribution: str = "kubeadm"
) -> list[CisResult]:
    """1.2.x log flags and 3.2.1 (a policy file is set), as kube-bench tests them."""
    bench = benchmark_for(version, distribution)
    ids = _FLAG_IDS[bench.numbering]
    values = last_values(flags)
    out = []
    for check_id, (name, minimum, title) in zip(ids, _FLAG_CHECKS, strict=True):
        status, detail = _flag_status(name, values, minimum)
        out.append(CisResult(check_id, bench.name, title + " (Automated)", status, detail))
    policy = values.get("--audit-policy-file")
    out.append(
        CisResult(
            "3.2.1",
            bench.name,
            "Ensure that a minimal audit policy is created (Manual)",
            PASS if policy else FAIL,
            f"--audit-policy-file={policy}" if policy else "--audit-policy-file is not set",
        )
    )
    return out


def _flag_status(
    name: str, values: Mapping[str, str | None], minimum: int | None
) -> tuple[str, str]:
    if name not in values or not values[name]:
        return FAIL, f"{name} is not set"
    value = str(values[name])
    if minimum is None:
        return PASS, f"{name}={value}"
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        # kube-bench compares with strconv.Atoi: 0x1e runs fine but does not count.
        return FAIL, f"{name}={value} is not a decimal number kube-bench can compare"
    number = int(value)
    if number >= minimum:
        return PASS, f"{name}={value}"
    return FAIL, f"{name}={value} is below {minimum}"


# -- 3.2.2: what the policy records for requests the benchmark cares about ----------------------

_USER = UserInfo("jane@example.com", ("developers", "system:authenticated"))


def _req(
    verb: str, resource: str, *, group: str = "", sub: str = "", ns: str = "team-a"
) -> RequestAttributes:
    return RequestAttributes(
        verb=verb,
        user=_USER,
        namespace=ns,
        api_group=group,
        resource=resource,
        subresource=sub,
        name="" if verb in ("create", "list") else "example",
    )


_SENSITIVE = (
    ("get secrets", _req("get", "secrets")),
    ("create secrets", _req("create", "secrets")),
    ("update configmaps in kube-system", _req("update", "configmaps", ns="kube-system")),
    ("list configmaps", _req("list", "configmaps")),
    ("create tokenreviews", _req("create", "tokenreviews", group="authentication.k8s.io", ns="")),
    ("create serviceaccounts/token", _req("create", "serviceaccounts", sub="token")),
)
_MUST_RECORD = (
    ("create pods/exec", _req("create", "pods", sub="exec")),
    ("get pods/exec (websocket)", _req("get", "pods", sub="exec")),
    ("create pods/attach", _req("create", "pods", sub="attach")),
    ("create pods/portforward", _req("create", "pods", sub="portforward")),
    ("get pods/proxy", _req("get", "pods", sub="proxy")),
    ("get services/proxy", _req("get", "services", sub="proxy")),
    ("create pods", _req("create", "pods")),
    ("patch pods", _req("patch", "pods")),
    ("delete pods", _req("delete", "pods")),
    ("create deployments", _req("create", "deployments", group="apps")),
    ("update deployments", _req("update", "deployments", group="apps")),
    ("delete deployments", _req("delete", "deployments", group="apps")),
)
_GENERAL = (("create widgets.example.com", _req("create", "widgets", group="example.com")),)


def check_policy(policy: Policy, benchmark: Benchmark | str = "cis-1.12") -> CisResult:
    """3.2.2: sensitive resources at Metadata only; exec/attach/port-forward/proxy and
    Pod/Deployment changes recorded; Metadata as the general minimum."""
    name = benchmark.name if isinstance(benchmark, Benchmark) else benchmark
    checker = PolicyChecker(policy)
    fails: list[str] = []
    warns: list[str] = []
    for label, attrs in _SENSITIVE:
        level = checker.decide(attrs).level
        if level_rank(level) > level_rank("Metadata"):
            fails.append(f"{label} is logged at {level}: request/response bodies hold secrets")
        elif level == "None":
            warns.append(f"{label} is not recorded (Metadata is advised)")
    for label, attrs in _MUST_RECORD:
        if checker.decide(attrs).level == "None":
            fails.append(f"{label} is not recorded")
    for label, attrs in _GENERAL:
        if checker.decide(attrs).level == "None":
            warns.append(f"{label} is not recorded: no Metadata catch-all")
    status = FAIL if fails else WARN if warns else PASS
    detail = "; ".join(fails + warns) or (
        "secrets, configmaps and token requests at Metadata at most; exec, attach, "
        "port-forward, proxy and pod/deployment changes recorded; Metadata catch-all"
    )
    return CisResult(
        "3.2.2",
        name,
        "Ensure that the audit policy covers key security concerns (Manual)",
        status,
        detail,
    )
