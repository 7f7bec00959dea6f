"""Running a command on a node, whatever carries it (a debug pod, or the node itself)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kubectl_audit.errors import ClusterError


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class NodeShell(Protocol):
    """Runs argv in the node's root file system as root, binary-safe.

    `stdin`, when given, is written to the command's standard input. Exec streams of older
    servers cannot signal end-of-file, so commands must read exactly len(stdin) bytes
    (`head -c N`) rather than wait for EOF.
    """

    node: str

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult: ...


class StreamLost(ClusterError):
    """The connection carrying a command went away before it finished (e.g. API restart).

    Callers that expect it (waiting out an apiserver restart) catch it; anywhere else the
    user sees that the connection was lost, and what state the node was left in.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the connection to the API server was lost while a command ran on the node ({detail})",
            hint="the API server may be restarting; run the command again in a minute",
        )
