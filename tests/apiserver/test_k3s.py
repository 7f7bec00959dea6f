"""Reading the embedded apiserver's flags from the k3s service log (written by us, k3s format)."""

from __future__ import annotations

from kubectl_audit.apiserver.flags import last_values
from kubectl_audit.apiserver.k3s import flags_from_k3s_log

JOURNAL = """\
Nov 28 10:00:01 server-1 k3s[812]: time="2026-11-28T10:00:01Z" level=info msg="Starting k3s v1.30.6+k3s1 (1829eaae)"
Nov 28 10:00:02 server-1 k3s[812]: time="2026-11-28T10:00:02Z" level=info msg="Running kube-apiserver --advertise-port=6443 --allow-privileged=true --authorization-mode=Node,RBAC --secure-port=6444"
Nov 28 11:30:40 server-1 k3s[1907]: time="2026-11-28T11:30:40Z" level=info msg="Running kube-apiserver --advertise-port=6443 --allow-privileged=true --audit-log-maxage=30 --audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log --audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml --secure-port=6444"
Nov 28 11:30:41 server-1 k3s[1907]: time="2026-11-28T11:30:41Z" level=info msg="Running kube-scheduler --bind-address=127.0.0.1"
"""  # noqa: E501


def test_the_newest_start_wins() -> None:
    flags = flags_from_k3s_log(JOURNAL)
    assert flags is not None
    values = last_values(flags)
    assert values["--audit-log-path"] == "/var/lib/rancher/k3s/server/logs/audit.log"
    assert values["--audit-policy-file"] == "/var/lib/rancher/k3s/server/audit.yaml"
    assert "--bind-address" not in values


def test_no_start_line() -> None:
    assert flags_from_k3s_log('level=info msg="Starting k3s"\n') is None
