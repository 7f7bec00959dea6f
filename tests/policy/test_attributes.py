"""Request attributes from the can-i grammar, test-file mappings and real audit events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubectl_audit.errors import InputError, UsageError
from kubectl_audit.policy.attributes import (
    from_can_i,
    from_event,
    from_test_request,
    resolve_resource,
    user_info,
)
from kubectl_audit.policy.model import RequestAttributes, UserInfo
from tests.conftest import TESTDATA

LOGS = TESTDATA / "audit-logs"


# -- resource names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "resource", "group"),
    [
        ("pods", "pods", ""),
        ("pod", "pods", ""),
        ("po", "pods", ""),
        ("Pod", "pods", ""),
        ("deploy", "deployments", "apps"),
        ("deployments.apps", "deployments", "apps"),
        ("hpa", "horizontalpodautoscalers", "autoscaling"),
        ("roles.rbac", "roles", "rbac.authorization.k8s.io"),
        ("clusterrolebindings.rbac.authorization.k8s.io", "clusterrolebindings",
         "rbac.authorization.k8s.io"),
        ("events", "events", ""),
        ("events.events.k8s.io", "events", "events.k8s.io"),
        ("crd", "customresourcedefinitions", "apiextensions.k8s.io"),
        ("cm", "configmaps", ""),
        ("tokenreviews", "tokenreviews", "authentication.k8s.io"),
    ],
)  # fmt: skip
def test_builtin_resources_resolve_like_kubectl(spec: str, resource: str, group: str) -> None:
    resolved = resolve_resource(spec)
    assert (resolved.resource, resolved.group, resolved.known) == (resource, group, True)


@pytest.mark.parametrize(
    ("spec", "resource", "group"),
    [
        ("widgets", "widgets", ""),
        ("widgets.example.com", "widgets", "example.com"),
        ("pods.example.com", "pods", "example.com"),  # a group that is not the built-in one
        ("Widgets", "Widgets", ""),
    ],
)
def test_unknown_resources_are_taken_literally(spec: str, resource: str, group: str) -> None:
    resolved = resolve_resource(spec)
    assert (resolved.resource, resolved.group, resolved.known) == (resource, group, False)


# -- can-i grammar --------------------------------------------------------------------------


def test_can_i_namespaced_resource_with_name_and_subresource() -> None:
    request = from_can_i("create", "po/web-0", subresource="exec", namespace="prod", user="alice")
    assert request.attrs == RequestAttributes(
        verb="create",
        user=UserInfo("alice", ("system:authenticated",)),
        resource_request=True,
        namespace="prod",
        api_group="",
        resource="pods",
        subresource="exec",
        name="web-0",
        path="/api/v1/namespaces/prod/pods/web-0/exec",
    )
    assert request.notes == ()


def test_can_i_namespace_defaults() -> None:
    assert from_can_i("get", "pods").attrs.namespace == "default"
    assert from_can_i("list", "pods", all_namespaces=True).attrs.namespace == ""
    assert from_can_i("get", "nodes", namespace="prod").attrs.namespace == ""
    assert from_can_i("get", "widgets.example.com").attrs.namespace == ""
    assert from_can_i("get", "widgets.example.com", namespace="x").attrs.namespace == "x"
    # The Namespace object kube-system is "in" kube-system (spec §5.4).
    assert from_can_i("get", "ns/kube-system").attrs.namespace == "kube-system"


def test_can_i_group_path() -> None:
    attrs = from_can_i("patch", "deploy/web", namespace="prod").attrs
    assert (attrs.api_group, attrs.path) == (
        "apps",
        "/apis/apps/v1/namespaces/prod/deployments/web",
    )


def test_can_i_non_resource_url() -> None:
    attrs = from_can_i("get", "/healthz/etcd?verbose").attrs
    assert attrs == RequestAttributes(verb="get", resource_request=False, path="/healthz/etcd")


def test_can_i_notes_for_unknown_things() -> None:
    notes = from_can_i("frobnicate", "widgets").notes
    assert any("not a verb" in note for note in notes)
    assert any("taken literally" in note for note in notes)


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("pods/", {}),
        ("/pods", {"subresource": "log"}),
        ("pods/a/b", {}),
        ("pods", {"groups": ("dev",)}),
        ("", {}),
    ],
)
def test_can_i_usage_errors(target: str, options: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        from_can_i("get", target, **options)  # type: ignore[arg-type]


def test_user_info_adds_the_groups_the_apiserver_adds() -> None:
    assert user_info(None) is None
    assert user_info("alice", ["dev"]) == UserInfo("alice", ("dev", "system:authenticated"))
    assert user_info("system:anonymous") == UserInfo(
        "system:anonymous", ("system:unauthenticated",)
    )
    assert user_info("system:serviceaccount:kube-system:coredns") == UserInfo(
        "system:serviceaccount:kube-system:coredns",
        ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
    )


# -- test-file requests ---------------------------------------------------------------------


def test_test_request_full() -> None:
    attrs = from_test_request(
        {
            "user": "alice",
            "groups": ["dev"],
            "verb": "get",
            "namespace": "default",
            "apiGroup": "",
            "resource": "secrets",
            "subresource": "",
            "name": "db",
            "path": "/api/v1/namespaces/default/secrets/db",
        },
        where="request",
    )
    assert attrs.user == UserInfo("alice", ("dev",))  # exactly as written: nothing implied
    assert attrs.resource_request
    assert (attrs.namespace, attrs.resource, attrs.name) == ("default", "secrets", "db")


def test_test_request_defaults() -> None:
    attrs = from_test_request({"verb": "get", "path": "/metrics"}, where="request")
    assert attrs == RequestAttributes(verb="get", resource_request=False, path="/metrics")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"verb": "get", "resource": "pods", "nmespace": "x"}, "unknown field 'nmespace'"),
        ({"resource": "pods"}, "request.verb: required"),
        ({"verb": "get", "resource": "pods", "user": 12}, "request.user: must be a string"),
        ({"verb": "get", "resource": "pods", "groups": "dev", "user": "a"}, "list of strings"),
        ({"verb": "get", "resource": "pods", "groups": ["dev"]}, "groups need a user"),
        ({"verb": "get", "resource": "pods", "user": ""}, "request.user: must not be empty"),
        ({"verb": "get", "resourceRequest": True}, "request.resource: required"),
        ({"verb": "get", "resource": "pods", "resourceRequest": False}, "has no resource"),
        ({"verb": "get", "resource": "pods", "resourceRequest": "yes"}, "true or false"),
        (["get"], "must be a mapping"),
    ],
)
def test_test_request_errors(data: object, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        from_test_request(data, where="request")
    assert fragment in caught.value.message


# -- audit events ---------------------------------------------------------------------------


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_v1_event_watch_with_field_selector_name() -> None:
    event = _events(LOGS / "minikube-v1.34-audit-extract.jsonl")[0]
    attrs = from_event(event)
    assert attrs == RequestAttributes(
        verb="watch",
        user=UserInfo("system:node:minikube", ("system:nodes", "system:authenticated")),
        resource_request=True,
        namespace="kube-system",
        api_group="",
        resource="configmaps",
        subresource="",
        name="kube-root-ca.crt",
        path="/api/v1/namespaces/kube-system/configmaps",
    )


def test_v1beta1_event_uses_the_authenticated_not_the_impersonated_user() -> None:
    event = _events(LOGS / "audit2rbac-demo-v1beta1.log")[0]
    assert event["impersonatedUser"]
    attrs = from_event(event)
    assert attrs.user is not None and attrs.user.name == "system:admin"
    assert (attrs.verb, attrs.resource, attrs.namespace) == ("list", "pods", "default")


def test_non_resource_event() -> None:
    event = json.loads(
        (LOGS / "openshift-cluster-logging-operator" / "raw_audit_openshift.json").read_text()
    )
    attrs = from_event(event)
    assert not attrs.resource_request
    assert attrs.path == "/openapi/v2"
    assert attrs.user is not None and attrs.user.name == "system:aggregator"


def test_event_with_group_and_subresource() -> None:
    events = [e for e in _events(LOGS / "minikube-v1.34-audit-extract.jsonl")
              if (e.get("objectRef") or {}).get("subresource")]  # fmt: skip
    assert events
    ref = events[0]["objectRef"]
    attrs = from_event(events[0])
    assert attrs.subresource == ref["subresource"]  # type: ignore[index]
    assert attrs.api_group == ref.get("apiGroup", "")  # type: ignore[union-attr]


def test_event_without_user_has_no_user_information() -> None:
    attrs = from_event({"verb": "get", "requestURI": "/healthz?x=1", "user": {}})
    assert attrs == RequestAttributes(verb="get", resource_request=False, path="/healthz")


def test_every_real_event_converts() -> None:
    count = 0
    for path in [*LOGS.glob("*.log"), *LOGS.glob("*.jsonl")]:
        for event in _events(path):
            attrs = from_event(event)
            assert attrs.verb
            assert attrs.resource_request == bool(event.get("objectRef"))
            count += 1
    assert count > 1000


@pytest.mark.parametrize(
    "event",
    [
        {"kind": 0},
        {"verb": 3, "user": "alice", "objectRef": []},
        {"verb": "get", "user": {"username": None, "groups": "x"}, "requestURI": None},
        {"verb": "get", "objectRef": {"resource": 1, "namespace": ["a"]}},
    ],
)
def test_hand_edited_events_do_not_crash(event: dict[str, object]) -> None:
    attrs = from_event(event)
    assert attrs.user is None
    assert isinstance(attrs.verb, str) and isinstance(attrs.resource, str)


def test_falco_fixtures_convert() -> None:
    # Falco's hand-edited fixtures: some lack apiVersion, one is `{"kind": 0}`.
    converted = 0
    for path in sorted((LOGS / "falco-k8s-audit").glob("*.json")):
        for event in _events(path):
            from_event(event)
            converted += 1
    assert converted >= 50
