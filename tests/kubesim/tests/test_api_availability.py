"""API availability follows the apiservers: refused connections while none is up (same port
afterwards), cut watch streams, HA clusters serving through one apiserver, added latency."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import urllib3
import websocket
from kubernetes import client, config, watch
from kubernetes.client import ApiException
from kubernetes.stream import stream

from tests.kubesim import Cluster


def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def open_streams(cluster: Cluster) -> list[str | None]:
    return cluster.call(lambda: cluster.server.open_streams)


def follow_pods(api: client.CoreV1Api, outcome: list[str]) -> threading.Thread:
    """A thread watching kube-system pods; `outcome` gets how the watch ended."""

    def follow() -> None:
        try:
            for _ in watch.Watch().stream(
                api.list_namespaced_pod, "kube-system", timeout_seconds=30
            ):
                pass
            outcome.append("ended")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=follow)
    thread.start()
    return thread


def connect(cluster: Cluster) -> None:
    with socket.create_connection(("127.0.0.1", cluster.server.port), timeout=2):
        pass


def test_single_control_plane_outage_refuses_connections_and_cuts_watches(kubesim: Cluster):
    api = core(kubesim)
    port = kubesim.server.port
    outcome: list[str] = []

    def follow() -> None:
        try:
            for _ in watch.Watch().stream(
                api.list_namespaced_pod, "kube-system", timeout_seconds=30
            ):
                pass
            outcome.append("ended")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            outcome.append(type(exc).__name__)

    follower = threading.Thread(target=follow)
    follower.start()
    kubesim.wait_for(lambda: len(open_streams(kubesim)) == 1, timeout=5, what="the watch")
    node = kubesim.control_plane_nodes[0]
    kubesim.stop_apiserver(node)
    with pytest.raises(ConnectionRefusedError):
        connect(kubesim)
    follower.join(timeout=5)
    assert not follower.is_alive(), "the watch stream survived the outage"
    assert outcome
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        api.list_node(_request_timeout=2)

    kubesim.start_apiserver(node)
    kubesim.wait_for(kubesim.api_up, timeout=10, what="the API back")
    assert kubesim.server.port == port
    assert {n.metadata.name for n in api.list_node().items} == set(kubesim.nodes)


def test_ha_cluster_serves_while_one_apiserver_is_up(kubesim_ha: Cluster):
    api = core(kubesim_ha)
    first, second, third = kubesim_ha.control_plane_nodes
    kubesim_ha.stop_apiserver(first)
    kubesim_ha.stop_apiserver(second)
    connect(kubesim_ha)
    assert len(api.list_node().items) == 4
    kubesim_ha.stop_apiserver(third)
    with pytest.raises(ConnectionRefusedError):
        connect(kubesim_ha)
    kubesim_ha.start_apiserver(second)
    kubesim_ha.wait_for(kubesim_ha.api_up, timeout=10, what="the API back")
    assert len(api.list_node().items) == 4


def test_ha_stopping_an_apiserver_cuts_only_the_streams_it_serves(kubesim_ha: Cluster):
    api = core(kubesim_ha)
    outcome: list[str] = []
    follower = follow_pods(api, outcome)
    kubesim_ha.wait_for(lambda: len(open_streams(kubesim_ha)) == 1, timeout=5, what="the watch")
    (serving,) = open_streams(kubesim_ha)
    other = next(n for n in kubesim_ha.control_plane_nodes if n != serving)
    kubesim_ha.stop_apiserver(other)
    assert open_streams(kubesim_ha) == [serving]
    assert follower.is_alive()
    kubesim_ha.stop_apiserver(serving)
    follower.join(timeout=5)
    assert not follower.is_alive(), "the watch survived its apiserver"
    assert len(api.list_node().items) == 4  # the third apiserver still serves


def test_exec_streams_end_when_the_api_goes_away(kubesim: Cluster):
    api = core(kubesim)
    node = kubesim.control_plane_nodes[0]
    api.create_namespaced_pod(
        "kube-system",
        {
            "metadata": {"name": "dbg"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}],
            },
        },
    )
    kubesim.wait_for(
        lambda: kubesim.get_object("pods", "kube-system", "dbg")["status"]["phase"] == "Running",
        timeout=10,
        what="the debug pod running",
    )
    ended: list[str] = []

    def run() -> None:
        try:
            stream(
                api.connect_get_namespaced_pod_exec,
                "dbg",
                "kube-system",
                command=["sleep", "60"],
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
            )
            ended.append("returned")
        except (ApiException, OSError, websocket.WebSocketException) as exc:
            ended.append(type(exc).__name__)

    session = threading.Thread(target=run)
    session.start()
    kubesim.wait_for(lambda: len(open_streams(kubesim)) == 1, timeout=5, what="the exec")
    kubesim.stop_apiserver(node)
    session.join(timeout=5)
    assert not session.is_alive(), "the exec stream survived the outage"
    assert ended


def test_latency_knob_delays_every_request(kubesim: Cluster):
    api = core(kubesim)
    api.list_node()  # connection set up outside the measured call
    kubesim.set_latency(0.4)
    started = time.monotonic()
    api.list_node()
    assert time.monotonic() - started >= 0.4
    kubesim.set_latency(0.0)
