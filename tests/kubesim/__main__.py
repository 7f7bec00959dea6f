"""python -m tests.kubesim --control-planes 1 --workers 1: run a cluster until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.kubesim.cluster import Cluster, ClusterSpec
from tests.kubesim.fixtures import skip_reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubesim", description=__doc__)
    parser.add_argument("--control-planes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--version", default="v1.36.0", help="gitVersion /version reports")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    args = parser.parse_args(argv)
    if args.control_planes < 1:
        parser.error("--control-planes must be at least 1")
    reason = skip_reason()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    spec = ClusterSpec(
        control_planes=args.control_planes, workers=args.workers, version=args.version
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Cluster(spec, latency=args.latency) as cluster:
        print(f"kubesim {args.version} serving at {cluster.api_url}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        for name in cluster.nodes:
            role = "control-plane" if name in cluster.control_plane_nodes else "worker"
            print(f"node {name} ({role}): root {cluster.node_root(name)}")
        print("Ctrl-C stops the cluster and removes its files.", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            print("\nstopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
