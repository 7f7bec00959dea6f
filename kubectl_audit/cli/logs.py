"""`kubectl audit logs`: query audit logs, from the control-plane nodes or exported files."""

from __future__ import annotations

import io
import os
import sys
from datetime import datetime
from typing import Any

import click

from kubectl_audit.cli.options import KubeOptions, kube_options, verbosity_option
from kubectl_audit.durations import parse_time
from kubectl_audit.errors import UsageError
from kubectl_audit.logs import filters as f
from kubectl_audit.logs.output import FORMATS, Progress, Stats, renderer_for
from kubectl_audit.logs.scan import Problems
from kubectl_audit.logs.sources import FileSet, LogSource, file_sets

FOLLOW_POD_DEADLINE = 12 * 3600  # seconds a node-agent pod may live for `-f`
_FILTERS = "Filters (all combine with AND; a repeated filter matches any of its values)"


def _time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as error:
        raise UsageError(f"invalid {option}: {error}") from None


def _spec(options: dict[str, Any]) -> f.FilterSpec:
    if options["all_namespaces"] and options["namespace"]:
        raise UsageError("use either -n/--namespace or -A/--all-namespaces, not both")
    users = tuple(options["user"]) + tuple(
        f.service_account_user(sa) for sa in options["serviceaccount"]
    )
    return f.FilterSpec(
        users=users,
        groups=tuple(options["group"]),
        verbs=tuple(v.lower() for v in options["verb"]),
        resources=tuple(f.ResourceSpec.parse(r) for r in options["resource"]),
        namespaces=tuple(options["namespace"]),
        names=tuple(options["name"]),
        since=_time("--since", options["since"]),
        until=_time("--until", options["until"]),
        levels=tuple(f.choice(v, f.LEVELS, "--level") for v in options["level"]),
        stages=tuple(f.choice(v, f.STAGES, "--stage") for v in options["stage"]),
        codes=tuple(f.CodeSpec.parse(c) for c in options["code"]),
        failed=options["failed"],
        denied=options["denied"],
        source_ips=tuple(options["source_ip"]),
        user_agents=tuple(options["user_agent"]),
    )


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise click.BadParameter("must be 0 or more")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option(
    "--file",
    "file_options",
    multiple=True,
    metavar="PATH",
    help="Read this exported log instead of the cluster ('-' = stdin). Naming the current "
    "log (audit.log) also reads its rotated backups (audit-<time>.log[.gz]). Repeatable; "
    "FILE arguments mean the same.",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NAME",
    help="Only this control-plane node (repeatable).",
)
@click.option(
    "--via",
    type=click.Choice(["auto", "node-proxy", "debug-pod"]),
    default="auto",
    show_default=True,
    help="How to reach the nodes' logs: the kubelet /logs proxy (no privileged pod; the log "
    "must be under /var/log) or a short-lived node-agent pod that filters and compresses on "
    "the node. auto: the proxy where it can, the pod where the log is elsewhere or the "
    "proxy is refused (RBAC, no /logs handler).",
)
@click.option(
    "--pod-namespace",
    default="kube-system",
    show_default=True,
    help="Namespace for the node-agent pod (--via debug-pod). It is privileged, so Pod "
    "Security must allow that there.",
)
@click.option(
    "--image",
    default=None,
    help="Image for the node-agent pod (needs sh, sleep and chroot). Default: a shell image "
    "already on the node, else busybox.",
)
@click.option(
    "--image-pull-secret",
    "image_pull_secrets",
    multiple=True,
    metavar="NAME",
    help="Pull secret for --image (repeatable).",
)
@click.option(
    "--user",
    multiple=True,
    metavar="NAME",
    help="Username, exact or glob (also matches the impersonated user). " + _FILTERS + ".",
)
@click.option("--group", multiple=True, metavar="NAME", help="A group of the user (or glob).")
@click.option("--serviceaccount", multiple=True, metavar="NS:NAME", help="A service account.")
@click.option("--verb", multiple=True, metavar="VERB", help="get, list, watch, create, ...")
@click.option(
    "--resource",
    multiple=True,
    metavar="RES[.GROUP][/SUB]",
    help="pods, deployments.apps, pods/exec; pods/* adds subresources.",
)
@click.option("-n", "--namespace", multiple=True, metavar="NS", help="objectRef namespace.")
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="All namespaces (the default: logs span every namespace unless -n is given).",
)
@click.option("--name", multiple=True, metavar="NAME", help="objectRef name, exact or glob.")
@click.option("--since", metavar="TIME", help="Duration ago (1h) or RFC 3339 time.")
@click.option("--until", metavar="TIME", help="Duration ago or RFC 3339 time.")
@click.option("--level", multiple=True, metavar="LEVEL", help="None, Metadata, Request, ...")
@click.option("--stage", multiple=True, metavar="STAGE", help="ResponseComplete, ...")
@click.option("--code", multiple=True, metavar="CODE", help="HTTP status, 403 or 4xx.")
@click.option("--failed", is_flag=True, help="Status 400 or more, or a Panic.")
@click.option("--denied", is_flag=True, help="Authorization decision 'forbid'.")
@click.option("--source-ip", multiple=True, metavar="IP|CIDR", help="A source IP or network.")
@click.option(
    "--user-agent", multiple=True, metavar="TEXT", help="Substring, or glob for the whole agent."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="jsonl prints the matching lines exactly as in the log.",
)
@click.option(
    "--limit", type=int, metavar="N", callback=_positive, help="Stop after N matching events."
)
@click.option(
    "--tail", type=int, metavar="N", callback=_positive, help="Only the last N matching events."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep reading as the log grows (survives rotation)."
)
@click.option(
    "--stats", is_flag=True, help="Top users, verbs, resources, codes: what fills the log."
)
@kube_options
@verbosity_option
def logs(
    files: tuple[str, ...],
    file_options: tuple[str, ...],
    nodes: tuple[str, ...],
    via: str,
    pod_namespace: str,
    image: str | None,
    image_pull_secrets: tuple[str, ...],
    output: str,
    limit: int | None,
    tail: int | None,
    follow: bool,
    stats: bool,
    kube: KubeOptions,
    **options: Any,
) -> None:
    """Query API-server audit logs: filter, merge every node's log by time, print.

    \b
    Examples:
      kubectl audit logs --user alice --verb delete --since 1h
      kubectl audit logs --denied -o wide --node cp-1 --via debug-pod
      kubectl audit logs -f --namespace prod
      kubectl audit logs --file audit.log --user alice --verb delete
      kubectl audit logs --file audit.log --denied --since 2h -o wide
      kubectl audit logs --file audit.log --resource secrets -o jsonl | jq .
      kubectl audit logs --file audit.log --stats
      kubectl audit logs --file audit.log -f --namespace prod

    TIME is the stage time (when the apiserver wrote the event) in UTC; --since and --until
    compare that time. Exit status: 0 when the query ran, even if nothing matched (like
    kubectl get: "No matching audit events." goes to stderr), 2 for usage errors and
    missing or unreadable files. Lines that are not audit events are skipped and counted
    in one warning on stderr. Without --file the logs are read from every control-plane
    node in parallel (the path from the running apiserver's --audit-log-path) and merged by
    time; a node without an audit log gets a warning, none at all is exit 1.
    """
    spec = _spec(options)
    matcher = f.compile_filters(spec)
    paths = file_options + files
    if stats and (follow or tail is not None):
        raise UsageError("--stats summarises a finished query: drop --follow and --tail")
    sources: list[LogSource]
    cluster = None
    if paths:
        if nodes:
            raise UsageError("--node selects cluster nodes; with --file every file given is read")
        if via != "auto":
            raise UsageError(f"--via {via} chooses how to reach the nodes; --file reads files")
        sources = file_sets(paths, since=spec.since, until=spec.until)
        for source in sources:
            if follow and isinstance(source, FileSet):
                source.leave_tail_to_follower = True
    else:
        cluster = _open_cluster(
            kube, nodes, via, matcher, spec, follow, pod_namespace, image, image_pull_secrets
        )
        sources = cluster.sources

    # click hands out stdout unbuffered: one write() per event would be a system call.
    out = io.BufferedWriter(click.get_binary_stream("stdout"), buffer_size=1 << 16)  # type: ignore[arg-type]
    renderer = Stats(out, output) if stats else renderer_for(output, out)
    problems = Problems()
    progress = _progress(sources)
    from kubectl_audit.logs import query

    try:
        if cluster is not None:
            from kubectl_audit.logs.cluster import start_all

            start_all(sources)
        query.run(
            sources, matcher, renderer, problems, limit=limit, tail=tail, progress=progress.advance
        )
        if cluster is not None:
            cluster.check(warn=lambda message: click.echo(message, err=True))
        progress.finish()
        if follow and (limit is None or renderer.count < limit):
            renderer.flush()
            if cluster is not None:
                from kubectl_audit.logs import cluster as cluster_logs

                cluster_logs.follow(
                    cluster.tails(),
                    matcher,
                    renderer,
                    problems,
                    limit=limit,
                    warn=lambda message: click.echo(message, err=True),
                )
            else:
                from kubectl_audit.logs import follow as following

                following.follow(
                    [s for s in sources if isinstance(s, FileSet)],
                    matcher,
                    renderer,
                    problems,
                    limit=limit,
                )
    except BrokenPipeError:
        # `... | head`: the reader left, which is no error (click itself would turn the
        # EPIPE into exit 1). Point stdout at /dev/null so that flushing what is still
        # buffered cannot fail again at exit.
        _silence_stdout()
        return
    finally:
        if cluster is not None:
            cluster.close()
        progress.finish()
        try:
            renderer.close()
        except BrokenPipeError:
            _silence_stdout()
        finally:
            out.detach()  # leave the underlying stdout open (the wrapper would close it)
        summary = problems.summary()
        if summary:
            click.echo(summary, err=True)
    if renderer.count == 0 and not stats and output in ("table", "wide"):
        click.echo("No matching audit events.", err=True)


def _open_cluster(
    kube: KubeOptions,
    nodes: tuple[str, ...],
    via: str,
    matcher: f.Matcher,
    spec: f.FilterSpec,
    follow: bool,
    pod_namespace: str,
    image: str | None,
    image_pull_secrets: tuple[str, ...],
) -> Any:  # kubectl_audit.logs.cluster.ClusterLogs
    from kubectl_audit.kube.client import connect
    from kubectl_audit.logs.cluster import node_prefilter, open_cluster
    from kubectl_audit.node.debugpod import DebugPodOptions

    return open_cluster(
        connect(kube),
        nodes,
        via,
        node_prefilter(matcher),
        since=spec.since,
        until=spec.until,
        pod_options=DebugPodOptions(
            namespace=pod_namespace,
            image=image,
            image_pull_secrets=image_pull_secrets,
            # The pod's deadline is the backstop if we die; -f must outlive the default.
            **({"deadline_seconds": FOLLOW_POD_DEADLINE} if follow else {}),
        ),
        follow=follow,
        warn=lambda message: click.echo(message, err=True),
    )


def _silence_stdout() -> None:
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests): nothing will flush to a closed pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def _progress(sources: list[LogSource]) -> Progress:
    stream = sys.stderr
    sizes = [s.size() for s in sources]
    total = None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)
    progress = Progress(stream, total)
    if not stream.isatty():
        progress.delay = float("inf")
    return progress
