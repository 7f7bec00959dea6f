"""The human view of `status`: a kubectl-style row per node, details and problems below."""

from __future__ import annotations

from kubectl_audit.apiserver.cis import FAIL, PASS
from kubectl_audit.render import table
from kubectl_audit.status.deep import DeepLog, PolicyOnDisk, human_bytes, human_duration
from kubectl_audit.status.report import ClusterStatus, NodeStatus

HEADERS = ("NODE", "AUDIT", "POLICY", "LOG", "MAXAGE/BACKUP/SIZE", "READY", "RESTARTS", "CIS")
DEEP_HEADERS = ("LOG-SIZE", "OLDEST-EVENT", "RETENTION")
WIDE_HEADERS = ("VERSION", "BENCHMARK", "MANAGED", "WEBHOOK", "POLICY-SHA256")


def render_status(status: ClusterStatus, *, wide: bool = False) -> str:
    """The whole text output: table, per-node details, problems, distribution advice."""
    if status.cannot_see_apiservers:
        return _elsewhere(status)
    deep = any(n.deep is not None for n in status.nodes)
    headers = HEADERS + (DEEP_HEADERS if deep else ()) + (WIDE_HEADERS if wide else ())
    rows = [_row(n, deep=deep, wide=wide) for n in status.nodes]
    parts = [table(headers, rows)]
    for node in status.nodes:
        parts.append(_details(node))
    problems = [_problem_line(n.node, p) for n in status.nodes for p in n.all_problems]
    if problems:
        parts.append("Problems:\n" + "\n".join(problems))
    parts.append(_verdict(status))
    if status.distribution.instructions and not status.ok:
        parts.append(
            f"This cluster is {status.distribution.kind}; to change its audit settings:\n"
            + status.distribution.instructions
        )
    return "\n\n".join(p for p in parts if p) + "\n"


def audit_word(node: NodeStatus) -> str:
    if node.state is None:
        return "unknown"
    if not node.enabled:
        return "off"
    return "on" if not any(p.is_error for p in node.all_problems) else "broken"


def policy_word(node: NodeStatus) -> str:
    state = node.state
    if state is None or not state.policy_file:
        return "-"
    if node.policy_preset:
        return node.policy_preset
    if state.policy_sha256:
        return state.policy_sha256[:12]
    return "hand-made"  # no kubectl-audit annotation: its digest is not known


def log_word(node: NodeStatus) -> str:
    state = node.state
    if state is None:
        return "-"
    if state.log_path == "-":
        return "stdout"
    if not state.log_path:
        return "webhook" if state.webhook else "-"
    if any(p.code == "log-not-mounted" for p in state.problems):
        return "NOT-MOUNTED"
    if any(p.code == "log-file-mounted" for p in state.problems):
        return "FILE-MOUNT"
    return state.log_host_path or state.log_path


def rotation_word(node: NodeStatus) -> str:
    state = node.state
    if state is None or not state.log_path or state.log_path == "-":
        return "-"
    return f"{state.max_age_days}d/{state.max_backup}/{state.max_size_mib}Mi"


def cis_word(node: NodeStatus) -> str:
    if not node.cis:
        return "-"
    passed = sum(1 for c in node.cis if c.status == PASS)
    return f"{passed}/{len(node.cis)}"


def _row(node: NodeStatus, *, deep: bool, wide: bool) -> list[str]:
    health = node.health
    row = [
        node.node,
        audit_word(node),
        policy_word(node),
        log_word(node),
        rotation_word(node),
        "-" if health is None or health.ready is None else str(health.ready).lower(),
        "-" if health is None or health.restarts is None else str(health.restarts),
        cis_word(node),
    ]
    if deep:
        log = node.deep.log if node.deep else None
        row += [
            human_bytes(log.total_bytes) if log else "-",
            _ago(log) if log else "-",
            _retention(log) if log else "-",
        ]
    if wide:
        state = node.state
        row += [
            str(state.kube_version) if state else "-",
            node.cis[0].benchmark if node.cis else "-",
            ("yes" if state.managed else "no") if state else "-",
            ("yes" if state.webhook else "no") if state else "-",
            (state.policy_sha256 or "-") if state else "-",
        ]
    return row


def _ago(log: DeepLog) -> str:
    return log.oldest_event.strftime("%Y-%m-%dT%H:%M:%SZ") if log.oldest_event else "-"


def _retention(log: DeepLog) -> str:
    if log.retention is None:
        return "unknown" if log.rate_bytes_per_hour is None else "unbounded"
    return f"~{human_duration(log.retention)}"


def _details(node: NodeStatus) -> str:
    lines = [f"{node.node}:"]
    state = node.state
    if state is None:
        lines.append("  no kube-apiserver pod to read")
        return "\n".join(lines)
    flags = node.audit_flags()
    if flags:
        lines.append("  flags:")
        lines += [f"    {name}" + ("" if value is None else f"={value}") for name, value in flags]
    else:
        lines.append("  flags:  no --audit-* flags")
    if state.policy_file:
        lines.append(f"  policy: {state.policy_file}  {_mount_text(node, state.policy_file)}")
        if state.policy_sha256:
            known = f" (preset {node.policy_preset})" if node.policy_preset else ""
            lines.append(f"          running sha256 {state.policy_sha256}{known}")
    if state.log_path and state.log_path != "-":
        lines.append(f"  log:    {state.log_path}  {_mount_text(node, state.log_path)}")
    if node.cis:
        lines.append(f"  CIS ({node.cis[0].benchmark}):")
        lines += [f"    {c.status:<4} {c.id:<7} {c.detail}" for c in node.cis]
    if node.deep is not None:
        lines += _deep_lines(node)
    return "\n".join(lines)


def _mount_text(node: NodeStatus, path: str) -> str:
    if node.runs_as == "k3s":
        return "(on the node: k3s runs kube-apiserver in its own process)"
    mount = node.mount(path)
    if mount is None:
        return "(NOT MOUNTED)"
    if mount["hostPath"] is None:
        return f"(volume {mount['volume']} is not a hostPath)"
    kind = mount["type"] or "hostPath"
    access = ", read-only" if mount["readOnly"] else ""
    return f"(node {mount['hostPath']} via {mount['mountPath']}, {kind}{access})"


def _deep_lines(node: NodeStatus) -> list[str]:
    deep = node.deep
    assert deep is not None
    lines = []
    if deep.manifest is not None and deep.manifest.matches_running is not None:
        verdict = "the same" if deep.manifest.matches_running else "NOT the same"
        lines.append(
            f"  manifest {deep.manifest.path}: {verdict} audit flags and policy as the running "
            "apiserver"
        )
    if deep.log is not None:
        lines += _deep_log_lines(deep.log)
    if deep.policy is not None:
        lines += _deep_policy_lines(deep.policy)
    lines += [f"  not checked: {reason}" for reason in deep.skipped]
    return lines


def _deep_log_lines(log: DeepLog) -> list[str]:
    lines = [f"  log directory {log.directory} (read through the {log.via}):"]
    for f in log.files:
        what = "current" if f.rotated_at is None else "rotated"
        first = f.first_event.strftime("%Y-%m-%dT%H:%M:%SZ") if f.first_event else "-"
        lines.append(f"    {f.name}  {human_bytes(f.size)}  {what}, first event {first}")
    if log.oldest_event and log.newest_event:
        lines.append(
            f"    events from {log.oldest_event:%Y-%m-%dT%H:%M:%SZ} to "
            f"{log.newest_event:%Y-%m-%dT%H:%M:%SZ}"
        )
    if log.rate_bytes_per_hour is not None and log.rate_span is not None:
        lines.append(
            f"    write rate {human_bytes(log.rate_bytes_per_hour)}/h "
            f"(measured over {human_duration(log.rate_span)})"
        )
    if log.retention is not None:
        by = "--audit-log-maxage" if log.retention_bound == "maxage" else "maxsize x (maxbackup+1)"
        lines.append(
            f"    at this rate the log reaches back ~{human_duration(log.retention)} ({by})"
        )
    if log.free_bytes is not None:
        lines.append(f"    free disk {human_bytes(log.free_bytes)}")
    return lines


def _deep_policy_lines(policy: PolicyOnDisk) -> list[str]:
    if policy.sha256 is None:
        return [f"  policy file {policy.path}: MISSING on the node"]
    match = {True: "matches the running policy", False: "DIFFERS from the running policy"}
    lines = [
        f"  policy file {policy.path}: sha256 {policy.sha256[:12]}"
        + (f", {match[policy.matches_annotation]}" if policy.matches_annotation is not None else "")
    ]
    lines.append(
        f"    loads: {'no' if policy.errors else 'yes'}; "
        f"{len(policy.errors)} error(s), {len(policy.warnings)} lint warning(s)"
    )
    lines += [f"    lint: {w}" for w in policy.warnings[:5]]
    if len(policy.warnings) > 5:
        lines.append(f"    ... {len(policy.warnings) - 5} more (kubectl audit validate)")
    return lines


def _problem_line(node: str, problem: object) -> str:
    message = getattr(problem, "message", "")
    hint = getattr(problem, "hint", None)
    severity = getattr(problem, "severity", "")
    return f"  {severity.upper()} {node}: {message}" + (f"; fix: {hint}" if hint else "")


def _verdict(status: ClusterStatus) -> str:
    bad = [n.node for n in status.nodes if not n.ok]
    fails = sum(1 for n in status.nodes for c in n.cis if c.status == FAIL)
    cis = f"; {fails} CIS check(s) FAIL" if fails else ""
    if not bad:
        return f"Audit logging is on and healthy on all {len(status.nodes)} node(s){cis}."
    return f"Audit logging is NOT on and healthy on: {', '.join(bad)}{cis}."


def _elsewhere(status: ClusterStatus) -> str:
    dist = status.distribution
    lines = [
        f"This cluster looks like {dist.kind}: there is no kube-apiserver pod to read "
        "through the API, so its audit configuration cannot be checked from here.",
        "Evidence: " + "; ".join(dist.evidence),
    ]
    check = HOW_TO_CHECK.get(dist.kind)
    if check:
        lines += ["", "How to check:", check]
    if dist.kind == "k3s":
        lines.append(
            "  or: kubectl audit status --deep (reads that line on each server node through "
            "the node-agent pod)"
        )
    if dist.instructions:
        lines += ["", "How to turn it on:", dist.instructions]
    return "\n".join(lines) + "\n"


HOW_TO_CHECK = {
    "k3s": "  on a server node: journalctl -u k3s | grep 'Running kube-apiserver' | tail -1 "
    "(the audit flags are on that line; kube-bench's k3s profiles read the same)",
    "eks": "  aws eks describe-cluster --name <cluster> --query cluster.logging "
    "(the 'audit' type must be enabled; events go to /aws/eks/<cluster>/cluster in CloudWatch)",
    "gke": "  gcloud logging read 'logName:\"cloudaudit.googleapis.com%2Fdata_access\"' --limit 1 "
    "(Admin Activity is always on; Data Access needs IAM & Admin > Audit Logs)",
    "aks": "  az monitor diagnostic-settings list --resource <AKS cluster resource ID> "
    "(a setting with kube-audit or kube-audit-admin enabled)",
}
