"""Filters: option parsing, the exact predicate on real events, and the needles being a
safe superset (a line the predicate accepts is never dropped by the byte prefilter)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import orjson
import pytest

from kubectl_audit.errors import UsageError
from kubectl_audit.logs.filters import (
    CodeSpec,
    FilterSpec,
    ResourceSpec,
    choice,
    compile_filters,
    literal_fragments,
    service_account_user,
)
from kubectl_audit.logs.scan import Problems, Scanner
from kubectl_audit.logs.sources import Block
from tests.logs.conftest import MINIKUBE, OPENSHIFT, V1BETA1, json_lines


def matching(spec: FilterSpec, events: list[dict]) -> list[dict]:
    predicate = compile_filters(spec).predicate
    return [e for e in events if predicate(e)]


def scanned(spec: FilterSpec, data: bytes) -> list[bytes]:
    """What the full scanner (prefilter + predicate) finds in `data` (JSON lines)."""
    scanner = Scanner(compile_filters(spec), "n", Problems())
    return [e.raw for e in scanner.block_events(Block(data, "mem", 0))]


def brute_force(spec: FilterSpec, data: bytes | list[tuple[bytes, dict]]) -> list[bytes]:
    """Parse every line, no prefilter: what the scanner must find."""
    predicate = compile_filters(spec).predicate
    parsed = parse_all(data) if isinstance(data, bytes) else data
    return [line for line, event in parsed if predicate(event)]


def parse_all(data: bytes) -> list[tuple[bytes, dict]]:
    return [(line, orjson.loads(line)) for line in data.splitlines() if line.strip()]


# --- option parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pods", ResourceSpec("pods")),
        ("deployments.apps", ResourceSpec("deployments", "apps")),
        ("roles.rbac.authorization.k8s.io", ResourceSpec("roles", "rbac.authorization.k8s.io")),
        ("pods/exec", ResourceSpec("pods", None, "exec")),
        ("pods/*", ResourceSpec("pods", None, "*")),
        ("pods.core/log", ResourceSpec("pods", "", "log")),
        ("configmaps.", ResourceSpec("configmaps", "")),
    ],
)
def test_resource_spec_parses_resource_group_subresource(text: str, expected: ResourceSpec) -> None:
    assert ResourceSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["", "/exec", "pods/", "pods/a/b"])
def test_resource_spec_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError, match="RESOURCE"):
        ResourceSpec.parse(text)


def test_code_spec_exact_and_class() -> None:
    assert CodeSpec.parse("403") == CodeSpec(403, 403)
    assert CodeSpec.parse("4xx") == CodeSpec(400, 499)
    assert CodeSpec.parse("5XX").matches(503)
    assert not CodeSpec.parse("4xx").matches(None)
    for bad in ("40", "4x", "600", "abc"):
        with pytest.raises(UsageError, match="--code"):
            CodeSpec.parse(bad)


def test_serviceaccount_becomes_its_username() -> None:
    assert (
        service_account_user("kube-system:default") == "system:serviceaccount:kube-system:default"
    )
    for bad in ("default", ":x", "ns:", "a:b:c"):
        with pytest.raises(UsageError, match="NAMESPACE:NAME"):
            service_account_user(bad)


def test_choice_is_case_insensitive_and_canonical() -> None:
    assert choice("metadata", ("Metadata", "Request"), "--level") == "Metadata"
    with pytest.raises(UsageError, match="Metadata, Request"):
        choice("meta", ("Metadata", "Request"), "--level")


def test_since_after_until_is_a_usage_error() -> None:
    later = datetime(2026, 1, 2, tzinfo=timezone.utc)
    earlier = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(UsageError, match="--since is later"):
        compile_filters(FilterSpec(since=later, until=earlier))


def test_literal_fragments_split_at_globs_and_escapable_characters() -> None:
    assert literal_fragments("system:serviceaccount:*:default") == [
        "system:serviceaccount:",
        ":default",
    ]
    assert literal_fragments('a&b<c>d/e"f\\g') == list("abcdefg")
    assert literal_fragments("kubectl/v1.3[0-9]*") == ["kubectl", "v1.3"]
    assert literal_fragments("ünï") == ["n"]


# --- the exact predicate on real events ------------------------------------------------


def test_user_verb_and_code_on_minikube_events() -> None:
    events = json_lines(MINIKUBE)
    node = [e for e in events if e["user"]["username"] == "system:node:minikube"]
    assert len(matching(FilterSpec(users=("system:node:minikube",)), events)) == len(node)
    assert len(matching(FilterSpec(users=("system:node:*",)), events)) == len(node)
    forbidden = [e for e in events if e.get("responseStatus", {}).get("code") == 403]
    assert len(matching(FilterSpec(codes=(CodeSpec.parse("403"),)), events)) == len(forbidden)
    assert len(forbidden) == 108  # PROVENANCE.md
    denied = [
        e
        for e in events
        if e.get("annotations", {}).get("authorization.k8s.io/decision") == "forbid"
    ]
    assert matching(FilterSpec(denied=True), events) == denied
    watches = [e for e in events if e["verb"] in ("watch", "list")]
    assert matching(FilterSpec(verbs=("watch", "list")), events) == watches


def test_failed_means_4xx_5xx_or_panic() -> None:
    events = json_lines(MINIKUBE)
    failed = [e for e in events if e.get("responseStatus", {}).get("code", 0) >= 400]
    assert matching(FilterSpec(failed=True), events) == failed
    assert failed


def test_resource_subresource_semantics_follow_audit_policy() -> None:
    events = json_lines(MINIKUBE)

    def ref(e: dict) -> dict:
        return e.get("objectRef", {})

    bare_pods = [
        e for e in events if ref(e).get("resource") == "pods" and not ref(e).get("subresource")
    ]
    all_pods = [e for e in events if ref(e).get("resource") == "pods"]
    assert bare_pods and len(all_pods) > len(bare_pods)
    assert matching(FilterSpec(resources=(ResourceSpec.parse("pods"),)), events) == bare_pods
    assert matching(FilterSpec(resources=(ResourceSpec.parse("pods/*"),)), events) == all_pods
    assert matching(FilterSpec(resources=(ResourceSpec.parse("pods.apps"),)), events) == []
    core = matching(FilterSpec(resources=(ResourceSpec.parse("pods.core/*"),)), events)
    assert core == all_pods


def test_impersonated_user_matches_in_v1beta1() -> None:
    events = json_lines(V1BETA1)
    as_bob = [e for e in events if e.get("impersonatedUser", {}).get("username") == "bob"]
    assert as_bob
    assert matching(FilterSpec(users=("bob",)), events) == as_bob
    assert len(matching(FilterSpec(users=("system:admin",)), events)) == len(events)


def test_namespace_name_and_groups_combine_with_and() -> None:
    events = json_lines(OPENSHIFT / "vrl-audit_in.log")
    spec = FilterSpec(namespaces=("openshift-kube-apiserver",), verbs=("get",))
    expected = [
        e
        for e in events
        if e.get("objectRef", {}).get("namespace") == "openshift-kube-apiserver"
        and e["verb"] == "get"
    ]
    assert expected and matching(spec, events) == expected
    masters = [
        e
        for e in events
        if "system:serviceaccounts:openshift-cluster-version" in e["user"].get("groups", [])
    ]
    assert masters
    assert (
        matching(FilterSpec(groups=("system:serviceaccounts:openshift-cluster-version",)), events)
        == masters
    )


def test_time_window_uses_the_stage_time() -> None:
    events = json_lines(MINIKUBE)
    since = datetime(2026, 1, 21, 19, 20, tzinfo=timezone.utc)
    expected = [e for e in events if e["stageTimestamp"] >= "2026-01-21T19:20:00"]
    assert 0 < len(expected) < len(events)
    assert matching(FilterSpec(since=since), events) == expected


def test_source_ip_address_and_network() -> None:
    events = json_lines(MINIKUBE)
    local = [e for e in events if "192.168.49.2" in e.get("sourceIPs", [])]
    assert local
    assert matching(FilterSpec(source_ips=("192.168.49.2",)), events) == local
    network = [e for e in events if any(ip.startswith("192.168.") for ip in e.get("sourceIPs", []))]
    assert len(network) > len(local)
    assert matching(FilterSpec(source_ips=("192.168.0.0/16",)), events) == network
    with pytest.raises(UsageError, match="--source-ip"):
        compile_filters(FilterSpec(source_ips=("not-an-ip",)))


def test_user_agent_substring_or_glob() -> None:
    events = json_lines(MINIKUBE)
    kubelet = [e for e in events if e.get("userAgent", "").startswith("kubelet/")]
    assert kubelet
    assert matching(FilterSpec(user_agents=("kubelet/",)), events) == kubelet
    assert matching(FilterSpec(user_agents=("kubelet/*",)), events) == kubelet


# --- the prefilter is a safe superset ----------------------------------------------------


def _specs_for(event: dict) -> list[FilterSpec]:
    """Filters that this very event satisfies, one per field."""
    ref = event.get("objectRef", {})
    user = event["user"]["username"]
    specs = [FilterSpec(users=(user,)), FilterSpec(verbs=(event["verb"],))]
    specs.append(FilterSpec(users=(user[:3] + "*",)))
    if ref.get("resource"):
        specs.append(FilterSpec(resources=(ResourceSpec(ref["resource"], None, "*"),)))
    if ref.get("namespace"):
        specs.append(FilterSpec(namespaces=(ref["namespace"],)))
    if ref.get("name"):
        specs.append(FilterSpec(names=(ref["name"],)))
    code = event.get("responseStatus", {}).get("code")
    if code:
        specs.append(FilterSpec(codes=(CodeSpec.parse(str(code)),)))
        specs.append(FilterSpec(codes=(CodeSpec.parse(f"{code // 100}xx"),)))
    if event.get("sourceIPs"):
        specs.append(FilterSpec(source_ips=(event["sourceIPs"][0],)))
    if event.get("userAgent"):
        specs.append(FilterSpec(user_agents=(event["userAgent"],)))
    specs.append(FilterSpec(levels=(event["level"],), stages=(event["stage"],)))
    return specs


def _go_style(event: dict) -> bytes:
    """How the apiserver (Go encoding/json) writes it: compact, `&<>` escaped."""
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").encode()


def _python_style(event: dict) -> bytes:
    """json.dumps defaults: spaces after colons and commas, non-ASCII escaped."""
    return json.dumps(event).encode()


@pytest.mark.parametrize("encode", [_go_style, _python_style])
def test_needles_never_drop_a_matching_line(encode) -> None:
    events = json_lines(MINIKUBE)[::13] + json_lines(OPENSHIFT / "vrl-audit_in.log")[::9]
    # Values the apiserver escapes must still be found.
    tricky = dict(events[0])
    tricky["user"] = {"username": "dev&ops<team>", "groups": ["a&b"]}
    tricky["userAgent"] = "tool/1.0 (x&y) <z>"
    events.append(tricky)
    data = b"".join(encode(e) + b"\n" for e in events)
    parsed = parse_all(data)
    checked = 0
    for event in events:
        for spec in _specs_for(event):
            expected = brute_force(spec, parsed)
            assert encode(event) in expected
            assert scanned(spec, data) == expected, spec
            checked += 1
    assert checked > 50


def test_time_prefilter_keeps_fractional_seconds_at_the_edges() -> None:
    events = json_lines(MINIKUBE)
    data = b"".join(_go_style(e) + b"\n" for e in events)
    first = min(e["stageTimestamp"] for e in events)
    moment = datetime.fromisoformat(first.replace("Z", "+00:00"))
    for spec in (
        FilterSpec(since=moment),
        FilterSpec(until=moment),
        FilterSpec(since=moment, until=moment),
    ):
        assert scanned(spec, data) == brute_force(spec, data)
        assert scanned(spec, data)
