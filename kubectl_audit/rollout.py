"""`enable` and `disable`: change kube-apiserver's static pod on each control-plane node, safely.

Phase 1 (pre-flight, read-only): validate the policy; on every selected node read the
manifest through a short-lived pod, render the new one with a pure function, refuse stray
files in the manifests folder. Nothing is changed if any node fails here, and `--dry-run`
stops here with a diff per node.

Phase 2, one node at a time: back up outside the manifests folder, write the policy, stage
the manifest, start the node-side commit (it swaps, watches and rolls back on its own),
wait out the API outage, read the node's result, and check from the API that the mirror
pod's config hash changed and its command carries the flags. The first failure stops the
rollout; nodes already done stay done and are reported.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from kubectl_audit.apiserver.diff import manifest_diff
from kubectl_audit.apiserver.manifest import (
    ManifestError,
    manifest_is_managed,
    read_manifest,
    render_disabled,
    render_enabled,
)
from kubectl_audit.apiserver.settings import AuditSettings
from kubectl_audit.controlplane import (
    ControlPlane,
    config_hash,
    read_apiserver_pod,
)
from kubectl_audit.errors import AuditError, ClusterError, NodeError, PolicyError
from kubectl_audit.node.agent import TMP_DIR, NodeAgent, NodeInspection
from kubectl_audit.node.debugpod import DebugPod, DebugPodOptions
from kubectl_audit.node.shell import StreamLost

log = logging.getLogger(__name__)

Mode = Literal["enable", "disable"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RolloutOptions:
    mode: Mode
    settings: AuditSettings
    policy: bytes | None  # the policy file's bytes (enable); None for disable
    pod: DebugPodOptions
    dry_run: bool = False
    force: bool = False  # proceed despite stray files in the manifests folder
    take_over: bool = False  # replace hand-made audit settings that conflict with ours
    timeout: float = 300.0  # per node: how long the new apiserver may take to be healthy
    settle: int = 15  # seconds a new apiserver container must keep running to count
    kubelet_period: int = 20  # how long the kubelet may take to notice a moved manifest


@dataclass(frozen=True)
class NodePlan:
    node: dict[str, Any]
    inspection: NodeInspection
    current: str
    new: str

    @property
    def name(self) -> str:
        return self.node["metadata"]["name"]

    @property
    def changes_manifest(self) -> bool:
        return self.new != self.current

    def diff(self) -> str:
        return manifest_diff(self.current, self.new, node=self.name)


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    state: Literal["unchanged", "planned", "changed", "rolled-back", "failed", "not-started"]
    message: str
    backup: str | None = None
    old_hash: str | None = None
    new_hash: str | None = None
    failed_log: str = ""
    diff: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"node": self.node, "state": self.state, "message": self.message}
        for key, value in (
            ("backup", self.backup),
            ("oldHash", self.old_hash),
            ("newHash", self.new_hash),
            ("failedContainerLog", self.failed_log),
            ("diff", self.diff),
        ):
            if value:
                data[key] = value
        return data


@dataclass
class RolloutReport:
    mode: Mode
    dry_run: bool
    outcomes: list[NodeOutcome] = field(default_factory=list)
    kubeadm_config: str = "unchanged"

    @property
    def ok(self) -> bool:
        return all(o.state in ("unchanged", "planned", "changed") for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dryRun": self.dry_run,
            "ok": self.ok,
            "nodes": [outcome.to_dict() for outcome in self.outcomes],
            "kubeadmConfig": self.kubeadm_config,
        }


def policy_sha256(policy: bytes) -> str:
    return hashlib.sha256(policy).hexdigest()


def render_for(mode: Mode, current: str, settings: AuditSettings, take_over: bool) -> str:
    if mode == "enable":
        return render_enabled(current, settings, take_over=take_over)
    if not manifest_is_managed(current):
        return current
    return render_disabled(current)


class Rollout:
    def __init__(
        self,
        api_client: Any,
        control_plane: ControlPlane,
        nodes: tuple[dict[str, Any], ...],
        options: RolloutOptions,
        progress: Progress,
    ) -> None:
        self.api_client = api_client
        self.control_plane = control_plane
        self.nodes = nodes
        self.options = options
        self.progress = progress
        # Unique per run: two runs in the same second must never share a run directory.
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = f"{stamp}-{secrets.token_hex(3)}"

    # -- phase 1 ---------------------------------------------------------------------------

    def plan(self) -> list[NodePlan]:
        plans = []
        for node in self.nodes:
            name = node["metadata"]["name"]
            self.progress(f"[preflight] reading kube-apiserver.yaml on {name}")
            with self._pod(node) as pod:
                inspection = self._inspect(NodeAgent(pod))
            plans.append(self._plan_node(node, inspection))
        return plans

    def _inspect(self, agent: NodeAgent) -> NodeInspection:
        """Read-only, so safe to repeat when the API goes away under it (another node's
        apiserver restarting, or another run's)."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            try:
                return agent.inspect(
                    policy_path=self.options.settings.policy_path,
                    log_path=self.options.settings.log_path,
                )
            except StreamLost:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _plan_node(self, node: dict[str, Any], inspection: NodeInspection) -> NodePlan:
        name = node["metadata"]["name"]
        if inspection.manifest is None:
            raise NodeError(
                f"{name} has no /etc/kubernetes/manifests/kube-apiserver.yaml",
                hint="kubectl-audit edits kubeadm-style static pods; see `kubectl audit status` "
                "for what this node runs",
            )
        strays = inspection.stray_manifest_files()
        if strays and not self.options.force:
            raise NodeError(
                f"{name}: stray files in /etc/kubernetes/manifests: {', '.join(strays)}; the "
                "kubelet runs every non-hidden file there, so a stale copy of kube-apiserver.yaml "
                "can silently win over our change",
                hint="move them out of the folder (e.g. to /etc/kubernetes/tmp/), or pass --force "
                "if they are pods you run on purpose",
            )
        if not inspection.has_crictl:
            raise NodeError(
                f"{name}: crictl not found on the node; kubectl-audit needs it to watch "
                "kube-apiserver restart and to roll back when it does not",
                hint="install crictl (kubeadm nodes have it: it comes with cri-tools)",
            )
        if inspection.lock_owner:
            self.progress(f"[preflight] {name} is locked by another run ({inspection.lock_owner})")
        try:
            current = inspection.manifest.decode("utf-8")
        except UnicodeDecodeError:
            raise NodeError(f"{name}: kube-apiserver.yaml is not UTF-8 text") from None
        try:
            opts = self.options
            new = render_for(opts.mode, current, opts.settings, opts.take_over)
        except ManifestError as error:
            raise type(error)(f"{name}: {error.message}", hint=error.hint) from None
        if self.options.mode == "enable":
            read_manifest(new, source=f"{name}:kube-apiserver.yaml (as we would write it)")
        return NodePlan(node, inspection, current, new)

    # -- phase 2 ---------------------------------------------------------------------------

    def apply(self, plans: list[NodePlan], report: RolloutReport) -> None:
        for index, plan in enumerate(plans):
            policy_differs = (
                self.options.mode == "enable"
                and plan.inspection.policy_sha256 != self.options.settings.policy_sha256
            )
            if not plan.changes_manifest and not policy_differs:
                report.outcomes.append(
                    NodeOutcome(plan.name, "unchanged", self._unchanged_message(plan))
                )
                continue
            try:
                outcome = self._apply_node(plan)
            except BaseException as error:
                report.outcomes.append(NodeOutcome(plan.name, "failed", _describe(error)))
                report.outcomes.extend(
                    NodeOutcome(p.name, "not-started", "not started: an earlier node failed")
                    for p in plans[index + 1 :]
                )
                raise
            report.outcomes.append(outcome)
            if outcome.state != "changed":
                report.outcomes.extend(
                    NodeOutcome(p.name, "not-started", "not started: an earlier node failed")
                    for p in plans[index + 1 :]
                )
                return

    def _unchanged_message(self, plan: NodePlan) -> str:
        if self.options.mode == "enable":
            return "audit logging already enabled with these settings; nothing to do"
        if plan.current == plan.new:
            return "audit logging is not managed by kubectl-audit here; nothing to do"
        return "nothing to do"

    def _apply_node(self, plan: NodePlan) -> NodeOutcome:
        opts = self.options
        name = plan.name
        rundir = f"{TMP_DIR}/kubectl-audit-{self.run_id}"
        old_hash = config_hash(self.control_plane.apiserver_pod(name))
        with self._pod(plan.node) as pod:
            agent = NodeAgent(pod)
            try:
                agent.install(rundir)
                agent.prepare(
                    rundir,
                    token=f"{self.run_id}-{pod.name}",
                    expected_sha256=plan.inspection.manifest_sha256,
                    new_manifest=plan.new,
                    policy_path=opts.settings.policy_path,
                    policy=opts.policy if opts.mode == "enable" else None,
                    log_dir=opts.settings.log_dir if opts.mode == "enable" else "",
                )
            except StreamLost:
                self._undo_after_lost_stream(agent, rundir, name)
                raise NodeError(
                    f"{name}: the API server went away while the change was being prepared "
                    "(another run, or an admin, restarting it?); the preparation was undone "
                    "and nothing was changed",
                    hint="run the command again once `kubectl get --raw /readyz` answers",
                ) from None
            except AuditError:
                self._tidy(agent, rundir, name)
                raise
            except BaseException:  # Ctrl-C while preparing: undo what got done on the node
                self._abort_or_keep(agent, pod, rundir, name)
                raise
            try:
                self.progress(f"[{name}] backed up kube-apiserver.yaml to {rundir}/")
                self._start_commit(agent, rundir, name)
            except BaseException:
                self._abort_or_keep(agent, pod, rundir, name)
                raise
            self.progress(
                f"[{name}] swapped the manifest; waiting for the kube-apiserver static pod to "
                f"restart (up to {opts.timeout:.0f}s; the API may be unreachable meanwhile)"
            )
            try:
                result = self._wait_for_result(agent, rundir, name)
            except BaseException:
                # The watcher runs inside the node-agent pod: deleting the pod would kill it
                # half-way. Its deadline removes it once the watcher is surely done.
                pod.keep()
                self.progress(
                    f"[{name}] stopped waiting: the node finishes the change or rolls it back "
                    f"on its own (result in {rundir}/result); pod {pod.name} deletes itself at "
                    "its deadline, or run `kubectl audit cleanup` after that"
                )
                raise
            if result.state in ("died-before-swap", "not-started"):
                try:
                    agent.abort(rundir, policy_path=opts.settings.policy_path)
                except NodeError:  # the commit did start after all: wait for it after all
                    result = self._wait_for_result(agent, rundir, name)
        if result.state == "rolled-back":
            restored = (
                "the previous manifest is running again"
                if result.old_apiserver_running
                else "the previous manifest was restored but its apiserver is not yet healthy"
            )
            return NodeOutcome(
                name,
                "rolled-back",
                f"the new kube-apiserver did not become healthy; rolled back automatically: "
                f"{restored}",
                backup=f"{rundir}/kube-apiserver.yaml",
                old_hash=old_hash,
                failed_log=result.failed_log,
            )
        if result.state != "committed":
            return NodeOutcome(
                name,
                "failed",
                f"the node reported {result.state}: {result.reason}",
                backup=f"{rundir}/kube-apiserver.yaml",
            )
        new_hash = self._verify_running(name, old_hash, plan)
        self.progress(f"[{name}] Static pod: kube-apiserver-{name} hash: {old_hash} -> {new_hash}")
        verb = "enabled" if opts.mode == "enable" else "disabled"
        return NodeOutcome(
            name,
            "changed",
            f"audit logging {verb}; kube-apiserver restarted and healthy",
            backup=f"{rundir}/kube-apiserver.yaml",
            old_hash=old_hash,
            new_hash=new_hash,
        )

    def _start_commit(self, agent: NodeAgent, rundir: str, name: str) -> None:
        opts = self.options
        try:
            agent.commit(
                rundir,
                policy_path=opts.settings.policy_path,
                timeout=int(opts.timeout),
                settle=opts.settle,
                kubelet_period=opts.kubelet_period,
            )
        except (StreamLost, ClusterError) as error:
            # Expected on one control plane: the swap stops the API server that carries this
            # very exec stream. The node-side worker goes on; its result tells.
            log.info("%s: the exec stream ended while starting the commit: %s", name, error)

    def _tidy(self, agent: NodeAgent, rundir: str, name: str) -> None:
        """Prepare was refused (lock held, manifest changed): nothing of ours is on the node
        but the uploaded files. Remove them if the API lets us; the refusal is what matters."""
        try:
            agent.discard(rundir)
        except ClusterError as error:
            log.warning("%s: could not remove %s (%s)", name, rundir, error.message)

    def _undo_after_lost_stream(self, agent: NodeAgent, rundir: str, name: str) -> None:
        """We do not know how far prepare got: abort (safe either way) once the API is back."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            try:
                agent.abort(rundir, policy_path=self.options.settings.policy_path)
                agent.discard(rundir)
                return
            except ClusterError:
                if time.monotonic() > deadline:
                    raise NodeError(
                        f"{name}: lost the connection while preparing, and could not undo it: "
                        f"the node may hold a staged manifest and a lock in {rundir}",
                        hint="run `kubectl audit cleanup` when the API is back",
                    ) from None
                time.sleep(1)

    def _abort_or_keep(self, agent: NodeAgent, pod: DebugPod, rundir: str, name: str) -> None:
        """Interrupted while starting the commit: undo it if it has not started, else leave
        the node-side worker (and the pod it runs in) to finish on its own."""
        try:
            agent.abort(rundir, policy_path=self.options.settings.policy_path)
            agent.discard(rundir)
        except AuditError:
            pod.keep()
            self.progress(
                f"[{name}] interrupted after the commit started: the node finishes or rolls "
                f"back on its own (result in {rundir}/result)"
            )
            return
        self.progress(f"[{name}] interrupted before the swap: nothing was changed")

    def _wait_for_result(self, agent: NodeAgent, rundir: str, name: str):  # -> CommitResult
        # The node may try two remedies and a rollback, each waiting up to `timeout`.
        deadline = time.monotonic() + 4 * self.options.timeout + 60
        last_error = ""
        not_started_since: float | None = None
        while time.monotonic() < deadline:
            try:
                result = agent.result(rundir)
            except (StreamLost, ClusterError) as error:
                last_error = str(error)  # the API is restarting: expected, keep waiting
                time.sleep(1)
                continue
            if result.state == "not-started":
                # The node has not seen the commit: its connection broke before the command
                # ran. Give a command still in flight a few seconds to show up first.
                not_started_since = not_started_since or time.monotonic()
                if time.monotonic() - not_started_since >= 5:
                    return result
            elif result.state != "running":
                return result
            time.sleep(1)
        raise NodeError(
            f"{name}: no result from the node in time ({last_error or 'still running'})",
            hint=f"the node-side watcher keeps going on its own; see {rundir}/commit.log and "
            "`kubectl audit status` for what the node runs now",
        )

    def _verify_running(self, name: str, old_hash: str | None, plan: NodePlan) -> str | None:
        """The mirror pod must show a new config hash, and a command with our flags (enable)
        or without the ones we had added (disable)."""
        if self.options.mode == "enable":
            wanted, unwanted = set(self.options.settings.flags()), set()
        else:
            wanted, unwanted = set(), set(_managed_flags(plan.current))
        deadline = time.monotonic() + max(60.0, self.options.timeout)
        seen = "no mirror pod yet"
        while time.monotonic() < deadline:
            try:
                pod = read_apiserver_pod(self.api_client, name)
            except Exception as error:  # noqa: BLE001 - the API may still be settling
                seen = f"API not ready: {type(error).__name__}"
                time.sleep(1)
                continue
            new_hash = config_hash(pod)
            if pod is not None and new_hash and new_hash != old_hash:
                command = set(_apiserver_command(pod))
                if wanted <= command and not unwanted & command:
                    return new_hash
                seen = "the mirror pod restarted but its command does not show the change"
            else:
                seen = f"mirror pod hash still {new_hash}"
            time.sleep(1)
        raise NodeError(
            f"{name}: the node reported success but the API does not show it ({seen})",
            hint="the kubelet may be slow to update the mirror pod; check `kubectl audit status`",
        )

    def _pod(self, node: dict[str, Any]) -> DebugPod:
        deadline = int(4 * self.options.timeout + 600)
        options = replace(
            self.options.pod,
            deadline_seconds=max(self.options.pod.deadline_seconds, deadline),
            labels={"kubectl-audit.io/run": self.run_id},
        )
        return DebugPod(self.api_client, node, options, progress=self.progress)


def _apiserver_command(pod: dict[str, Any]) -> list[str]:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == "kube-apiserver":
            return [*container.get("command", []), *container.get("args", [])]
    return []


def _managed_flags(manifest: str) -> list[str]:
    record = read_manifest(manifest).record
    return list(record.flags) if record else []


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, AuditError):
        return error.message
    return f"{type(error).__name__}: {error}"


def check_policy_or_raise(policy: bytes, source: str) -> None:
    """Pre-flight: the policy must load exactly as kube-apiserver would load it."""
    from kubectl_audit.policy.report import check_policy

    report = check_policy(policy, file=source)
    if report.errors:
        lines = [
            f"{source}:{e.line}: {e.message}" if e.line else f"{source}: {e.message}"
            for e in report.errors
        ]
        raise PolicyError(
            "the policy would stop kube-apiserver from starting:\n  " + "\n  ".join(lines),
            hint=f"fix it (check with `kubectl audit validate {source}`); no node was touched",
        )
