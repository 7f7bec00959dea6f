"""The project's own exceptions.

Library code raises these; the CLI turns them into one clear message and an exit code
(1: problems found or an operation failed, 2: usage error or unreadable input).
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error this tool reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AuditError):
    """The command line itself is wrong (bad option value, missing argument)."""

    exit_code = 2


class InputError(AuditError):
    """An input file cannot be read, or is too large, or is not text."""

    exit_code = 2


class PolicyError(AuditError):
    """An audit policy cannot be loaded the way kube-apiserver would load it."""


class YamlLimitError(InputError):
    """A YAML document exceeds our size, nesting or alias-expansion budget."""


class ClusterError(AuditError):
    """The cluster refused or failed a request (RBAC, outage, unsupported distribution)."""


class NodeError(AuditError):
    """Something went wrong on a node; the message says what state the node was left in."""
