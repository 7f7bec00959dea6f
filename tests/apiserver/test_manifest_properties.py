"""Properties of enable/disable over generated settings, on every clean and hand-made manifest."""

from __future__ import annotations

import difflib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_audit.apiserver.flags import last_values
from kubectl_audit.apiserver.manifest import read_manifest, render_disabled, render_enabled
from kubectl_audit.apiserver.mounts import check_paths_reachable
from kubectl_audit.apiserver.settings import AuditSettings
from tests.apiserver.test_manifest import CLEAN, HAND_MADE

SEGMENT = st.text("abcxyz019._-", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
TEXTS = [p.read_text() for p in CLEAN] + [p.read_text() for p in HAND_MADE]


@st.composite
def audit_settings(draw: st.DrawFn) -> AuditSettings:
    policy = draw(PATH)
    log = draw(PATH.filter(lambda p: p != policy and not p.startswith(policy + "/")))
    return AuditSettings(
        policy_path=policy,
        log_path=log,
        max_size=draw(st.integers(0, 2000)),
        max_backup=draw(st.integers(0, 200)),
        max_age=draw(st.integers(0, 400)),
        compress=draw(st.booleans()),
        policy_sha256=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEXTS), audit_settings(), audit_settings())
def test_enable_disable_round_trip(text: str, first: AuditSettings, second: AuditSettings) -> None:
    enabled = render_enabled(text, first, take_over=True)
    pod = read_manifest(enabled)
    assert last_values(pod.flags)["--audit-log-path"] == first.log_path
    assert not [p for p in check_paths_reachable(pod.spec, pod.container) if p.is_error]
    assert render_enabled(enabled, first) == enabled
    changed = render_enabled(enabled, second)
    assert last_values(read_manifest(changed).flags)["--audit-policy-file"] == second.policy_path
    assert render_disabled(changed) == text
    assert render_disabled(enabled) == text


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([p.read_text() for p in CLEAN]), audit_settings())
def test_clean_manifests_only_gain_lines(text: str, chosen: AuditSettings) -> None:
    enabled = render_enabled(text, chosen)
    diff = difflib.unified_diff(text.splitlines(True), enabled.splitlines(True), n=0)
    body = [line for line in diff if not line.startswith(("---", "+++", "@@"))]
    assert body and all(line.startswith("+") for line in body)
