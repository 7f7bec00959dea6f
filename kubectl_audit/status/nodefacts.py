"""Read-only facts from a control-plane node for `status --deep`, through any NodeShell.

One short POSIX sh script (busybox is enough) prints, in agent.sh's `key<TAB>value`
protocol: the policy file's sha256 and content, every file of the audit log (size, mtime,
first 64 KiB, and the last 64 KiB of the current one) and the free space under the log
directory. It changes nothing on the node. The script travels on stdin and the paths are
arguments, never shell text.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone

from kubectl_audit.errors import NodeError
from kubectl_audit.node.agent import parse_reply
from kubectl_audit.node.shell import NodeShell
from kubectl_audit.status.deep import LogSample, belongs_to_log

SAMPLE_BYTES = 64 << 10
POLICY_LIMIT = 4 << 20  # the apiserver reads the policy whole; beyond this it is not a policy

# $1 policy path, $2 log path ("" = do not look), $3 bytes per sample, $4 size limit for the
# policy and the manifest, $5 the apiserver's static-pod manifest ("" = none).
FACTS_SCRIPT = r"""
set -u
say() { printf '%s\t%s\n' "$1" "$2"; }
b64() { base64 | tr -d '\n'; }
if [ -n "$1" ] && [ -f "$1" ]; then
    say policy_sha256 "$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$(wc -c <"$1")" -le "$4" ]; then say policy_b64 "$(b64 <"$1")"; fi
else
    say policy_sha256 absent
fi
if [ -n "$5" ] && [ -f "$5" ] && [ "$(wc -c <"$5")" -le "$4" ]; then
    say manifest_b64 "$(b64 <"$5")"
fi
if [ -z "$2" ]; then say log_dir absent; exit 0; fi
dir=$(dirname "$2")
current=$(basename "$2")
if [ ! -d "$dir" ]; then say log_dir absent; exit 0; fi
say log_dir present
i=0
for f in "$dir"/*; do
    [ -f "$f" ] || continue
    i=$((i + 1))
    say log_file "$i $(stat -c '%s %Y' "$f") $(basename "$f")"
    say log_head "$i $(head -c "$3" "$f" | b64)"
    if [ "$(basename "$f")" = "$current" ]; then say log_tail "$i $(tail -c "$3" "$f" | b64)"; fi
done
say df "$(df -Pk "$dir" | tail -n 1)"
"""


@dataclass(frozen=True)
class NodeFacts:
    policy_sha256: str | None  # None: no such file
    policy: bytes | None  # None: absent or too large to be a policy
    log_dir_exists: bool
    samples: tuple[LogSample, ...]
    free_bytes: int | None
    manifest: bytes | None = None  # None: absent, too large, or not asked for


def read_node_facts(
    shell: NodeShell,
    policy_path: str,
    log_path: str,
    *,
    manifest_path: str = "",
    timeout: float = 60.0,
) -> NodeFacts:
    """Run the facts script on the node and parse its answer."""
    script = FACTS_SCRIPT.encode()
    argv = [
        "sh",
        "-c",
        'exec sh -c "$(head -c "$0")" kubectl-audit-facts "$@"',
        str(len(script)),
        policy_path,
        log_path,
        str(SAMPLE_BYTES),
        str(POLICY_LIMIT),
        manifest_path,
    ]
    result = shell.run(argv, timeout=timeout, stdin=script)
    if not result.ok:
        message = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.exit_code}"
        raise NodeError(f"reading the audit files on {shell.node} failed: {message}")
    return parse_facts(result.stdout, log_path)


def parse_facts(stdout: bytes, log_path: str) -> NodeFacts:
    reply = parse_reply(stdout)
    sha = (reply.get("policy_sha256") or ["absent"])[0]
    policy_b64 = (reply.get("policy_b64") or [None])[0]
    heads = _indexed(reply.get("log_head", []))
    tails = _indexed(reply.get("log_tail", []))
    samples = []
    for line in reply.get("log_file", []):
        index, size, mtime, name = line.split(" ", 3)
        if not belongs_to_log(name, log_path):
            continue
        samples.append(
            LogSample(
                name,
                int(size),
                datetime.fromtimestamp(int(mtime), timezone.utc),
                base64.b64decode(heads.get(index, "")),
                base64.b64decode(tails.get(index, "")),
            )
        )
    return NodeFacts(
        policy_sha256=None if sha == "absent" else sha,
        policy=None if policy_b64 is None else base64.b64decode(policy_b64),
        log_dir_exists=(reply.get("log_dir") or ["absent"])[0] == "present",
        samples=tuple(samples),
        free_bytes=_df_available((reply.get("df") or [""])[0]),
        manifest=_decoded(reply.get("manifest_b64")),
    )


def _decoded(values: list[str] | None) -> bytes | None:
    return base64.b64decode(values[0]) if values else None


def _indexed(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        index, _, data = value.partition(" ")
        out[index] = data
    return out


def _df_available(line: str) -> int | None:
    """`df -Pk` data line: Filesystem 1024-blocks Used Available Capacity Mounted-on."""
    fields = line.split()  # counted from the right: a file system name may hold spaces
    if len(fields) < 6 or not fields[-3].isdigit():
        return None
    return int(fields[-3]) * 1024
