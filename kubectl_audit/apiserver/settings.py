"""What `enable` sets: paths, rotation and the policy's digest, and the flags they imply."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from kubectl_audit.errors import UsageError

DEFAULT_POLICY_PATH = "/etc/kubernetes/audit/policy.yaml"
DEFAULT_LOG_PATH = "/var/log/kubernetes/audit/audit.log"
# CIS 1.2.17-1.2.19 (cis-1.9..1.12) want at least these; kube-bench tests `gte`.
DEFAULT_MAX_AGE = 30
DEFAULT_MAX_BACKUP = 10
DEFAULT_MAX_SIZE = 100

# The flags `enable` owns. `--audit-log-compress` appears only when compression is on.
OWNED_FLAGS: tuple[str, ...] = (
    "--audit-log-compress",
    "--audit-log-maxage",
    "--audit-log-maxbackup",
    "--audit-log-maxsize",
    "--audit-log-path",
    "--audit-policy-file",
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Paths go into YAML, shell-free node scripts and flag values: keep them boring.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*$")


@dataclass(frozen=True)
class AuditSettings:
    """Audit log backend settings for one apiserver. Paths are the same on host and in pod."""

    policy_path: str = DEFAULT_POLICY_PATH
    log_path: str = DEFAULT_LOG_PATH
    max_size: int = DEFAULT_MAX_SIZE  # MiB
    max_backup: int = DEFAULT_MAX_BACKUP
    max_age: int = DEFAULT_MAX_AGE  # days
    compress: bool = False
    policy_sha256: str = ""  # hex digest of the policy file's bytes; "" = not known yet

    def __post_init__(self) -> None:
        _check_path("policy path", self.policy_path)
        _check_path("log path", self.log_path)
        if self.log_path.endswith("/"):
            raise UsageError(
                f"log path {self.log_path} names a directory",
                hint="give the log file, e.g. /var/log/kubernetes/audit/audit.log",
            )
        if posixpath.normpath(self.log_path) == posixpath.normpath(self.policy_path):
            raise UsageError("the policy path and the log path are the same file")
        for name, value in (
            ("--audit-log-maxsize", self.max_size),
            ("--audit-log-maxbackup", self.max_backup),
            ("--audit-log-maxage", self.max_age),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a whole number >= 0, not {value!r}")
        if self.policy_sha256 and not _SHA256.match(self.policy_sha256):
            raise UsageError("policy_sha256 must be 64 lower-case hex digits (a SHA-256 digest)")

    @property
    def log_dir(self) -> str:
        """The directory the apiserver writes into: rotation renames files inside it."""
        return posixpath.dirname(posixpath.normpath(self.log_path))

    def flag_values(self) -> tuple[tuple[str, str], ...]:
        """(`--flag`, value) pairs in kubeadm's alphabetical order."""
        pairs = [
            ("--audit-log-maxage", str(self.max_age)),
            ("--audit-log-maxbackup", str(self.max_backup)),
            ("--audit-log-maxsize", str(self.max_size)),
            ("--audit-log-path", self.log_path),
            ("--audit-policy-file", self.policy_path),
        ]
        if self.compress:
            pairs.insert(0, ("--audit-log-compress", "true"))
        return tuple(pairs)

    def flags(self) -> tuple[str, ...]:
        """The command-line arguments, `--name=value`, as kubeadm writes them."""
        return tuple(f"{name}={value}" for name, value in self.flag_values())

    def extra_args(self) -> tuple[tuple[str, str], ...]:
        """The same settings without dashes, as kubeadm extraArgs / k3s `kube-apiserver-arg`."""
        return tuple((name[2:], value) for name, value in self.flag_values())


def _check_path(what: str, path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise UsageError(
            f"the {what} must be an absolute path, not {path!r}",
            hint="`-` (stdout) is not offered: it fills the container log disk",
        )
    if not _SAFE_PATH.match(path) or "/../" in path + "/" or path.rstrip("/") == "":
        raise UsageError(
            f"the {what} {path!r} contains characters or segments we do not write into a manifest",
            hint="use letters, digits and . _ - + @ / only, no `..`",
        )
