"""The API side's pure pieces: request attributes, selectors, Pod Security texts, the store's
watch semantics, protobuf decoding and Table ages. No cluster needed."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.kubesim import admission, patches, protobuf, statuses, tables
from tests.kubesim.requestinfo import parse_request
from tests.kubesim.selectors import SelectorError, selector_predicate
from tests.kubesim.store import ResourceVersionTooOld, Store, StoreConflict


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/kube-system/pods", {}, ("list", "pods", "", "kube-system", "")),
        (
            "GET",
            "/api/v1/namespaces/kube-system/pods",
            {"watch": "true"},
            ("watch", "pods", "", "kube-system", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"fieldSelector": "metadata.name=x"},
            ("list", "pods", "", "ns", "x"),
        ),
        ("POST", "/api/v1/namespaces/ns/pods/p/exec", {}, ("create", "pods", "exec", "ns", "p")),
        ("GET", "/api/v1/namespaces/ns/pods/p/exec", {}, ("get", "pods", "exec", "ns", "p")),
        (
            "GET",
            "/api/v1/namespaces/kube-system",
            {},
            ("get", "namespaces", "", "kube-system", "kube-system"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns1/status",
            {},
            ("update", "namespaces", "status", "ns1", "ns1"),
        ),
        ("GET", "/api/v1/nodes", {}, ("list", "nodes", "", "", "")),
        (
            "GET",
            "/api/v1/nodes/n1/proxy/logs/audit.log",
            {},
            ("get", "nodes", "proxy", "", "n1"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/ns/configmaps",
            {},
            ("deletecollection", "configmaps", "", "ns", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/ns/pods/p", {}, ("watch", "pods", "", "ns", "p")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/status",
            {},
            ("patch", "deployments", "status", "ns", "d"),
        ),
    ],
)
def test_resource_requests_get_the_apiservers_attributes(method, path, query, expected):
    info = parse_request(method, path, query)
    assert info.resource_request
    assert (info.verb, info.resource, info.subresource, info.namespace, info.name) == expected


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/healthz", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("POST", "/version", "post"),
        ("HEAD", "/readyz", "head"),
    ],
)
def test_non_resource_requests_use_the_lowercased_method(method, path, verb):
    info = parse_request(method, path, {})
    assert not info.resource_request
    assert info.verb == verb
    assert info.path == path


def test_api_group_comes_from_the_apis_prefix():
    info = parse_request("GET", "/apis/apps/v1/namespaces/ns/deployments", {})
    assert (info.api_group, info.api_version, info.group_resource) == (
        "apps",
        "v1",
        "deployments.apps",
    )
    assert parse_request("GET", "/api/v1/pods", {}).api_group == ""


def _obj(labels=None, **fields):
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels or {}}, **fields}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("app=x", {"app": "x"}, True),
        ("app==x", {"app": "y"}, False),
        ("app!=x", {}, True),
        ("app in (x, y)", {"app": "y"}, True),
        ("app in (x,y),tier", {"app": "y"}, False),
        ("app notin (x)", {"app": "z"}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": ""}, False),
        (
            "app.kubernetes.io/managed-by=kubectl-audit",
            {"app.kubernetes.io/managed-by": "kubectl-audit"},
            True,
        ),
    ],
)
def test_label_selectors(selector, labels, matches):
    assert selector_predicate("pods", selector, "")(_obj(labels)) is matches


def test_field_selectors_and_their_refusal():
    pod = _obj(spec={"nodeName": "cp"}, status={"phase": "Running"})
    assert selector_predicate("pods", "", "spec.nodeName=cp,status.phase!=Failed")(pod)
    assert not selector_predicate("pods", "", "metadata.namespace=other")(pod)
    with pytest.raises(SelectorError, match=re.escape("field label not supported: spec.foo")):
        selector_predicate("pods", "", "spec.foo=1")


def _pod(**spec):
    container = {"name": "debugger", "image": "busybox"}
    container.update(spec.pop("container", {}))
    return {"metadata": {"name": "p"}, "spec": {"containers": [container], **spec}}


def _namespace(level, version=None):
    labels = {admission.LEVEL_LABEL: level}
    if version:
        labels[admission.VERSION_LABEL] = version
    return {"metadata": {"name": "ns", "labels": labels}}


def test_baseline_refuses_a_node_debug_pod_with_the_real_text():
    pod = _pod(
        hostNetwork=True,
        hostPID=True,
        volumes=[{"name": "host", "hostPath": {"path": "/"}}],
        container={"securityContext": {"privileged": True}},
    )
    assert admission.pod_security_violation(_namespace("baseline"), pod) == (
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true),'
        ' hostPath volumes (volume "host"), privileged (container "debugger" must not set'
        " securityContext.privileged=true)"
    )


def test_restricted_lists_baseline_then_restricted_checks():
    text = admission.pod_security_violation(
        _namespace("restricted", "v1.36"), _pod(container={"securityContext": {"privileged": True}})
    )
    assert text == (
        'violates PodSecurity "restricted:v1.36": privileged (container "debugger" must not set'
        " securityContext.privileged=true), allowPrivilegeEscalation != false (container"
        ' "debugger" must set securityContext.allowPrivilegeEscalation=false), unrestricted'
        ' capabilities (container "debugger" must set securityContext.capabilities.drop=["ALL"]),'
        ' runAsNonRoot != true (pod or container "debugger" must set'
        ' securityContext.runAsNonRoot=true), seccompProfile (pod or container "debugger" must'
        ' set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )


def test_privileged_level_and_unlabelled_namespaces_admit_everything():
    pod = _pod(hostPID=True, container={"securityContext": {"privileged": True}})
    assert admission.pod_security_violation(_namespace("privileged"), pod) is None
    assert admission.pod_security_violation({"metadata": {"name": "kube-system"}}, pod) is None
    assert admission.pod_security_violation(_namespace("baseline"), _pod()) is None


def test_store_watch_replays_from_a_resource_version_and_refuses_one_too_old():
    async def scenario():
        store = Store()
        first = store.create("configmaps", {"metadata": {"name": "a", "namespace": "ns"}})
        store.create("configmaps", {"metadata": {"name": "b", "namespace": "ns"}})
        store.delete("configmaps", "ns", "a")
        watcher = store.watch("configmaps", "ns", first["metadata"]["resourceVersion"])
        events = []
        while not watcher.queue.empty():
            kind, obj, _ = watcher.queue.get_nowait()
            events.append((kind, obj["metadata"]["name"]))
        with pytest.raises(StoreConflict, match='configmaps "b" already exists'):
            store.create("configmaps", {"metadata": {"name": "b", "namespace": "ns"}})
        for i in range(5000):  # more changes than the history keeps
            store.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "ns"}})
        with pytest.raises(ResourceVersionTooOld, match="too old resource version: 1"):
            store.watch("configmaps", "ns", "1")
        return events

    assert asyncio.run(scenario()) == [("ADDED", "b"), ("DELETED", "a")]


def test_store_hands_out_copies():
    store = Store()
    created = store.create("configmaps", {"metadata": {"name": "a", "namespace": "ns"}})
    created["metadata"]["name"] = "changed"
    store.list("configmaps")[0]["data"] = {"x": "y"}
    assert store.get("configmaps", "ns", "a")["metadata"]["name"] == "a"
    assert "data" not in store.get("configmaps", "ns", "a")


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_configmap_body_as_kubectl_create_sends_it():
    meta = (
        _field(1, b"audit")
        + _field(3, b"kube-system")
        + _field(11, _field(1, b"a") + _field(2, b"b"))
    )
    configmap = _field(1, meta) + _field(2, _field(1, b"policy.yaml") + _field(2, b"rules: []\n"))
    body = (
        protobuf.MAGIC
        + _field(1, _field(1, b"v1") + _field(2, b"ConfigMap"))
        + _field(2, configmap)
    )
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "audit", "namespace": "kube-system", "labels": {"a": "b"}},
        "data": {"policy.yaml": "rules: []\n"},
    }
    with pytest.raises(protobuf.ProtobufError, match="kind 'Pod' is not modelled"):
        protobuf.decode(protobuf.MAGIC + _field(1, _field(2, b"Pod")))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
        (400 * 86400, "400d"),
    ],
)
def test_ages_print_like_kubectl(seconds, text):
    assert tables.human_duration(seconds) == text


def test_merge_patch_replaces_lists_and_deletes_nulls():
    target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"args": ["z"]}}
    assert patches.merge_patch(target, patch) == {
        "metadata": {"labels": {"b": "2", "c": "3"}},
        "spec": {"args": ["z"]},
    }
    assert target["metadata"]["labels"] == {"a": "1", "b": "2"}  # input untouched


def test_json_patch_operations_and_failed_test():
    doc = {"data": {"a": "1"}, "list": [1, 2]}
    result = patches.json_patch(
        doc,
        [
            {"op": "add", "path": "/data/b~1c", "value": "2"},
            {"op": "replace", "path": "/data/a", "value": "9"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "test", "path": "/list", "value": [2, 3]},
        ],
    )
    assert result == {"data": {"a": "9", "b/c": "2"}, "list": [2, 3]}
    with pytest.raises(ValueError, match="testing value /data/a failed"):
        patches.json_patch(doc, [{"op": "test", "path": "/data/a", "value": "2"}])


def test_status_texts_for_cluster_scope_non_resource_and_invalid():
    nodes = parse_request("DELETE", "/api/v1/nodes/n1", {})
    assert statuses.forbidden(nodes, "bob").message == (
        'nodes "n1" is forbidden: User "bob" cannot delete resource "nodes" in API group ""'
        " at the cluster scope"
    )
    metrics = parse_request("GET", "/metrics", {})
    assert statuses.forbidden(metrics, "system:anonymous").message == (
        'forbidden: User "system:anonymous" cannot get path "/metrics"'
    )
    errors = [
        admission.FieldError("spec.containers[0].name", "Required value"),
        admission.FieldError("spec.containers[0].image", "Required value"),
    ]
    assert statuses.invalid("Pod", "p", errors).message == (
        'Pod "p" is invalid: [spec.containers[0].name: Required value,'
        " spec.containers[0].image: Required value]"
    )
