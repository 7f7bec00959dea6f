"""Is the apiserver running, ready, and how often has it restarted: its mirror pod's status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_audit.apiserver.problems import Problem, error, warning


@dataclass(frozen=True)
class Health:
    """The kube-apiserver container as the kubelet last reported it."""

    phase: str
    ready: bool | None  # None: the kubelet has reported no container status yet
    restarts: int | None  # None: not a container (k3s runs the apiserver in-process)
    state: str  # "running", "waiting: CrashLoopBackOff", "terminated: Error", ""
    last_termination: str  # "Error (exit code 1) at 2026-01-18T14:06:22Z", ""
    last_exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "ready": self.ready,
            "restarts": self.restarts,
            "state": self.state,
            "lastTermination": self.last_termination or None,
        }

    def problems(self, pod_name: str) -> list[Problem]:
        out: list[Problem] = []
        if self.ready is not True:
            why = self.state or self.phase or "no container status reported"
            out.append(
                error(
                    "apiserver-not-ready",
                    f"{pod_name} is not ready ({why})"
                    + (f"; last exit: {self.last_termination}" if self.last_termination else ""),
                    hint=f"kubectl -n kube-system logs {pod_name} --previous shows why it stopped",
                )
            )
        elif self.restarts and self.last_exit_code:
            # Exit 0 ("Completed") is an orderly stop, e.g. Docker Desktop's VM shutting down.
            out.append(
                warning(
                    "apiserver-restarted",
                    f"{pod_name} has restarted {self.restarts} time(s); last exit: "
                    f"{self.last_termination}",
                    hint="restarts right after an audit change point at the policy or the "
                    "mounts; `kubectl -n kube-system logs --previous` shows the reason",
                )
            )
        return out


def health_of(pod: Mapping[str, Any], container_name: str) -> Health:
    """Read the named container's status (the only one, if the name does not match)."""
    status = pod.get("status") or {}
    statuses = list(status.get("containerStatuses") or [])
    chosen = next((s for s in statuses if s.get("name") == container_name), None)
    if chosen is None and len(statuses) == 1:
        chosen = statuses[0]
    phase = str(status.get("phase") or "")
    terminated = ((chosen or {}).get("lastState") or {}).get("terminated")
    if chosen is None:
        return Health(phase, None, 0, "", "")
    return Health(
        phase=phase,
        ready=bool(chosen.get("ready")),
        restarts=int(chosen.get("restartCount") or 0),
        state=_state_text(chosen.get("state") or {}),
        last_termination=_termination_text(terminated),
        last_exit_code=_exit_code(terminated),
    )


def _state_text(state: Mapping[str, Any]) -> str:
    if "running" in state and state["running"] is not None:
        return "running"
    for key in ("waiting", "terminated"):
        detail = state.get(key)
        if detail:
            reason = detail.get("reason") or ""
            return f"{key}: {reason}" if reason else key
    return ""


def _termination_text(terminated: Mapping[str, Any] | None) -> str:
    if not terminated:
        return ""
    reason = terminated.get("reason") or "terminated"
    text = f"{reason} (exit code {terminated.get('exitCode', '?')})"
    finished = terminated.get("finishedAt")
    return f"{text} at {finished}" if finished else text


def _exit_code(terminated: Mapping[str, Any] | None) -> int | None:
    code = (terminated or {}).get("exitCode")
    return code if isinstance(code, int) else None
