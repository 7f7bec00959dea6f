"""kube/rest.py against tests/kubesim through the real ApiClient: dicts in and out, the
client's refusals turned into our errors, --request-timeout, and exec over its websocket."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from kubectl_audit.cli.options import KubeOptions
from kubectl_audit.errors import ClusterError
from kubectl_audit.kube.client import connect
from kubectl_audit.kube.errors import ApiUnreachable, NotFound, api_call
from kubectl_audit.kube.rest import Rest, core_path
from tests.kubesim.cluster import Cluster


def rest_for(cluster: Cluster, request_timeout: float | None = None) -> Rest:
    return Rest(connect(KubeOptions(str(cluster.kubeconfig), None, request_timeout)))


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"suite": "rest"}},
        "data": data,
    }


@pytest.mark.cluster
def test_objects_round_trip_as_plain_dicts(kubesim: Cluster) -> None:
    rest = rest_for(kubesim)
    path = core_path("configmaps", "rest-probe", namespace="default")
    created = rest.create(
        core_path("configmaps", namespace="default"), config_map("rest-probe", {"a": "1"})
    )
    assert created["metadata"]["name"] == "rest-probe" and created["data"] == {"a": "1"}

    listed = rest.list(
        core_path("configmaps", namespace="default"), query=[("labelSelector", "suite=rest")]
    )
    assert [item["metadata"]["name"] for item in listed] == ["rest-probe"]
    assert (
        rest.list(
            core_path("configmaps", namespace="default"), query=[("labelSelector", "suite=none")]
        )
        == []
    )

    fetched = rest.get(path)
    fetched["data"]["b"] = "2"
    replaced = rest.replace(path, fetched)
    assert replaced["data"] == {"a": "1", "b": "2"}
    # The resourceVersion read before the replace is stale now: optimistic concurrency.
    with (
        pytest.raises(ClusterError, match=r"HTTP 409"),
        api_call("update configmap default/rest-probe"),
    ):
        rest.replace(path, fetched)

    assert rest.patch(path, {"data": {"c": "3"}}, kind="merge")["data"]["c"] == "3"
    assert rest.patch(path, {"data": {"d": "4"}}, kind="strategic")["data"]["d"] == "4"
    ops = [{"op": "remove", "path": "/data/a"}]
    assert "a" not in rest.patch(path, ops, kind="json")["data"]
    with pytest.raises(TypeError):
        rest.patch(path, {"data": {}}, kind="json")

    rest.delete(path, query=[("gracePeriodSeconds", 0)])
    with pytest.raises(NotFound, match="rest-probe"), api_call("read configmap default/rest-probe"):
        rest.get(path)


@pytest.mark.cluster
def test_version_and_refusals(kubesim: Cluster) -> None:
    rest = rest_for(kubesim)
    assert rest.get("/version")["gitVersion"] == kubesim.version_info()["gitVersion"]
    kubesim.forbid("list", "nodes")
    with (
        pytest.raises(ClusterError, match=r"permission denied: .* cannot list nodes"),
        api_call("list nodes"),
    ):
        rest.list(core_path("nodes"))


@pytest.mark.cluster
def test_request_timeout_bounds_rest_requests(kubesim: Cluster) -> None:
    kubesim.set_latency(3.0)
    with pytest.raises(ApiUnreachable, match=r"(?i)timed out"), api_call("list nodes"):
        rest_for(kubesim, request_timeout=1.0).list(core_path("nodes"))
    # Without --request-timeout the same slow answer arrives.
    assert rest_for(kubesim).list(core_path("nodes"))


# Exec runs in a child process, as the CLI would: the simulator's own pod processes stay
# this process's only subprocesses.
_EXEC = """
import sys
from kubectl_audit.cli.options import KubeOptions
from kubectl_audit.kube.client import connect
from kubectl_audit.kube.rest import Rest, core_path
from kubectl_audit.node.debugpod import DebugPod, DebugPodOptions

api_client = connect(KubeOptions(sys.argv[1], None, None))
node = Rest(api_client).get(core_path("nodes", sys.argv[2]))
payload = bytes(range(256)) * 64
with DebugPod(api_client, node, DebugPodOptions(start_timeout=60)) as pod:
    # `cat` ends only when stdin is closed (the v5 protocol's close frame).
    result = pod.run(["sh", "-c", "cat; echo oops >&2; exit 3"], timeout=60, stdin=payload)
assert result.stdout == payload, len(result.stdout)
print(pod.name, result.exit_code, result.stderr.decode().strip())
"""


@pytest.mark.cluster
def test_exec_is_binary_safe_and_closes_stdin(kubesim: Cluster) -> None:
    node = kubesim.control_plane_nodes[0]
    done = subprocess.run(
        [sys.executable, "-c", _EXEC, str(kubesim.kubeconfig), node],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    name, code, stderr = done.stdout.split()
    assert (code, stderr) == ("3", "oops")
    assert kubesim.get_object("pods", "kube-system", name) is None
