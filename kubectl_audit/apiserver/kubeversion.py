"""Kubernetes versions as the API reports them (`v1.28.9+k3s1`, `v1.29.0-eks-5e0fdde`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubectl_audit.errors import InputError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?P<rest>[-+].*)?$")


@dataclass(frozen=True, order=True)
class KubeVersion:
    major: int
    minor: int
    patch: int = 0
    suffix: str = ""  # `+k3s1`, `+rke2r1`, `-eks-5e0fdde`, ... (not part of the ordering)

    @property
    def minor_version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}{self.suffix}"


def parse_version(text: str | KubeVersion) -> KubeVersion:
    """`v1.28.2`, `1.28`, `v1.28.9+k3s1` -> KubeVersion; anything else is an InputError."""
    if isinstance(text, KubeVersion):
        return text
    match = _VERSION.match(text.strip())
    if not match:
        raise InputError(
            f"not a Kubernetes version: {text!r}", hint="expected something like v1.30.2"
        )
    major, minor, patch = match.group(1), match.group(2), match.group(3)
    return KubeVersion(int(major), int(minor), int(patch or 0), match.group("rest") or "")
