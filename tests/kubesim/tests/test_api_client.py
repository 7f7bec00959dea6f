"""The simulator through the real `kubernetes` Python client: CRUD, selectors, watch, the
Status errors (404/409/422/403), Pod Security admission and the per-user 403s."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request

import pytest
import yaml
from kubernetes import client, config, watch

from tests.kubesim import Cluster


def core(cluster: Cluster, kubeconfig=None) -> client.CoreV1Api:
    api_client = config.new_client_from_config(config_file=str(kubeconfig or cluster.kubeconfig))
    return client.CoreV1Api(api_client)


def status_of(exc: client.ApiException) -> dict:
    return json.loads(exc.body)


def debug_pod(name: str, node: str, **spec) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kubectl-audit"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{"name": "debugger", "image": "busybox", "command": ["sleep", "3600"]}],
            **spec,
        },
    }


def test_nodes_and_mirror_pods_are_listed(kubesim: Cluster):
    api = core(kubesim)
    nodes = {n.metadata.name: n for n in api.list_node().items}
    assert set(nodes) == set(kubesim.nodes)
    control = nodes[kubesim.control_plane_nodes[0]]
    assert "node-role.kubernetes.io/control-plane" in control.metadata.labels
    selected = api.list_node(label_selector="node-role.kubernetes.io/control-plane")
    assert [n.metadata.name for n in selected.items] == kubesim.control_plane_nodes
    pods = api.list_namespaced_pod(
        "kube-system", field_selector=f"spec.nodeName={kubesim.control_plane_nodes[0]}"
    )
    assert f"kube-apiserver-{kubesim.control_plane_nodes[0]}" in {
        p.metadata.name for p in pods.items
    }


def test_configmap_crud_with_merge_patch_and_conflicts(kubesim: Cluster):
    api = core(kubesim)
    created = api.create_namespaced_config_map(
        "kube-system", {"metadata": {"name": "audit-policy"}, "data": {"policy.yaml": "rules: []"}}
    )
    assert created.metadata.uid and created.metadata.resource_version

    with pytest.raises(client.ApiException) as exists:
        api.create_namespaced_config_map("kube-system", {"metadata": {"name": "audit-policy"}})
    assert exists.value.status == 409
    assert status_of(exists.value)["message"] == 'configmaps "audit-policy" already exists'
    assert status_of(exists.value)["reason"] == "AlreadyExists"

    patched = api.patch_namespaced_config_map(
        "audit-policy", "kube-system", {"metadata": {"labels": {"a": "b"}}, "data": {"x": "y"}}
    )
    assert patched.data == {"policy.yaml": "rules: []", "x": "y"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    stale = created
    stale.data = {"lost": "update"}
    with pytest.raises(client.ApiException) as conflict:
        api.replace_namespaced_config_map("audit-policy", "kube-system", stale)
    assert conflict.value.status == 409
    assert status_of(conflict.value)["message"] == (
        'Operation cannot be fulfilled on configmaps "audit-policy": the object has been'
        " modified; please apply your changes to the latest version and try again"
    )

    current = api.read_namespaced_config_map("audit-policy", "kube-system")
    current.data = {"policy.yaml": "rules: [{level: Metadata}]"}
    replaced = api.replace_namespaced_config_map("audit-policy", "kube-system", current)
    assert replaced.data == {"policy.yaml": "rules: [{level: Metadata}]"}
    assert replaced.metadata.labels == {"a": "b"}

    api.delete_namespaced_config_map("audit-policy", "kube-system")
    with pytest.raises(client.ApiException) as missing:
        api.read_namespaced_config_map("audit-policy", "kube-system")
    assert missing.value.status == 404
    assert status_of(missing.value)["message"] == 'configmaps "audit-policy" not found'


def test_invalid_names_and_missing_namespaces_are_refused(kubesim: Cluster):
    api = core(kubesim)
    with pytest.raises(client.ApiException) as bad:
        api.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert bad.value.status == 422
    assert status_of(bad.value)["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase'
        " RFC 1123 subdomain"
    )
    with pytest.raises(client.ApiException) as no_ns:
        api.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert no_ns.value.status == 404
    assert status_of(no_ns.value)["message"] == 'namespaces "nowhere" not found'


def test_label_and_field_selectors_on_pods(kubesim: Cluster):
    api = core(kubesim)
    worker = kubesim.worker_nodes[0]
    api.create_namespaced_pod("kube-system", debug_pod("audit-debug-a", worker))
    pods = api.list_pod_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by in (kubectl-audit)"
    )
    assert [p.metadata.name for p in pods.items] == ["audit-debug-a"]
    assert api.list_pod_for_all_namespaces(field_selector="metadata.name=audit-debug-a").items
    assert not api.list_namespaced_pod(
        "default", field_selector="metadata.name=audit-debug-a"
    ).items
    with pytest.raises(client.ApiException) as bad:
        api.list_namespaced_pod("kube-system", field_selector="spec.image=busybox")
    assert bad.value.status == 400
    assert status_of(bad.value)["message"] == "field label not supported: spec.image"


def test_watch_streams_changes_and_resumes_from_a_resource_version(kubesim: Cluster):
    api = core(kubesim)
    start = api.list_namespaced_config_map("default").metadata.resource_version
    events: list[tuple[str, str]] = []
    watcher = watch.Watch()

    def follow() -> None:
        for event in watcher.stream(
            api.list_namespaced_config_map,
            "default",
            label_selector="team=audit",
            resource_version=start,
            timeout_seconds=20,
        ):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                watcher.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    api.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    api.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "labels": {"team": "audit"}}}
    )
    api.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    # leaving the selection is a DELETED for this watch
    api.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"team": None}}})
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_pod_security_admission_refuses_privileged_debug_pods(kubesim: Cluster):
    api = core(kubesim)
    api.create_namespace(
        {
            "metadata": {
                "name": "tenant",
                "labels": {"pod-security.kubernetes.io/enforce": "baseline"},
            }
        }
    )
    pod = debug_pod(
        "node-debugger",
        kubesim.control_plane_nodes[0],
        hostNetwork=True,
        hostPID=True,
        volumes=[{"name": "host", "hostPath": {"path": "/"}}],
    )
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(client.ApiException) as refused:
        api.create_namespaced_pod("tenant", pod)
    assert refused.value.status == 403
    assert status_of(refused.value)["message"] == (
        'pods "node-debugger" is forbidden: violates PodSecurity "baseline:latest": host'
        ' namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume "host"),'
        ' privileged (container "debugger" must not set securityContext.privileged=true)'
    )
    assert not api.list_namespaced_pod("tenant").items
    # kube-system carries no enforce label: the same pod is admitted there
    created = api.create_namespaced_pod("kube-system", pod)
    assert created.spec.restart_policy == "Never"
    assert created.status.phase == "Pending"


def test_forbidden_verbs_give_the_real_403_texts(kubesim: Cluster):
    alice = core(kubesim, kubesim.kubeconfig_for("alice", ("developers",)))
    admin = core(kubesim)
    assert alice.list_namespaced_pod("kube-system").items  # allowed until forbidden
    kubesim.forbid("create", "pods", user="alice")
    kubesim.forbid("create", "pods/exec", user="alice")
    with pytest.raises(client.ApiException) as denied:
        alice.create_namespaced_pod("kube-system", debug_pod("x", kubesim.worker_nodes[0]))
    assert denied.value.status == 403
    assert status_of(denied.value)["message"] == (
        'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the'
        ' namespace "kube-system"'
    )
    method, url, headers, body, post = alice.api_client.param_serialize(
        "POST",
        "/api/v1/namespaces/kube-system/pods/x/exec",
        query_params=[("command", "true")],
        auth_settings=["BearerToken"],
    )
    exec_denied = alice.api_client.call_api(method, url, headers, body, post)
    exec_denied.read()
    assert exec_denied.status == 403
    assert json.loads(exec_denied.data)["message"] == (
        'pods "x" is forbidden: User "alice" cannot create resource "pods/exec" in API group ""'
        ' in the namespace "kube-system"'
    )
    # the admin is not affected, and lifting the rule restores alice
    admin.create_namespaced_pod("kube-system", debug_pod("y", kubesim.worker_nodes[0]))
    kubesim.allow("create", "pods", user="alice")
    alice.create_namespaced_pod("kube-system", debug_pod("z", kubesim.worker_nodes[0]))


def test_unknown_tokens_are_unauthorized(kubesim: Cluster):
    api = core(kubesim, kubesim.kubeconfig_for("bob"))
    api.api_client.configuration.api_key["authorization"] = "Bearer not-a-token"
    api.api_client.configuration.api_key_prefix = {}
    api.api_client.default_headers["Authorization"] = "Bearer not-a-token"
    with pytest.raises(client.ApiException) as unauthorized:
        api.list_node()
    assert unauthorized.value.status == 401
    assert status_of(unauthorized.value)["reason"] == "Unauthorized"


def test_list_pages_with_limit_and_continue(kubesim: Cluster):
    api = core(kubesim)
    for i in range(5):
        api.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
    names, token = [], None
    while True:
        page = api.list_namespaced_config_map("default", limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - len(names)
    assert names == [f"cm-{i}" for i in range(5)]


def test_self_subject_access_review_answers_for_the_caller(kubesim: Cluster):
    alice = client.AuthorizationV1Api(
        config.new_client_from_config(config_file=str(kubesim.kubeconfig_for("alice")))
    )
    kubesim.forbid("delete", "pods", user="alice")

    def can(verb: str) -> bool:
        review = alice.create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": "kube-system",
                        "verb": verb,
                        "resource": "pods",
                    }
                }
            }
        )
        return review.status.allowed

    assert can("create")
    assert not can("delete")


def test_anonymous_callers_only_reach_the_public_paths(kubesim: Cluster):
    cluster_entry = yaml.safe_load(kubesim.kubeconfig.read_text())["clusters"][0]["cluster"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster_entry["certificate-authority-data"]).decode()
    )

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(kubesim.api_url + path, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    assert get("/readyz") == (200, b"ok")
    assert json.loads(get("/version")[1])["gitVersion"] == "v1.36.0"
    code, body = get("/api/v1/nodes")
    assert code == 403
    assert json.loads(body)["message"] == (
        'nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in API group'
        ' "" at the cluster scope'
    )


def test_idle_watches_get_bookmarks_when_they_allow_them(kubesim: Cluster):
    api = core(kubesim)
    kubesim.set_knob("watch_bookmark_interval", 0.1)
    version = api.list_namespaced_config_map("default").metadata.resource_version
    watcher = watch.Watch()
    seen = []
    for event in watcher.stream(
        api.list_namespaced_config_map,
        "default",
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        if event["type"] == "BOOKMARK":
            watcher.stop()
    assert seen == ["BOOKMARK"]
    assert int(watcher.resource_version) >= int(version)
