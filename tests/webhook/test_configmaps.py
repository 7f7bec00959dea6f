"""Which ConfigMap values are policies: a byte scan, so its edges are pinned here."""

from __future__ import annotations

import pytest

from tests.webhook.helpers import configmap
from webhook.config import WebhookConfig
from webhook.configmaps import declares_audit_policy, is_opted_in, policy_documents


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: audit.k8s.io/v1\nkind: Policy\n",
        "kind: Policy\napiVersion: audit.k8s.io/v1\n",  # kind first (audit2rbac's order)
        "    apiVersion: audit.k8s.io/v1\n",  # OpenShift indents whole documents
        '"apiVersion": "audit.k8s.io/v1"\n',
        "apiVersion: 'audit.k8s.io/v1beta1'\n",  # an old version is still a policy: judged
        '{"kind":"Policy","apiVersion":"audit.k8s.io/v1","rules":[]}',
        '{ "apiVersion" : "audit.k8s.io/v1" }',
        "---\napiVersion:\taudit.k8s.io/v1\n",
    ],
)
def test_declared_audit_policies_are_found(text: str) -> None:
    assert declares_audit_policy(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: ConfigMap\n",
        "# apiVersion: audit.k8s.io/v1\n",  # a comment declares nothing
        "description: see apiVersion: audit.k8s.io/v1 docs\n",
        "myapiVersion: audit.k8s.io/v1\n",
        "apiVersion: audit.k8s.iox/v1\n",
        "",
    ],
)
def test_other_text_is_not_a_policy(text: str) -> None:
    assert not declares_audit_policy(text.encode())


def test_opt_in_needs_the_exact_label_value() -> None:
    config = WebhookConfig()
    assert is_opted_in(configmap({}), config)
    for labels in ({}, {config.label: "True"}, {config.label: "yes"}, {"other": "true"}):
        assert not is_opted_in(configmap({}, labels=labels), config)
    assert not is_opted_in({"metadata": None}, config)
    assert not is_opted_in({}, config)


def test_documents_are_found_in_data_and_binary_data_in_key_order() -> None:
    policy = "apiVersion: audit.k8s.io/v1\n"
    obj = configmap(
        {"z.yaml": policy, "policy.yaml": "anything", "readme": "text"},
        binary={"b.yaml": "YXBpVmVyc2lvbjogYXVkaXQuazhzLmlvL3YxCg=="},  # base64 of `policy`
    )
    found = [(d.source, d.key) for d in policy_documents(obj, WebhookConfig())]
    assert found == [("data", "policy.yaml"), ("data", "z.yaml"), ("binaryData", "b.yaml")]
    assert policy_documents(obj, WebhookConfig())[2].content == policy.encode()
