"""What the webhook can be told: the opt-in label, policy keys and the bounds on its work.

Values come from `WEBHOOK_*` environment variables in the container (see README) or a
`WebhookConfig` handed to `create_app` in tests. Defaults are the documented contract.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from kubectl_audit.errors import UsageError

# One name, used by the webhook, the ValidatingWebhookConfiguration and the examples.
OPT_IN_LABEL = "audit.kubectl-audit.io/policy"
OPT_IN_VALUE = "true"


@dataclass(frozen=True)
class WebhookConfig:
    """Every knob of the webhook. Sizes are bytes."""

    label: str = OPT_IN_LABEL
    label_value: str = OPT_IN_VALUE
    # Keys that always hold a policy, whatever their text declares.
    policy_keys: tuple[str, ...] = ("policy.yaml",)
    # A whole AdmissionReview body: the API server caps request bodies at 3 MB and a
    # ConfigMap at 1 MiB, so anything larger is not a review it sent.
    max_body_bytes: int = 3 * 1024 * 1024
    # One policy document: keeps the worst-case load well inside timeoutSeconds
    # (libyaml ~1 MB/s on big policies, reference §2.4).
    max_policy_bytes: int = 256 * 1024
    # The denial lists this many errors, then "and N more".
    max_errors_listed: int = 20
    # The API server drops warnings with newlines and truncates after 4096 runes in total.
    max_warnings: int = 10
    max_warning_chars: int = 120
    # Findings remembered per worker, by SHA-256 of the policy text (0: off).
    cache_entries: int = 512

    def __post_init__(self) -> None:
        if not self.label or not self.policy_keys:
            raise UsageError("webhook: the opt-in label and at least one policy key must be set")
        for name in ("max_body_bytes", "max_policy_bytes", "max_errors_listed", "max_warnings"):
            if getattr(self, name) < 1:
                raise UsageError(f"webhook: {name} must be at least 1, not {getattr(self, name)}")
        if self.cache_entries < 0:
            raise UsageError("webhook: cache_entries cannot be negative")
        if self.max_warning_chars < 20:
            raise UsageError("webhook: max_warning_chars must be at least 20")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookConfig:
        """Read `WEBHOOK_<FIELD>` variables; `WEBHOOK_POLICY_KEYS` is comma-separated."""
        env = os.environ if env is None else env
        config = cls()
        changes: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"WEBHOOK_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(config, f.name)
            if isinstance(current, tuple):
                changes[f.name] = tuple(k.strip() for k in raw.split(",") if k.strip())
            elif isinstance(current, int):
                try:
                    changes[f.name] = int(raw)
                except ValueError:
                    raise UsageError(
                        f"webhook: WEBHOOK_{f.name.upper()}={raw!r} is not an integer"
                    ) from None
            else:
                changes[f.name] = raw
        return replace(config, **changes)
