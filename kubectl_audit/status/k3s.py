"""k3s: no apiserver pod, so `status --deep` reads the flags from the k3s service log.

k3s logs `Running kube-apiserver --flag=value ...` each time it starts the embedded
apiserver; kube-bench's k3s profiles read the flags from there too (field-notes §3.3).
systemd installs log to the journal (`journalctl -u k3s`), OpenRC installs to
/var/log/k3s.log. The apiserver runs in the k3s process on the host, so its paths are
host paths: there are no mounts to check.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubectl_audit.apiserver.flags import Flag
from kubectl_audit.apiserver.k3s import flags_from_k3s_log
from kubectl_audit.apiserver.mounts import check_paths_reachable
from kubectl_audit.apiserver.problems import Problem, error
from kubectl_audit.apiserver.state import audit_state
from kubectl_audit.apiserver.staticpod import StaticPod
from kubectl_audit.errors import NodeError
from kubectl_audit.node.agent import parse_reply
from kubectl_audit.node.shell import NodeShell
from kubectl_audit.status.health import Health
from kubectl_audit.status.report import NodeStatus, policy_cis

OPENRC_LOG = "/var/log/k3s.log"
# Prints the newest start line (base64) from the journal, else from OpenRC's log file.
K3S_SCRIPT = r"""
set -u
line=""
if command -v journalctl >/dev/null 2>&1; then
    line=$(journalctl -u k3s --no-pager -o cat 2>/dev/null \
        | grep 'Running kube-apiserver' | tail -n 1)
fi
if [ -z "$line" ] && [ -f "$1" ]; then
    line=$(grep 'Running kube-apiserver' "$1" | tail -n 1)
fi
printf 'k3s_line\t%s\n' "$(printf '%s' "$line" | base64 | tr -d '\n')"
"""


def read_k3s_apiserver_line(shell: NodeShell, *, timeout: float = 60.0) -> str:
    """The newest `Running kube-apiserver` line on the node, or "" if there is none."""
    script = K3S_SCRIPT.encode()
    argv = ["sh", "-c", 'exec sh -c "$(head -c "$0")" kubectl-audit-k3s "$@"']
    result = shell.run([*argv, str(len(script)), OPENRC_LOG], timeout=timeout, stdin=script)
    if not result.ok:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.exit_code}"
        raise NodeError(f"reading the k3s service log on {shell.node} failed: {message}")
    encoded = (parse_reply(result.stdout).get("k3s_line") or [""])[0]
    return base64.b64decode(encoded).decode("utf-8", "replace")


def k3s_node_status(node: Mapping[str, Any], log_line: str) -> NodeStatus:
    """A k3s server's audit status from its newest apiserver start line (pure)."""
    name = str(node["metadata"]["name"])
    flags = flags_from_k3s_log(log_line)
    health = _node_health(node)
    if flags is None:
        problem = error(
            "k3s-flags-not-found",
            f"no `Running kube-apiserver` line on {name} in `journalctl -u k3s` or "
            f"{OPENRC_LOG}: the apiserver's flags are unknown",
            hint="is this a k3s server node? the journal may have been rotated since k3s started",
        )
        return NodeStatus(name, None, None, None, health, None, (), (problem,), runs_as="k3s")
    pod = _as_pod(name, flags)
    version = str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")
    state = audit_state(pod, version or None, "k3s")
    # The apiserver is a host process: its paths are on the node, mounts do not apply.
    mount_problems = set(check_paths_reachable(pod.spec, pod.container))
    state = replace(
        state,
        log_host_path=state.log_path if state.log_path.startswith("/") else None,
        problems=tuple(p for p in state.problems if p not in mount_problems),
    )
    problems: list[Problem] = list(state.problems)
    if not state.enabled and not state.policy_file and not state.log_path:
        problems.insert(
            0,
            error(
                "audit-off",
                "audit logging is off: k3s starts kube-apiserver without --audit-policy-file "
                "and --audit-log-path",
                hint="add kube-apiserver-arg entries to /etc/rancher/k3s/config.yaml (steps below)",
            ),
        )
    if health.ready is not True:
        problems.append(
            error(
                "k3s-node-not-ready",
                f"node {name} is not Ready: the k3s service (and its apiserver) may be down",
                hint="systemctl status k3s; journalctl -u k3s -e",
            )
        )
    cis = (*state.cis, policy_cis(state, None))
    return NodeStatus(name, None, pod, state, health, None, cis, tuple(problems), runs_as="k3s")


def _as_pod(node: str, flags: tuple[Flag, ...]) -> StaticPod:
    """The flags in StaticPod's shape, so the flag and CIS checks read them as usual."""
    command = ["kube-apiserver", *(flag.text for flag in flags)]
    pod = {
        "metadata": {"name": f"k3s-{node}"},
        "spec": {"containers": [{"name": "kube-apiserver", "command": command}]},
    }
    return StaticPod(pod, 0, tuple(replace(f, index=i + 1) for i, f in enumerate(flags)))


def _node_health(node: Mapping[str, Any]) -> Health:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        return Health("k3s", None, None, "", "")
    is_ready = ready.get("status") == "True"
    return Health("k3s", is_ready, None, "node Ready" if is_ready else "node NotReady", "")
