"""The simulator's policy reader and the plugin's engine are independent on purpose (DESIGN.md
§5); this checks that they agree, so a bug in one shows up as a disagreement here."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kubectl_audit.policy.checker import PolicyChecker
from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.model import RequestAttributes, UserInfo
from kubectl_audit.policy.validation import aggregate_message
from tests.conftest import TESTDATA
from tests.kubesim import policyreader as pr

POLICIES = sorted((TESTDATA / "policies").rglob("*.yaml"))
HEADER = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
CRAFTED = {
    "empty file": "",
    "no rules": HEADER,
    "v1beta1": "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n",
    "lower-case kind": "apiVersion: audit.k8s.io/v1\nkind: policy\nrules:\n- level: None\n",
    "lower-case level": HEADER + "rules:\n- level: none\n",
    "null rule": HEADER + "rules:\n- null\n",
    "yaml 1.1 boolean": HEADER + "rules:\n- level: None\n  namespaces: [no]\n",
    "number as user": HEADER + "rules:\n- level: None\n  users: [1234]\n",
    "mixed rule": HEADER + "rules:\n- level: None\n  nonResourceURLs: [/x]\n  namespaces: ['']\n",
    "group with version": HEADER + "rules:\n- level: None\n  resources:\n  - group: apps/v1\n",
    "names without resources": HEADER
    + "rules:\n- level: None\n  resources:\n  - resourceNames: [a]\n",
    "bad urls": HEADER + "rules:\n- level: None\n  nonResourceURLs: ['*logs', 'x']\n",
    "empty stage": HEADER + "omitStages: ['']\nrules:\n- level: None\n",
    "mis-cased type keys": "APIVersion: audit.k8s.io/v1\nKind: Policy\nrules:\n- level: None\n",
    "json": '{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata"}]}',
    "second document ignored": HEADER + "rules:\n- level: None\n---\nfoo: [\n",
    "date-like user": HEADER + "rules:\n- level: None\n  users: [2024-01-01]\n",
}


def plugin_verdict(data: bytes) -> str:
    result = load_policy(data)
    return "loads" if result.ok else aggregate_message(result.errors)


def simulator_verdict(data: bytes) -> str:
    try:
        pr.parse_policy(data)
    except pr.PolicyLoadError as exc:
        return str(exc)
    return "loads"


@pytest.mark.parametrize("name", [*CRAFTED, *(p.name for p in POLICIES)])
def test_load_verdicts_and_messages_agree(name: str) -> None:
    data = (
        CRAFTED[name].encode()
        if name in CRAFTED
        else next(p for p in POLICIES if p.name == name).read_bytes()
    )
    assert simulator_verdict(data) == plugin_verdict(data)


USERS = ["alice", "system:kube-proxy", "system:apiserver", "system:node:n1", "kubernetes-admin"]
GROUPS = [
    ("system:authenticated",),
    ("system:nodes", "system:authenticated"),
    ("system:serviceaccounts", "system:authenticated"),
    ("system:masters", "system:authenticated"),
]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
RESOURCES = [
    ("pods", ""),
    ("pods", "log"),
    ("pods", "exec"),
    ("pods", "status"),
    ("configmaps", ""),
    ("secrets", ""),
    ("events", ""),
    ("endpoints", ""),
    ("nodes", "status"),
    ("leases", ""),
    ("deployments", ""),
    ("tokenreviews", ""),
    ("namespaces", ""),
]
API_GROUPS = ["", "apps", "coordination.k8s.io", "authentication.k8s.io", "extensions"]
PATHS = ["/healthz", "/healthz/etcd", "/api", "/apis", "/version", "/metrics", "/readyz"]


def random_requests(seed: int, count: int) -> list[tuple[RequestAttributes, pr.Request]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        user, groups, verb = rng.choice(USERS), rng.choice(GROUPS), rng.choice(VERBS)
        if rng.random() < 0.2:
            path = rng.choice(PATHS)
            pairs.append(
                (
                    RequestAttributes(
                        verb=verb, user=UserInfo(user, groups), resource_request=False, path=path
                    ),
                    pr.Request(user, groups, verb, path, resource_request=False),
                )
            )
            continue
        resource, sub = rng.choice(RESOURCES)
        group, namespace = rng.choice(API_GROUPS), rng.choice(["", "kube-system", "default"])
        name = rng.choice(["", "controller-leader", "x"])
        pairs.append(
            (
                RequestAttributes(
                    verb=verb,
                    user=UserInfo(user, groups),
                    namespace=namespace,
                    api_group=group,
                    resource=resource,
                    subresource=sub,
                    name=name,
                    path="/x",
                ),
                pr.Request(user, groups, verb, "/x", True, group, resource, sub, namespace, name),
            )
        )
    return pairs


# Policies that load (the others are covered by the verdict test above).
LOADING = [p for p in POLICIES if load_policy(p.read_bytes()).ok]


@pytest.mark.parametrize("path", LOADING, ids=lambda p: p.name)
def test_levels_and_omit_stages_agree(path: Path) -> None:
    data = path.read_bytes()
    loaded = load_policy(data)
    assert loaded.policy is not None
    checker, ours = PolicyChecker(loaded.policy), pr.parse_policy(data)
    for theirs_attrs, our_request in random_requests(seed=len(path.name), count=400):
        decision = checker.decide(theirs_attrs)
        assert (decision.level, decision.omit_stages) == pr.decide(ours, our_request), our_request
