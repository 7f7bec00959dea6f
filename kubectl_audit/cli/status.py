"""`kubectl audit status`."""

from __future__ import annotations

import sys

import click

from kubectl_audit.cli.options import KubeOptions, kube_options, output_option, verbosity_option


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.option("--node", "nodes", multiple=True, help="Only this control-plane node (repeatable).")
@click.option(
    "--deep",
    is_flag=True,
    help="Also read the node: the log directory (through the kubelet /logs proxy when it is "
    "under /var/log), the policy file and free disk (through the node-agent pod).",
)
@click.option(
    "--no-pod",
    is_flag=True,
    help="With --deep: start no privileged pod; read only what the kubelet /logs proxy serves.",
)
@click.option(
    "-n",
    "--namespace",
    default="kube-system",
    show_default=True,
    help="Namespace for the node-agent pod of --deep (it is privileged).",
)
@click.option("--image", default=None, help="Image for the node-agent pod (needs sh and chroot).")
@click.option(
    "--image-pull-secret",
    "image_pull_secrets",
    multiple=True,
    help="Pull secret for --image (repeatable).",
)
@output_option("table", "wide", "json", "yaml", default="table")
@kube_options
@verbosity_option
def status(
    kube: KubeOptions,
    nodes: tuple[str, ...],
    deep: bool,
    no_pod: bool,
    namespace: str,
    image: str | None,
    image_pull_secrets: tuple[str, ...],
    output: str,
) -> int:
    """Show, per control-plane node, whether API-server audit logging is on and healthy.

    From the API alone (the kube-apiserver mirror pods, no privileged pod): every --audit-*
    flag, whether the policy file and the log directory reach the node through hostPath
    mounts (and what breaks when they do not), the running policy's sha256, readiness and
    restarts, and the CIS checks with the IDs of the benchmark for the cluster's Kubernetes
    version (1.2.x log flags, 3.2.1 policy set, 3.2.2 policy content: evaluated when the
    policy is a shipped preset, recognised by its sha256, or read by --deep).

    --deep adds the log files, the oldest and newest event, the write rate and how far back
    the log reaches at that rate, the policy on disk (does it match the running one, does it
    load, lint) and free disk. k3s has no apiserver pod: --deep reads its flags from the k3s
    service log on each server node. Managed clusters (EKS, GKE, AKS) do not show their
    control plane: status says how to check there instead.

    \b
    -o json / -o yaml (a contract; fields are only ever added):
      apiVersion: kubectl-audit.io/v1, kind: AuditStatus, ok, serverVersion,
      distribution: {kind, evidence, instructions},
      nodes: [{node, ok, pod, runsAs, audit: {enabled, policyFile, logPath, logHostPath,
               maxSizeMiB, maxBackup, maxAgeDays, ...}, flags: [{name, value}],
               mounts: {policy, log}, apiserver: {ready, restarts, ...},
               policy: {sha256, identifiedAs, source}, cis: [{id, benchmark, status, ...}],
               problems: [{severity, code, message, hint, ...}], deep}]
    (every field: kubectl_audit/status/__init__.py)

    Exit status: 0 when audit logging is on and healthy (no error found, apiserver ready)
    on every selected control-plane node; 1 otherwise (also when it cannot be checked, as
    on managed clusters); 2 usage error. CIS FAILs are reported but do not change it.
    """
    from kubectl_audit.kube.client import connect
    from kubectl_audit.node.debugpod import DebugPodOptions
    from kubectl_audit.render import dump
    from kubectl_audit.status.collect import DeepOptions, collect_status
    from kubectl_audit.status.render import render_status

    if no_pod and not deep:
        raise click.UsageError("--no-pod only means something with --deep")
    api = connect(kube)
    options = None
    if deep:
        pod = DebugPodOptions(
            namespace=namespace, image=image, image_pull_secrets=image_pull_secrets
        )
        options = DeepOptions(not no_pod, pod, kube.request_timeout or 30.0)
    try:
        result = collect_status(api, nodes, deep=options, progress=_progress)
    finally:
        api.close()  # its connections, not left for the garbage collector
    if output in ("json", "yaml"):
        dump(result.to_dict(), output, sys.stdout)
    else:
        click.echo(render_status(result, wide=output == "wide"), nl=False)
    return 0 if result.ok else 1
