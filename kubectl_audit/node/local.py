"""The node itself as a NodeShell: `--local` on the node (root="/"), or a root directory.

With a root other than "/" commands run under `chroot ROOT`, so the same agent script sees
the same paths as it does on a node.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from kubectl_audit.errors import NodeError
from kubectl_audit.node.shell import CommandResult


class LocalShell:
    def __init__(self, root: Path | str = "/", *, node: str | None = None) -> None:
        self.root = Path(root)
        self.node = node or ("localhost" if str(root) == "/" else self.root.name)

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult:
        command = list(argv) if self.root == Path("/") else ["chroot", str(self.root), *argv]
        try:
            done = subprocess.run(
                command,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NodeError(
                f"{argv[0]} did not finish within {timeout:.0f}s on {self.node}"
            ) from None
        except PermissionError:
            raise NodeError(
                f"cannot run commands in {self.root} on {self.node}: permission denied",
                hint="--local must run as root on the control-plane node (e.g. with sudo)",
            ) from None
        return CommandResult(done.returncode, done.stdout, done.stderr)
