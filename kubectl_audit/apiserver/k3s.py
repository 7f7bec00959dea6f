"""k3s runs kube-apiserver inside its own process: its flags are only in the service log.

k3s logs the command line it starts the embedded apiserver with, e.g.
`time="..." level=info msg="Running kube-apiserver --advertise-port=6443 --audit-log-path=..."`;
kube-bench's k3s profiles read the flags from `journalctl -u k3s` the same way
(reference/field-notes.md §3.3). Only the newest start counts.
"""

from __future__ import annotations

import re

from kubectl_audit.apiserver.flags import Flag, parse_command

_RUNNING = re.compile(r'Running kube-apiserver ((?:[^"\\]|\\.)*)')


def flags_from_k3s_log(text: str) -> tuple[Flag, ...] | None:
    """The flags of the last `Running kube-apiserver` line, or None if there is none."""
    matches = _RUNNING.findall(text)
    if not matches:
        return None
    words = matches[-1].replace('\\"', '"').split()
    return parse_command(["kube-apiserver", *words])
