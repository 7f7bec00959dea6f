"""`crictl` and `systemctl` for the node roots: busybox sh scripts that ask the simulated kubelet.

On a real node these binaries talk to containerd's socket and to systemd over D-Bus. In the
simulator both are answered by the node's kubelet model (B's cri.py) over loopback HTTP:
the script POSTs its arguments to `{kubelet_url}/crictl` (or `/systemctl`) with busybox
`wget` and reproduces the reply's stdout, stderr and exit code byte for byte.

Wire format (both directions binary-safe, producible and parsable with busybox tools only):
- request body: the arguments as a JSON array of strings, written by busybox awk from its
  ARGV (only `"`, `\\` and control characters are escaped; every other byte is copied, so
  non-UTF-8 bytes survive and read back as surrogate escapes), sent with --post-data.
  (Not NUL-separated: busybox wget posts C strings, a NUL would end the body.)
- reply body: an ASCII header line `<exit code> <stdout length> <stderr length>\\n`, then
  exactly that many stdout bytes, then the stderr bytes (split off the pipe with sh `read`
  and `dd iflag=count_bytes,fullblock`, which never read past what they are asked for).

If the kubelet endpoint cannot be reached (or answers garbage), the stand-in fails as the
real tool does when its daemon is down: crictl's fatal "validate service connection" line,
systemctl's "Failed to connect to bus", exit code 1.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

CRICTL_PATH = "usr/local/bin/crictl"
SYSTEMCTL_PATH = "usr/bin/systemctl"
REQUEST_TIMEOUT_SECONDS = 60

# What the real tools print when their daemon is unreachable (crictl via logrus).
_CRICTL_DOWN = 'printf \'time="%s" %s\\n\' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" ' + shlex.quote(
    'level=fatal msg="validate service connection: validate CRI v1 runtime API for '
    'endpoint \\"unix:///run/containerd/containerd.sock\\": rpc error: code = Unavailable '
    'desc = connection error: desc = \\"transport: Error while dialing: dial unix '
    '/run/containerd/containerd.sock: connect: connection refused\\""'
)
_SYSTEMCTL_DOWN = "printf '%s\\n' " + shlex.quote("Failed to connect to bus: Connection refused")

# One template for both tools; {url} and {down} are filled in, everything else is literal sh.
_SCRIPT = r"""#!/bin/sh
# {tool} stand-in of the kubesim cluster simulator (tests/kubesim/standins.py):
# forwards its arguments to the simulated kubelet and reproduces its answer.
# No temporary files: it must work on a read-only root too, as the real binary does.
url='{url}'
down() {{
    {down} >&2
    exit 1
}}
args=$(awk 'BEGIN {{
    for (n = 1; n < 32; n++) esc[sprintf("%c", n)] = sprintf("\\u%04x", n)
    esc["\""] = "\\\""
    esc["\\"] = "\\\\"
    printf "["
    for (i = 1; i < ARGC; i++) {{
        s = ARGV[i]
        out = ""
        for (j = 1; j <= length(s); j++) {{
            c = substr(s, j, 1)
            out = out ((c in esc) ? esc[c] : c)
        }}
        printf "%s\"%s\"", (i > 1 ? "," : ""), out
    }}
    printf "]"
}}' "$@") || exit 1
timeout {timeout} wget -q -Y off -O - --header 'Content-Type: application/json' \
    --post-data "$args" "$url" 2>/dev/null | {{
    IFS= read -r header || down
    case "$header" in
        '' | *[!0-9\ ]*) down ;;
    esac
    set -- $header
    [ $# -eq 3 ] || down
    # dd with count_bytes+fullblock reads exactly that many bytes off the pipe.
    dd bs=65536 count="$2" iflag=count_bytes,fullblock status=none
    dd bs=65536 count="$3" iflag=count_bytes,fullblock status=none >&2
    exit "$1"
}}
"""

_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/%-]*)?$")


def standin_script(tool: str, kubelet_url: str) -> str:
    """The sh script for `tool` ("crictl" or "systemctl") talking to `kubelet_url`."""
    if tool not in ("crictl", "systemctl"):
        raise ValueError(f"no stand-in for {tool!r}")
    base = kubelet_url.rstrip("/")
    if not _URL.match(base):
        raise ValueError(f"kubelet URL {kubelet_url!r} is not a plain http(s) URL")
    down = _CRICTL_DOWN if tool == "crictl" else _SYSTEMCTL_DOWN
    return _SCRIPT.format(
        tool=tool, url=f"{base}/{tool}", down=down, timeout=REQUEST_TIMEOUT_SECONDS
    )


def install_standins(node_root: Path, kubelet_url: str) -> None:
    """Write <root>/usr/local/bin/crictl and <root>/usr/bin/systemctl (mode 0755)."""
    for tool, rel in (("crictl", CRICTL_PATH), ("systemctl", SYSTEMCTL_PATH)):
        path = Path(node_root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()  # a hard link to busybox (or an old stand-in): never write through
        path.write_text(standin_script(tool, kubelet_url))
        path.chmod(0o755)


def encode_args(args: list[str]) -> bytes:
    """A request body for `args`, as the scripts send it."""
    return json.dumps(args, ensure_ascii=False).encode("utf-8", "surrogateescape")


def decode_args(body: bytes) -> list[str]:
    """The arguments of a stand-in request (non-UTF-8 bytes kept as surrogate escapes)."""
    try:
        args = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise ValueError(f"stand-in request body is not a JSON array: {exc}") from exc
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("stand-in request body must be a JSON array of strings")
    return args


def encode_reply(exit_code: int, stdout: bytes, stderr: bytes) -> bytes:
    """The reply body that makes a stand-in print `stdout`, `stderr` and exit `exit_code`."""
    if not 0 <= exit_code <= 255:
        raise ValueError(f"exit code {exit_code} is outside 0..255")
    return f"{exit_code} {len(stdout)} {len(stderr)}\n".encode() + stdout + stderr


def decode_reply(body: bytes) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of a reply body; the inverse of encode_reply."""
    header, sep, rest = body.partition(b"\n")
    fields = header.split(b" ")
    if not sep or len(fields) != 3 or not all(f.isdigit() for f in fields):
        raise ValueError("malformed stand-in reply header")
    code, out_len, err_len = (int(f) for f in fields)
    if len(rest) != out_len + err_len:
        raise ValueError("stand-in reply length does not match its header")
    return code, rest[:out_len], rest[out_len:]
