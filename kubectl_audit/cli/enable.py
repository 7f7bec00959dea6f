"""`kubectl audit enable | disable | cleanup`."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from kubectl_audit.apiserver.settings import (
    DEFAULT_LOG_PATH,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BACKUP,
    DEFAULT_MAX_SIZE,
    DEFAULT_POLICY_PATH,
    AuditSettings,
)
from kubectl_audit.cli.options import KubeOptions, kube_options, output_option, verbosity_option
from kubectl_audit.errors import InputError, UsageError
from kubectl_audit.node.debugpod import DebugPodOptions
from kubectl_audit.render import to_json

MAX_TIMEOUT = 30 * 60


def _timeout(ctx: click.Context, param: click.Parameter, value: str) -> float:
    from kubectl_audit.durations import parse_duration

    try:
        seconds = parse_duration(value, default_unit="s").total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if not 10 <= seconds <= MAX_TIMEOUT:
        raise click.BadParameter("must be between 10s and 30m")
    return seconds


def _progress(message: str) -> None:
    click.echo(message, err=True)


@dataclass(frozen=True)
class NodeAccess:
    """How commands reach nodes and how long they wait: the node-agent pod's namespace,
    image and pull secrets, and the health timings of a rollout."""

    namespace: str
    image: str | None
    image_pull_secrets: tuple[str, ...]
    timeout: float
    settle: int
    kubelet_period: int

    def pod_options(self) -> DebugPodOptions:
        return DebugPodOptions(
            namespace=self.namespace,
            image=self.image,
            image_pull_secrets=self.image_pull_secrets,
            start_timeout=min(self.timeout, 180.0),
        )


def node_access_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds the node-agent pod and timing options and passes `access: NodeAccess`."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        namespace: str,
        image: str | None,
        image_pull_secrets: tuple[str, ...],
        timeout: float,
        settle: int,
        kubelet_period: int,
        **kwargs: Any,
    ) -> Any:
        access = NodeAccess(namespace, image, image_pull_secrets, timeout, settle, kubelet_period)
        return func(*args, access=access, **kwargs)

    for option in reversed(
        (
            click.option(
                "-n",
                "--namespace",
                default="kube-system",
                show_default=True,
                help="Namespace for the short-lived node-agent pod. It is privileged, so Pod "
                "Security must allow that there.",
            ),
            click.option(
                "--image",
                default=None,
                help="Image for the node-agent pod (needs sh, sleep and chroot). Default: a "
                "shell image already on the node, else busybox.",
            ),
            click.option(
                "--image-pull-secret",
                "image_pull_secrets",
                multiple=True,
                help="Pull secret for --image (repeatable).",
            ),
            click.option(
                "--timeout",
                default="5m",
                show_default=True,
                callback=_timeout,
                help="How long the new kube-apiserver may take to become healthy on a node "
                "before it is rolled back.",
            ),
            click.option("--settle", default=15, hidden=True, type=click.IntRange(1, 600)),
            click.option("--kubelet-period", default=20, hidden=True, type=click.IntRange(1, 600)),
        )
    ):
        wrapper = option(wrapper)
    return wrapper


def _rotation_option(name: str, default: int, help_text: str) -> Callable[[Any], Any]:
    return click.option(
        name, default=default, show_default=True, type=click.IntRange(0), help=help_text
    )


def _read_policy(policy_file: str | None, preset: str | None) -> tuple[bytes, str]:
    from kubectl_audit.policy.presets import preset_source, read_preset

    if policy_file and preset:
        raise UsageError("give either --policy or --preset, not both")
    if policy_file:
        try:
            if policy_file == "-":
                return sys.stdin.buffer.read(), "<stdin>"
            with open(policy_file, "rb") as handle:
                return handle.read(), policy_file
        except OSError as error:
            raise InputError(f"cannot read {policy_file}: {error.strerror or error}") from None
    name = preset or "recommended"
    return read_preset(name).encode(), preset_source(name)


def _confirm(what: str, nodes: int, assume_yes: bool) -> None:
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what} restarts kube-apiserver on {nodes} node(s); confirm with --yes "
            "(or look first with --dry-run)"
        )
    click.confirm(
        f"{what} on {nodes} control-plane node(s)? kube-apiserver restarts on each, one at a time",
        abort=True,
        err=True,
    )


def _run(
    mode: str,
    kube: KubeOptions,
    access: NodeAccess,
    settings: AuditSettings,
    policy: bytes | None,
    nodes: tuple[str, ...],
    *,
    dry_run: bool,
    assume_yes: bool,
    force: bool,
    take_over: bool,
    persist: bool,
    output: str,
) -> int:
    from kubectl_audit.controlplane import read_control_plane
    from kubectl_audit.kube.client import connect
    from kubectl_audit.rollout import Rollout, RolloutOptions, RolloutReport

    api = connect(kube)
    control_plane = read_control_plane(api)
    _refuse_unsupported_distribution(control_plane)
    selected = control_plane.select(nodes)
    if not selected:
        raise UsageError("no control-plane nodes found", hint="name them with --node")
    options = RolloutOptions(
        mode=mode,  # type: ignore[arg-type]
        settings=settings,
        policy=policy,
        pod=access.pod_options(),
        dry_run=dry_run,
        force=force,
        take_over=take_over,
        timeout=access.timeout,
        settle=access.settle,
        kubelet_period=access.kubelet_period,
    )
    rollout = Rollout(api, control_plane, selected, options, _progress)
    report = RolloutReport(mode=options.mode, dry_run=dry_run)
    plans = rollout.plan()
    persist_plan = None
    if persist:
        from kubectl_audit.persist import plan_persist

        persist_plan = plan_persist(api, mode, settings, take_over=take_over)
        if persist_plan.config_map is None:
            _progress("[kubeadm-config] no kube-system/kubeadm-config ConfigMap: not persisted")
    if dry_run:
        from kubectl_audit.rollout import NodeOutcome

        for plan in plans:
            report.outcomes.append(
                NodeOutcome(
                    plan.name,
                    "planned" if plan.changes_manifest else "unchanged",
                    _planned_message(mode, plan, settings),
                    diff=plan.diff(),
                )
            )
        if persist_plan is not None and persist_plan.changes:
            report.kubeadm_config = "would update"
            if output != "json":
                click.echo(persist_plan.diff(), nl=False)
        _print_report(report, output)
        return 0
    if any(plan.changes_manifest for plan in plans):
        _confirm(f"{mode.capitalize()} audit logging", len(plans), assume_yes)
    try:
        rollout.apply(plans, report)
        if report.ok and persist_plan is not None:
            from kubectl_audit.persist import WHERE, apply_persist

            if apply_persist(api, persist_plan):
                report.kubeadm_config = "updated"
                _progress(f"[kubeadm-config] updated {WHERE} so kubeadm upgrade keeps this")
    finally:
        _print_report(report, output)
    return 0 if report.ok else 1


def _planned_message(mode: str, plan: Any, settings: AuditSettings) -> str:
    if not plan.changes_manifest:
        return "nothing to change"
    if mode == "enable":
        return (
            f"would write the policy to {settings.policy_path} (0600), create "
            f"{settings.log_dir} (0700), back up kube-apiserver.yaml to "
            "/etc/kubernetes/tmp/kubectl-audit-<time>/ and restart kube-apiserver"
        )
    return "would remove the audit flags, volumes and annotations kubectl-audit added"


def _print_report(report: Any, output: str) -> None:
    if output == "json":
        click.echo(to_json(report.to_dict()))
        return
    for outcome in report.outcomes:
        if outcome.diff:
            click.echo(outcome.diff, nl=not outcome.diff.endswith("\n"))
        click.echo(f"{outcome.node}: {outcome.state}: {outcome.message}")
        if outcome.backup and outcome.state != "unchanged":
            click.echo(f"  backup: {outcome.backup}")
        if outcome.failed_log:
            click.echo("  last lines of the failed kube-apiserver container:")
            for line in outcome.failed_log.rstrip().splitlines()[-15:]:
                click.echo(f"    {line}")


def _refuse_unsupported_distribution(control_plane: Any) -> None:
    """k3s, RKE2 and managed clouds are not kubeadm static pods: say what to do there."""
    from kubectl_audit.apiserver.distribution import detect_distribution
    from kubectl_audit.errors import ClusterError

    found = detect_distribution(control_plane.nodes, control_plane.kube_system_pods)
    if not found.manifest_editable:
        raise ClusterError(
            f"this cluster looks like {found.kind} ({'; '.join(found.evidence)}): "
            "kubectl-audit enable edits kubeadm-style static pods only. What to do instead:\n"
            + found.instructions
        )


def _settings(
    policy_path: str,
    log_path: str,
    max_size: int,
    max_backup: int,
    max_age: int,
    compress: bool,
    policy_sha256: str = "",
) -> AuditSettings:
    return AuditSettings(
        policy_path=policy_path,
        log_path=log_path,
        max_size=max_size,
        max_backup=max_backup,
        max_age=max_age,
        compress=compress,
        policy_sha256=policy_sha256,
    )


@click.command()
@click.option("--policy", "policy_file", metavar="FILE", help="Audit policy file ('-' = stdin).")
@click.option("--preset", default=None, help="A shipped policy (default: recommended).")
@click.option("--node", "nodes", multiple=True, help="Only this control-plane node (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show the diff per node and change nothing.")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--policy-path",
    default=DEFAULT_POLICY_PATH,
    show_default=True,
    help="Where the policy is written on each node.",
)
@click.option(
    "--log-path",
    default=DEFAULT_LOG_PATH,
    show_default=True,
    help="The audit log file on each node (its directory is mounted).",
)
@_rotation_option("--max-size", DEFAULT_MAX_SIZE, "--audit-log-maxsize in MiB (CIS: >= 100).")
@_rotation_option("--max-backup", DEFAULT_MAX_BACKUP, "--audit-log-maxbackup (CIS: >= 10).")
@_rotation_option("--max-age", DEFAULT_MAX_AGE, "--audit-log-maxage in days (CIS: >= 30).")
@click.option("--compress", is_flag=True, help="gzip rotated logs (--audit-log-compress).")
@click.option("--force", is_flag=True, help="Proceed despite stray files in the manifests folder.")
@click.option(
    "--take-over",
    is_flag=True,
    help="Replace hand-made audit flags/mounts that conflict (disable restores them).",
)
@click.option(
    "--no-persist",
    is_flag=True,
    help="Do not update kube-system/kubeadm-config (kubeadm upgrade would then undo this).",
)
@output_option("text", "json", default="text")
@node_access_options
@kube_options
@verbosity_option
def enable(
    kube: KubeOptions,
    policy_file: str | None,
    preset: str | None,
    nodes: tuple[str, ...],
    dry_run: bool,
    assume_yes: bool,
    policy_path: str,
    log_path: str,
    max_size: int,
    max_backup: int,
    max_age: int,
    compress: bool,
    force: bool,
    take_over: bool,
    no_persist: bool,
    output: str,
    access: NodeAccess,
) -> int:
    """Turn on API-server audit logging on every control-plane node, one at a time.

    Before touching any node the policy is validated as kube-apiserver would load it and
    the new kube-apiserver.yaml is rendered and checked. Then, per node, a short-lived
    privileged pod backs the manifest up to /etc/kubernetes/tmp/kubectl-audit-<time>/,
    writes the policy (0600), creates the log directory (0700) and swaps the manifest; a
    watcher on the node rolls back by itself if kube-apiserver does not come back healthy.

    Running it again with the same settings changes nothing; a changed policy alone is
    rewritten and kube-apiserver restarted. Exit status: 0 done (or nothing to do), 1 a
    node failed or was rolled back, 2 usage error.
    """
    from kubectl_audit.rollout import check_policy_or_raise, policy_sha256

    policy, source = _read_policy(policy_file, preset)
    check_policy_or_raise(policy, source)
    settings = _settings(
        policy_path, log_path, max_size, max_backup, max_age, compress, policy_sha256(policy)
    )
    return _run(
        "enable", kube, access, settings, policy, nodes,
        dry_run=dry_run, assume_yes=assume_yes, force=force, take_over=take_over,
        persist=not no_persist, output=output,
    )  # fmt: skip


@click.command()
@click.option("--node", "nodes", multiple=True, help="Only this control-plane node (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show the diff per node and change nothing.")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Proceed despite stray files in the manifests folder.")
@click.option("--no-persist", is_flag=True, help="Leave kube-system/kubeadm-config alone.")
@output_option("text", "json", default="text")
@node_access_options
@kube_options
@verbosity_option
def disable(
    kube: KubeOptions,
    nodes: tuple[str, ...],
    dry_run: bool,
    assume_yes: bool,
    force: bool,
    no_persist: bool,
    output: str,
    access: NodeAccess,
) -> int:
    """Remove exactly what `enable` added, with the same safety.

    Flags, volumes, mounts and annotations that enable added are removed and anything it
    replaced is put back: a manifest not edited since enable comes back byte for byte.
    The policy file and the logs stay on the nodes. Exit status as for enable.
    """
    return _run(
        "disable", kube, access, AuditSettings(), None, nodes,
        dry_run=dry_run, assume_yes=assume_yes, force=force, take_over=False,
        persist=not no_persist, output=output,
    )  # fmt: skip


@click.command()
@click.option(
    "--all",
    "include_active",
    is_flag=True,
    help="Also delete node-agent pods that may still be working (before their deadline).",
)
@click.option(
    "--locks/--no-locks",
    default=True,
    show_default=True,
    help="Also remove node locks older than the longest possible run.",
)
@output_option("text", "json", default="text")
@node_access_options
@kube_options
@verbosity_option
def cleanup(
    kube: KubeOptions,
    include_active: bool,
    locks: bool,
    output: str,
    access: NodeAccess,
) -> int:
    """Delete node-agent pods kubectl-audit left behind, in every namespace, and stale locks.

    Pods are found by the label app.kubernetes.io/managed-by=kubectl-audit. Pods still
    inside their deadline are kept unless --all: one may carry the node-side watcher of an
    interrupted enable, which must finish or roll back. A node lock is stale when it is
    older than the longest run enable can make (2 hours).
    """
    from kubectl_audit.cleanup import remove_stale_locks, remove_stray_pods
    from kubectl_audit.controlplane import read_control_plane
    from kubectl_audit.kube.client import connect

    api = connect(kube)
    pods = remove_stray_pods(api, include_active=include_active)
    removed_locks: list[str] = []
    if locks:
        control_plane = read_control_plane(api)
        removed_locks = remove_stale_locks(
            api, control_plane.control_plane_nodes(), access.pod_options(), _progress
        )
    if output == "json":
        click.echo(to_json({"deletedPods": pods, "removedLocks": removed_locks}))
    else:
        for pod in pods:
            click.echo(f"pod/{pod} deleted")
        for lock in removed_locks:
            click.echo(f"stale lock removed: {lock}")
        if not pods and not removed_locks:
            click.echo("nothing to clean up")
    return 0
