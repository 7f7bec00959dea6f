"""The kubelet /logs proxy: Go http.FileServer listings, byte ranges, 404s, no escapes."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from kubernetes import client, config

from tests.kubesim import Cluster


@pytest.fixture
def node_log(kubesim: Cluster):
    node = kubesim.control_plane_nodes[0]
    log_dir = kubesim.node_root(node) / "var" / "log"
    audit = log_dir / "kubernetes" / "audit"
    audit.mkdir(parents=True, exist_ok=True)
    (audit / "audit.log").write_bytes(b"".join(b'{"n":%d}\n' % i for i in range(1000)))
    (audit / "a&b <c>.log").write_text("odd name\n")
    (log_dir.parent.parent / "etc" / "secret").write_text("not for the proxy\n")
    (log_dir / "escape").symlink_to("../../etc/secret")
    api_client = config.new_client_from_config(config_file=str(kubesim.kubeconfig))

    def get(path: str, headers: dict | None = None):
        return raw_get(api_client, f"/api/v1/nodes/{node}/proxy/logs/{quote(path)}", headers)

    return get, audit


def raw_get(api_client: client.ApiClient, path: str, headers: dict | None = None):
    """A GET through the client's own transport (TLS, credentials), response unparsed."""
    method, url, header_params, body, post = api_client.param_serialize(
        "GET", path, header_params=headers or {}, auth_settings=["BearerToken"]
    )
    response = api_client.call_api(method, url, header_params, body, post)
    response.read()
    return response


def test_directory_listing_looks_like_go_file_server(node_log):
    get, _ = node_log
    response = get("kubernetes/audit/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert response.data.decode() == (
        '<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
        '<a href="a%26b%20%3Cc%3E.log">a&amp;b &lt;c&gt;.log</a>\n'
        '<a href="audit.log">audit.log</a>\n'
        "</pre>\n"
    )
    root = get("").data.decode()
    assert '<a href="kubernetes/">kubernetes/</a>' in root


def test_whole_file_and_byte_ranges(node_log):
    get, audit = node_log
    content = (audit / "audit.log").read_bytes()
    whole = get("kubernetes/audit/audit.log")
    assert whole.data == content
    assert whole.getheader("Accept-Ranges") == "bytes"

    head = get("kubernetes/audit/audit.log", {"Range": "bytes=0-9"})
    assert head.status == 206
    assert head.data == content[:10]
    assert head.getheader("Content-Range") == f"bytes 0-9/{len(content)}"

    tail = get("kubernetes/audit/audit.log", {"Range": "bytes=-100"})
    assert tail.data == content[-100:]
    resumed = get("kubernetes/audit/audit.log", {"Range": f"bytes={len(content) - 5}-"})
    assert resumed.data == content[-5:]

    multi = get("kubernetes/audit/audit.log", {"Range": "bytes=0-1,10-11"})
    assert multi.status == 206
    assert multi.getheader("Content-Type").startswith("multipart/byteranges; boundary=")
    assert content[:2] in multi.data and content[10:12] in multi.data


def test_unsatisfiable_range_missing_files_and_escapes(node_log):
    get, audit = node_log
    size = (audit / "audit.log").stat().st_size
    beyond = get("kubernetes/audit/audit.log", {"Range": f"bytes={size + 10}-"})
    assert beyond.status == 416
    assert beyond.getheader("Content-Range") == f"bytes */{size}"

    missing = get("kubernetes/audit/nope.log")
    assert missing.status == 404
    assert missing.data == b"404 page not found\n"

    escaped = get("escape")
    assert escaped.status == 404
    assert escaped.data == b"404 page not found\n"


def test_unknown_node_is_not_found(kubesim: Cluster):
    api_client = config.new_client_from_config(config_file=str(kubesim.kubeconfig))
    missing = raw_get(api_client, "/api/v1/nodes/ghost/proxy/logs/")
    assert missing.status == 404
    assert json.loads(missing.data)["message"] == 'nodes "ghost" not found'


def test_a_broken_kubelet_cannot_be_reached_through_the_proxy(kubesim: Cluster, node_log):
    get, _ = node_log
    kubesim.break_kubelet(kubesim.control_plane_nodes[0])
    unreachable = get("")
    assert unreachable.status == 503
    message = json.loads(unreachable.data)["message"]
    assert message.startswith("error trying to reach service: dial tcp ")
    assert message.endswith(":10250: connect: connection refused")
    kubesim.break_kubelet(kubesim.control_plane_nodes[0], broken=False)
    assert get("").status == 200
