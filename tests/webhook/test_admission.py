"""The AdmissionReview contract with real request shapes and real policies.

Verdicts are compared with the policy engine's own (`check_policy`) on the same bytes:
the webhook must add nothing and lose nothing.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
import yaml

from kubectl_audit.policy.report import check_policy
from tests.webhook.helpers import (
    OPTED_IN,
    POLICIES,
    REVIEWS,
    V1BETA1,
    answer,
    configmap,
    configmap_request,
    policy_files,
    policy_review,
    wrap,
)
from webhook.admission import judge
from webhook.config import WebhookConfig

CAPTURED = REVIEWS / "kube-audit-rest" / "kube-audit-rest-captured-admissionreviews.jsonl"
BARE_REQUESTS = sorted(
    p for p in (REVIEWS / "pepr").glob("*.json") if p.name != "cm1-configmap-create-request.json"
) + sorted(p for p in (REVIEWS / "kubewarden").glob("*-request.json"))
SINGLE_POLICIES = [p for p in policy_files() if "configmap" not in p.name]
VALID_EXAMPLE = (POLICIES / "kubernetes-docs-example-audit-policy.yaml").read_text()
BROKEN = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_captured_real_review_is_answered_with_its_uid_and_allowed(client: Any) -> None:
    """59 bodies a real kube-apiserver POSTed: none is a ConfigMap, all pass untouched."""
    lines = CAPTURED.read_text().splitlines()
    assert len(lines) == 59  # 44 + 13 + 1 + 1 per PROVENANCE.md (whose "58" miscounts)
    for line in lines:
        review = json.loads(line)
        response = answer(client, review)
        assert response == {"uid": review["request"]["uid"], "allowed": True}


@pytest.mark.parametrize("path", BARE_REQUESTS, ids=lambda p: p.name)
def test_other_kinds_and_deletes_are_allowed_without_a_look(client: Any, path: Any) -> None:
    request = json.loads(path.read_text())
    assert answer(client, wrap(request))["allowed"] is True
    assert judge(request, WebhookConfig()).outcome == "skipped"


def test_full_review_fixture_is_echoed(client: Any) -> None:
    review = json.loads(
        (REVIEWS / "kubewarden" / "image-cve-deployment-admissionreview.json").read_text()
    )
    assert answer(client, review)["allowed"] is True


def test_real_configmap_create_without_the_label_is_skipped(client: Any) -> None:
    request = json.loads((REVIEWS / "pepr" / "cm1-configmap-create-request.json").read_text())
    assert answer(client, wrap(request)) == {"uid": request["uid"], "allowed": True}
    request["object"]["data"]["policy.yaml"] = BROKEN  # not opted in: not ours to judge
    assert answer(client, wrap(request))["allowed"] is True
    assert judge(request, WebhookConfig()).outcome == "skipped"


def test_labelled_configmap_without_policies_is_allowed(client: Any) -> None:
    request = json.loads((REVIEWS / "pepr" / "cm1-configmap-create-request.json").read_text())
    request["object"]["metadata"]["labels"] = dict(OPTED_IN)
    verdict = judge(request, WebhookConfig())
    assert (verdict.outcome, verdict.valid_documents, verdict.invalid_documents) == (
        "allowed",
        0,
        0,
    )
    assert answer(client, wrap(request))["allowed"] is True


@pytest.mark.parametrize("path", SINGLE_POLICIES, ids=lambda p: p.name)
def test_real_policies_get_the_engines_verdict(client: Any, path: Any) -> None:
    data = path.read_bytes()
    report = check_policy(data, file="policy.yaml")
    response = answer(client, policy_review(data))
    assert response["allowed"] is report.valid
    if report.valid:
        assert "status" not in response
        return
    status = response["status"]
    assert (status["code"], status["reason"]) == (422, "Invalid")
    message = status["message"]
    assert "\n" not in message and "data[policy.yaml]" in message
    for error in report.errors:
        assert _one_line(error.message) in message
        if error.field:
            assert error.field in message
        if error.line is not None:
            assert f"line {error.line}:" in message


def test_the_known_bad_real_policy_is_denied_and_the_docs_example_allowed(client: Any) -> None:
    """Pins the parametrized test above to at least one of each outcome."""
    bad = (POLICIES / "openshift-logging-osd-example-policy-nonstandard.yaml").read_text()
    assert answer(client, policy_review(bad))["allowed"] is False
    assert answer(client, policy_review(VALID_EXAMPLE))["allowed"] is True


def test_denial_names_key_line_and_field_in_the_engines_words(client: Any) -> None:
    response = answer(client, policy_review(BROKEN, key="audit.yaml"))
    message = response["status"]["message"]
    assert message.startswith("ConfigMap apps/game-demo holds an invalid audit policy (1 error): ")
    assert 'data[audit.yaml] line 4: rules[0].level: Unsupported value: "Loud"' in message


def test_real_configmap_with_several_policies_checks_each_key(client: Any) -> None:
    """OpenShift's multi-policy ConfigMap: every key declares audit.k8s.io, none is policy.yaml."""
    cm = yaml.safe_load(
        (POLICIES / "openshift" / "audit-policies-configmap-scenario-1.yaml").read_text()
    )
    obj = configmap(cm["data"])
    reports = [check_policy(text, file=key) for key, text in cm["data"].items()]
    verdict = judge(configmap_request(obj), WebhookConfig())
    assert verdict.valid_documents + verdict.invalid_documents == len(cm["data"]) > 1
    assert verdict.invalid_documents == sum(not r.valid for r in reports)
    assert answer(client, wrap(configmap_request(obj)))["allowed"] is all(r.valid for r in reports)


def test_one_bad_key_among_good_ones_denies_and_names_that_key(client: Any) -> None:
    obj = configmap({"a.yaml": VALID_EXAMPLE, "z.yaml": BROKEN, "notes.txt": "level: Loud"})
    response = answer(client, wrap(configmap_request(obj)))
    message = response["status"]["message"]
    assert "data[z.yaml] line 4" in message
    assert "a.yaml" not in message and "notes.txt" not in message


def test_non_policy_values_are_not_parsed(client: Any) -> None:
    obj = configmap({"other.yaml": "apiVersion: v1\nkind: Pod\n: : broken : yaml [", "x": "{"})
    verdict = judge(configmap_request(obj), WebhookConfig())
    assert (verdict.outcome, verdict.valid_documents + verdict.invalid_documents) == ("allowed", 0)


def test_configured_policy_key_is_checked_whatever_it_declares(client: Any) -> None:
    config = WebhookConfig(policy_keys=("audit-policy",))
    request = configmap_request(configmap({"audit-policy": "rules:\n- level: Metadata\n"}))
    verdict = judge(request, config)
    assert verdict.allowed is False  # no apiVersion: kube-apiserver refuses it too
    assert judge(request, WebhookConfig()).outcome == "allowed"  # not a policy key by default


@pytest.mark.parametrize(("text", "allowed"), [(VALID_EXAMPLE, True), (BROKEN, False)])
def test_binary_data_policies_are_checked(client: Any, text: str, allowed: bool) -> None:
    obj = configmap(binary={"policy.yaml": base64.b64encode(text.encode()).decode()})
    response = answer(client, wrap(configmap_request(obj)))
    assert response["allowed"] is allowed
    if not allowed:
        assert "binaryData[policy.yaml] line 4" in response["status"]["message"]


def test_binary_data_that_is_not_utf8_is_denied_with_the_engines_reason(client: Any) -> None:
    raw = b"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: \xff\xfe\n"
    obj = configmap(binary={"policy.yaml": base64.b64encode(raw).decode()})
    report = check_policy(raw, file="policy.yaml")
    response = answer(client, wrap(configmap_request(obj)))
    assert response["allowed"] is False and not report.valid
    assert _one_line(report.errors[0].message) in response["status"]["message"]


def test_binary_data_that_is_not_base64_is_denied_for_a_policy_key(client: Any) -> None:
    obj = configmap(binary={"policy.yaml": "@@not base64@@", "blob": "@@"})
    message = answer(client, wrap(configmap_request(obj)))["status"]["message"]
    assert "binaryData[policy.yaml]: binaryData value is not valid base64" in message
    assert "blob" not in message


def test_v1beta1_is_answered_in_v1beta1(client: Any) -> None:
    review = policy_review(BROKEN)
    review["apiVersion"] = V1BETA1
    response = answer(client, review)
    assert response["allowed"] is False


def test_update_is_judged_on_the_new_object(client: Any) -> None:
    old = configmap({"policy.yaml": VALID_EXAMPLE})
    new = configmap({"policy.yaml": BROKEN})
    assert (
        answer(client, wrap(configmap_request(new, operation="UPDATE", old=old)))["allowed"]
        is False
    )
    assert (
        answer(client, wrap(configmap_request(old, operation="UPDATE", old=new)))["allowed"] is True
    )


def test_update_that_removes_the_label_is_allowed(client: Any) -> None:
    old = configmap({"policy.yaml": BROKEN})
    new = configmap({"policy.yaml": BROKEN}, labels={})
    assert (
        judge(configmap_request(new, operation="UPDATE", old=old), WebhookConfig()).outcome
        == "skipped"
    )


def test_delete_of_a_labelled_broken_policy_is_allowed_without_work(client: Any) -> None:
    request = configmap_request(configmap({"policy.yaml": BROKEN}), operation="DELETE")
    assert judge(request, WebhookConfig()).outcome == "skipped"
    assert answer(client, wrap(request))["allowed"] is True


def test_dry_run_is_judged_like_a_real_write(client: Any) -> None:
    for dry_run in (False, True):
        review = policy_review(BROKEN, dry_run=dry_run)
        assert answer(client, review)["allowed"] is False
        assert answer(client, policy_review(VALID_EXAMPLE, dry_run=dry_run))["allowed"] is True


def test_uid_is_echoed_exactly(client: Any) -> None:
    for uid in ("0", "a" * 36, "ünïcode-uid", "705ab4f5-6393-11e8-b7cc-42010a800002"):
        assert answer(client, policy_review(BROKEN, uid=uid))["uid"] == uid


def test_many_errors_are_listed_up_to_the_bound(client: Any) -> None:
    rules = "".join(f"- level: Loud{i}\n" for i in range(30))
    policy = f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n{rules}"
    message = answer(client, policy_review(policy))["status"]["message"]
    assert "(30 errors)" in message
    assert message.count("Unsupported value") == 20
    assert message.endswith("and 10 more (run `kubectl audit validate` on the policy)")


def test_lint_findings_become_bounded_single_line_warnings(client: Any) -> None:
    """Unknown fields are warnings in the engine (the apiserver drops them): not a denial."""
    fields = "".join(f"  unknownField{i}: x{i}\n" for i in range(15))
    policy = f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n{fields}"
    report = check_policy(policy, file="policy.yaml")
    assert report.valid and len(report.warnings) >= 15
    response = answer(client, policy_review(policy))
    warnings = response["warnings"]
    assert response["allowed"] is True
    assert len(warnings) == 10
    assert all(len(w) <= 120 and "\n" not in w and w.isprintable() for w in warnings)
    assert warnings[-1].endswith("more warnings: run `kubectl audit validate`")
    assert len(set(warnings)) == len(warnings)


def test_real_policy_lint_warnings_reach_the_response(client: Any) -> None:
    for path in SINGLE_POLICIES:
        report = check_policy(path.read_bytes(), file="policy.yaml")
        if report.valid and report.warnings:
            warnings = answer(client, policy_review(path.read_bytes()))["warnings"]
            assert 0 < len(warnings) <= 10
            first = report.warnings[0]
            assert warnings[0].startswith(f"policy.yaml:{first.line}: ")
            return
    pytest.fail("no real policy with lint warnings: the engine's lint or the data changed")


def test_configuration_from_environment() -> None:
    config = WebhookConfig.from_env(
        {"WEBHOOK_POLICY_KEYS": "a.yaml, b.yaml", "WEBHOOK_MAX_POLICY_BYTES": "1024"}
    )
    assert config.policy_keys == ("a.yaml", "b.yaml") and config.max_policy_bytes == 1024
    from kubectl_audit.errors import UsageError

    with pytest.raises(UsageError, match="WEBHOOK_MAX_BODY_BYTES"):
        WebhookConfig.from_env({"WEBHOOK_MAX_BODY_BYTES": "lots"})
    with pytest.raises(UsageError):
        WebhookConfig(policy_keys=())


def test_request_object_is_not_modified(client: Any) -> None:
    request = configmap_request(configmap({"policy.yaml": BROKEN}))
    before = copy.deepcopy(request)
    judge(request, WebhookConfig())
    assert request == before
