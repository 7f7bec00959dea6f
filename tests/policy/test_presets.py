"""Shipped presets: each loads clean (no errors, no warnings, no lint) and passes its tests."""

from __future__ import annotations

import pytest

from kubectl_audit.errors import UsageError
from kubectl_audit.policy.lint import lint_policy
from kubectl_audit.policy.loader import load_policy
from kubectl_audit.policy.presets import (
    list_presets,
    preset_source,
    read_preset,
    read_preset_tests,
)
from kubectl_audit.policy.report import check_policy
from kubectl_audit.policy.testsuite import load_tests, run_tests

PRESETS = list_presets()


def test_the_promised_presets_ship() -> None:
    assert {"recommended", "metadata"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_clean(name: str) -> None:
    report = check_policy(read_preset(name), file=preset_source(name))
    assert report.valid, report.errors
    assert report.warnings == ()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_passes_its_own_tests(name: str) -> None:
    policy = load_policy(read_preset(name)).policy
    assert policy is not None
    tests = load_tests(read_preset_tests(name), source=f"{name}.tests.yaml")
    assert len(tests) >= 4
    failures = [r.test.name for r in run_tests(policy, tests) if not r.passed]
    assert failures == []


@pytest.mark.parametrize("name", PRESETS)
def test_preset_omits_request_received_everywhere(name: str) -> None:
    policy = load_policy(read_preset(name)).policy
    assert policy is not None
    assert "RequestReceived" in policy.omit_stages


def test_recommended_puts_sensitive_resources_first_at_metadata() -> None:
    policy = load_policy(read_preset("recommended")).policy
    assert policy is not None
    first = policy.rules[0]
    assert first.level == "Metadata"
    named = {(gr.group, res) for gr in first.resources for res in gr.resources}
    assert {
        ("", "secrets"),
        ("", "configmaps"),
        ("", "serviceaccounts/token"),
        ("authentication.k8s.io", "tokenreviews"),
    } <= named
    assert not (first.users or first.user_groups or first.verbs or first.namespaces)


def test_recommended_tests_would_catch_a_body_leak() -> None:
    # The shipped tests are not vacuous: moving the catch-all to RequestResponse and the
    # Metadata rule for secrets after it must fail them.
    policy = load_policy(read_preset("recommended")).policy
    assert policy is not None
    from dataclasses import replace

    leaky = replace(policy, rules=(replace(policy.rules[-1], level="RequestResponse"),))
    tests = load_tests(read_preset_tests("recommended"), source="recommended.tests.yaml")
    failed = {r.test.name for r in run_tests(leaky, tests) if not r.passed}
    assert "secrets are logged without bodies" in failed
    assert lint_policy(leaky)


def test_unknown_preset_names_the_presets() -> None:
    with pytest.raises(UsageError) as caught:
        read_preset("cis")
    assert caught.value.hint is not None
    assert "recommended" in caught.value.hint
