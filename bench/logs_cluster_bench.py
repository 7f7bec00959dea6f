#!/usr/bin/env python3
"""Benchmark `kubectl audit logs` from the cluster: bytes on the wire, in tests/kubesim.

Starts a simulated cluster (one control plane; needs root for the simulator's mount
namespaces), enables audit logging with the real CLI, and puts a realistic audit log
(`bench/logs_bench.py`'s generator, default 50 MB) on the node as a lumberjack backup of
the apiserver's log. Then, in the same run, it queries a selective filter
(`--user alice --verb delete`) both ways:

* through the kubelet `/logs` node proxy (the baseline: every byte of every file), and
* through the node-agent pod, which greps on the node and gzips what it sends,

checks that both find the same events, and prints for each: the bytes received (for the
pod: the exec stream's stdout bytes, i.e. what crossed the network), the bytes of the
matching lines, their ratio and the time. Target: the pod's ratio at most 1.2.

    sudo python3 bench/logs_cluster_bench.py
    sudo python3 bench/logs_cluster_bench.py --size-mb 200
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_audit.logs import query  # noqa: E402
from kubectl_audit.logs.cluster import node_prefilter, open_cluster  # noqa: E402
from kubectl_audit.logs.events import Event  # noqa: E402
from kubectl_audit.logs.filters import FilterSpec, compile_filters  # noqa: E402
from kubectl_audit.logs.scan import Problems  # noqa: E402
from kubectl_audit.node.debugpod import DebugPodOptions  # noqa: E402

TARGET_RATIO = 1.2
FILTERS = {
    "--user alice --verb delete": FilterSpec(users=("alice",), verbs=("delete",)),
    "--user alice": FilterSpec(users=("alice",)),
}
LOG_DIR = "var/log/kubernetes/audit"
# Lumberjack's name for a backup rotated after the generated events (2026-01-21...).
BACKUP = "audit-2026-01-23T00-00-00.000.log"
FAST = ("--timeout", "20s", "--settle", "1", "--kubelet-period", "1")


@dataclass
class Collect:
    """A renderer that keeps the matching lines (to compare) and counts their bytes."""

    count: int = 0
    line_bytes: int = 0
    lines: list[bytes] = field(default_factory=list)

    def write(self, event: Event) -> None:
        self.count += 1
        self.line_bytes += len(event.raw) + 1
        self.lines.append(event.raw)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class Result:
    via: str
    seconds: float
    wire_bytes: int
    collected: Collect

    @property
    def ratio(self) -> float:
        return self.wire_bytes / max(self.collected.line_bytes, 1)


def _generator():
    spec = importlib.util.spec_from_file_location("logs_bench", ROOT / "bench" / "logs_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["logs_bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def query_once(api_client, via: str, spec: FilterSpec) -> Result:
    matcher = compile_filters(spec)
    collected = Collect()
    started = time.perf_counter()
    logs = open_cluster(
        api_client,
        (),
        via,
        node_prefilter(matcher),
        since=None,
        until=None,
        pod_options=DebugPodOptions(),
    )
    try:
        query.run(logs.sources, matcher, collected, Problems())
    finally:
        logs.close()
    seconds = time.perf_counter() - started
    wire = 0
    for prefetched in logs.sources:
        source = prefetched.source  # type: ignore[attr-defined]
        wire += source.wire_bytes if hasattr(source, "wire_bytes") else source.files.wire_bytes
    return Result(via, seconds, wire, collected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=50)
    args = parser.parse_args()

    from tests.kubesim.cluster import Cluster, ClusterSpec
    from tests.kubesim.fixtures import skip_reason

    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.gettempdir()) / "kubectl-audit-bench"
    log = _generator().ensure_log(workdir, args.size_mb)

    with Cluster(ClusterSpec(control_planes=1, workers=1)) as cluster:
        kubeconfig = str(cluster.kubeconfig)
        enabled = subprocess.run(
            [
                sys.executable,
                "-m",
                "kubectl_audit",
                "enable",
                "--yes",
                *FAST,
                "--kubeconfig",
                kubeconfig,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
        )
        if enabled.returncode != 0:
            print(enabled.stderr, file=sys.stderr)
            return 1
        node = cluster.control_plane_nodes[0]
        target = cluster.node_root(node) / LOG_DIR / BACKUP
        shutil.copyfile(log, target)
        size = target.stat().st_size

        from kubernetes import config

        api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        runs = {
            label: [query_once(api_client, via, spec) for via in ("node-proxy", "debug-pod")]
            for label, spec in FILTERS.items()
        }

    print(f"log on the node: {size / 1e6:,.1f} MB (plus the cluster's own recent events)")
    header = ("filter", "via", "events", "matching B", "wire B", "wire/match", "s")
    print("{:<28} {:<11} {:>7} {:>11} {:>13} {:>10} {:>6}".format(*header))
    failed = False
    for label, (proxy, pod) in runs.items():
        for r in (proxy, pod):
            print(
                f"{label:<28} {r.via:<11} {r.collected.count:>7} {r.collected.line_bytes:>11,} "
                f"{r.wire_bytes:>13,} {r.ratio:>10.3f} {r.seconds:>6.2f}"
            )
        print(
            f"  {label}: debug-pod wire/matching ratio {pod.ratio:.3f} (target <= "
            f"{TARGET_RATIO}); {pod.wire_bytes / max(proxy.wire_bytes, 1):.6f}x the proxy's "
            f"bytes, {proxy.seconds / pod.seconds:.1f}x its speed"
        )
        # Both ran after the same events: the newest (the queries' own) differ, not these.
        if [x for x in proxy.collected.lines if x not in pod.collected.lines]:
            print(f"FAIL: {label}: the two ways found different events", file=sys.stderr)
            failed = True
        if not pod.collected.count or pod.ratio > TARGET_RATIO:
            print(f"FAIL: {label}: ratio {pod.ratio:.3f} > {TARGET_RATIO}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
