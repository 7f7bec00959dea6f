"""Container records and the ``crictl`` / ``systemctl`` commands over them.

Output shapes follow crictl (kubernetes-sigs/cri-tools ``cmd/crictl/container.go``): the
``ps`` table is a tabwriter with min width 20 and padding 3, IDs truncated to 13
characters, CREATED as a human duration ("2 seconds ago"); ``-o json`` prints the CRI
``ListContainersResponse`` (``createdAt`` in nanoseconds as a string); ``inspect`` prints
``{"status": ..., "info": ...}`` with RFC 3339 timestamps; ``logs`` prints the container's
output with stdout/stderr kept apart.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

RUNNING = "CONTAINER_RUNNING"
EXITED = "CONTAINER_EXITED"
CREATED = "CONTAINER_CREATED"
_STATE_WORDS = {
    RUNNING: "Running",
    EXITED: "Exited",
    CREATED: "Created",
    "CONTAINER_UNKNOWN": "Unknown",
}


def new_id() -> str:
    return secrets.token_hex(32)


def rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return "1970-01-01T00:00:00Z"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LogLine:
    time: datetime
    stream: str  # "stdout" | "stderr"
    text: str

    def cri_format(self) -> str:
        """The line as the container runtime stores it under /var/log/pods."""
        stamp = self.time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        return f"{stamp} {self.stream} F {self.text}\n"


@dataclass
class ContainerRecord:
    id: str
    name: str
    attempt: int
    pod_name: str
    pod_namespace: str
    pod_uid: str
    sandbox_id: str
    image: str
    image_ref: str
    created_at: datetime
    state: str = CREATED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log: list[LogLine] = field(default_factory=list)
    log_path: str = ""  # node path, e.g. /var/log/pods/<ns>_<pod>_<uid>/<name>/<attempt>.log
    mounts: list[dict] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "io.kubernetes.container.name": self.name,
            "io.kubernetes.pod.name": self.pod_name,
            "io.kubernetes.pod.namespace": self.pod_namespace,
            "io.kubernetes.pod.uid": self.pod_uid,
        }

    @property
    def annotations(self) -> dict[str, str]:
        return {
            "io.kubernetes.container.restartCount": str(self.attempt),
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.container.terminationMessagePolicy": "File",
            "io.kubernetes.pod.terminationGracePeriod": "30",
        }

    def start(self, moment: datetime) -> None:
        self.state = RUNNING
        self.started_at = moment

    def exit(self, moment: datetime, code: int, reason: str, message: str = "") -> None:
        self.state = EXITED
        self.finished_at = moment
        self.exit_code = code
        self.reason = reason
        self.message = message


class CrictlUsageError(Exception):
    pass


def _ago(moment: datetime, now: datetime) -> str:
    """Docker's units.HumanDuration + " ago", as crictl prints CREATED."""
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 1:
        return "Less than a second ago"
    if seconds == 1:
        return "1 second ago"
    if seconds < 60:
        return f"{seconds} seconds ago"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute ago"
    if minutes < 60:
        return f"{minutes} minutes ago"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{hours} hours ago"
    return f"{hours // 24} days ago"


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Go tabwriter(minwidth=20, tabwidth=1, padding=3, ' ')."""
    widths = [max(20, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("".join(cells))
    return "\n".join(lines) + "\n"


def _image_id(record: ContainerRecord) -> str:
    return record.image_ref.removeprefix("sha256:")[:13]


def _find(records: Sequence[ContainerRecord], prefix: str) -> ContainerRecord:
    matches = [r for r in records if r.id.startswith(prefix)]
    problem = "not found" if not prefix or not matches else "ambiguous" if len(matches) > 1 else ""
    if problem:
        raise LookupError(
            "rpc error: code = NotFound desc = an error occurred when try to find container "
            f'"{prefix}": {problem}'
        )
    return matches[0]


def _list_json(records: Sequence[ContainerRecord]) -> str:
    items = [
        {
            "id": r.id,
            "podSandboxId": r.sandbox_id,
            "metadata": {"name": r.name, "attempt": r.attempt},
            "image": {"image": r.image_ref, "annotations": {}, "userSpecifiedImage": r.image},
            "imageRef": r.image_ref,
            "state": r.state,
            "createdAt": str(int(r.created_at.timestamp() * 1e9)),
            "labels": r.labels,
            "annotations": r.annotations,
        }
        for r in records
    ]
    return json.dumps({"containers": items}, indent=2) + "\n"


def _inspect_json(record: ContainerRecord) -> str:
    status = {
        "id": record.id,
        "metadata": {"attempt": record.attempt, "name": record.name},
        "state": record.state,
        "createdAt": rfc3339(record.created_at),
        "startedAt": rfc3339(record.started_at),
        "finishedAt": rfc3339(record.finished_at),
        "exitCode": record.exit_code,
        "image": {"annotations": {}, "image": record.image, "userSpecifiedImage": record.image},
        "imageRef": record.image_ref,
        "reason": record.reason,
        "message": record.message,
        "labels": record.labels,
        "annotations": record.annotations,
        "mounts": record.mounts,
        "logPath": record.log_path,
    }
    info = {
        "sandboxID": record.sandbox_id,
        "pid": 0 if record.state != RUNNING else 1,
        "removing": False,
        "snapshotter": "overlayfs",
        "runtimeType": "io.containerd.runc.v2",
        "config": {
            "metadata": {"name": record.name, "attempt": record.attempt},
            "image": {"image": record.image_ref, "user_specified_image": record.image},
            "labels": record.labels,
            "annotations": record.annotations,
            "log_path": f"{record.name}/{record.attempt}.log",
        },
    }
    return json.dumps({"status": status, "info": info}, indent=2) + "\n"


@dataclass(frozen=True)
class PsOptions:
    all: bool = False
    name: str | None = None
    state: str | None = None
    output: str = "table"
    quiet: bool = False
    pod: str | None = None
    latest: bool = False
    last: int = 0
    no_trunc: bool = False
    labels: tuple[str, ...] = ()
    namespace: str | None = None


def _parse_ps(args: Sequence[str]) -> PsOptions:
    opts: dict = {}
    i = 0
    takes_value = {
        "--namespace": "namespace",
        "--name": "name",
        "--state": "state",
        "-s": "state",
        "-o": "output",
        "--output": "output",
        "-p": "pod",
        "--pod": "pod",
        "-n": "last",
        "--last": "last",
    }
    while i < len(args):
        arg = args[i]
        key, eq, inline = arg.partition("=")
        if key in takes_value:
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(args):
                    raise CrictlUsageError(f"flag needs an argument: {arg}")
                value = args[i]
            opts[takes_value[key]] = int(value) if takes_value[key] == "last" else value
        elif key == "--label":
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(args):
                    raise CrictlUsageError("flag needs an argument: --label")
                value = args[i]
            opts["labels"] = (*opts.get("labels", ()), value)
        elif arg in ("-a", "--all"):
            opts["all"] = True
        elif arg in ("-q", "--quiet"):
            opts["quiet"] = True
        elif arg in ("-l", "--latest"):
            opts["latest"] = True
        elif arg == "--no-trunc":
            opts["no_trunc"] = True
        elif arg in ("-v", "--verbose"):
            pass
        else:
            raise CrictlUsageError(f"flag provided but not defined: {arg}")
        i += 1
    return PsOptions(**opts)


def crictl_ps(records: Sequence[ContainerRecord], args: Sequence[str], now: datetime) -> str:
    opts = _parse_ps(args)
    chosen = list(records)
    if opts.state:
        if opts.state.lower() not in ("created", "running", "exited", "unknown"):
            raise CrictlUsageError("--state should be one of created, running, exited or unknown")
        wanted = "CONTAINER_" + opts.state.upper()
        chosen = [r for r in chosen if r.state == wanted]
    elif not opts.all and not opts.latest and not opts.last:
        chosen = [r for r in chosen if r.state == RUNNING]
    if opts.name:
        pattern = re.compile(opts.name)
        chosen = [r for r in chosen if pattern.search(r.name)]
    if opts.namespace:
        namespace = re.compile(opts.namespace)
        chosen = [r for r in chosen if namespace.search(r.pod_namespace)]
    if opts.pod:
        chosen = [r for r in chosen if r.sandbox_id.startswith(opts.pod)]
    for selector in opts.labels:
        key, _, value = selector.partition("=")
        chosen = [r for r in chosen if r.labels.get(key) == value]
    chosen.sort(key=lambda r: r.created_at, reverse=True)
    if opts.latest:
        chosen = chosen[:1]
    elif opts.last:
        chosen = chosen[: opts.last]
    if opts.output == "json":
        return _list_json(chosen)
    if opts.output == "yaml":
        return yaml.safe_dump(json.loads(_list_json(chosen)), sort_keys=False)
    if opts.output != "table":
        raise CrictlUsageError(f"unsupported output format {opts.output!r}")
    if opts.quiet:
        return "".join(r.id + "\n" for r in chosen)
    header = ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]
    rows = [[*header, "NAMESPACE"]]
    for r in chosen:
        rows.append(
            [
                r.id if opts.no_trunc else r.id[:13],
                _image_id(r),
                _ago(r.created_at, now),
                _STATE_WORDS.get(r.state, "Unknown"),
                r.name,
                str(r.attempt),
                r.sandbox_id if opts.no_trunc else r.sandbox_id[:13],
                r.pod_name,
                r.pod_namespace,
            ]
        )
    return _table(rows)


def crictl_logs(records: Sequence[ContainerRecord], args: Sequence[str]) -> tuple[str, str]:
    """``crictl logs [--tail N] [-t] [-p] ID``: stdout and stderr kept apart."""
    tail = -1
    container = None
    timestamps = previous = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--tail"):
            if "=" in arg:
                tail = int(arg.split("=", 1)[1])
            else:
                i += 1
                if i >= len(args):
                    raise CrictlUsageError("flag needs an argument: --tail")
                tail = int(args[i])
        elif arg in ("-t", "--timestamps"):
            timestamps = True
        elif arg in ("-p", "--previous"):
            previous = True
        elif arg in ("-f", "--follow"):
            pass  # the log is complete when we answer; following is not modelled
        elif arg.startswith("-"):
            raise CrictlUsageError(f"flag provided but not defined: {arg}")
        else:
            container = arg
        i += 1
    if container is None:
        raise CrictlUsageError("ID cannot be empty")
    record = _find(records, container)
    if previous:
        earlier = [
            r
            for r in records
            if r.pod_uid == record.pod_uid and r.name == record.name and r.attempt < record.attempt
        ]
        if not earlier:
            raise LookupError(f"no previous log for container {container}")
        record = max(earlier, key=lambda r: r.attempt)
    lines = record.log if tail < 0 else record.log[len(record.log) - tail :] if tail else []

    def render(line: LogLine) -> str:
        prefix = rfc3339(line.time) + " " if timestamps else ""
        return prefix + line.text + "\n"

    out = "".join(render(line) for line in lines if line.stream == "stdout")
    err = "".join(render(line) for line in lines if line.stream == "stderr")
    return out, err


_GLOBAL_WITH_VALUE = frozenset(
    {"-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout", "-c", "--config"}
)


def _strip_global_options(argv: Sequence[str]) -> list[str]:
    """crictl's global flags come before the command; none changes what we answer."""
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in _GLOBAL_WITH_VALUE and args:
            args.pop(0)
    return args


def _fatal(now: datetime, message: str) -> bytes:
    """crictl dies through logrus: ``time="..." level=fatal msg="..."`` (msg Go-quoted)."""
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'time="{stamp}" level=fatal msg={json.dumps(message)}\n'.encode()


def run_crictl(
    records: Sequence[ContainerRecord], argv: Sequence[str], now: datetime | None = None
) -> tuple[int, bytes, bytes]:
    """``crictl <argv>`` -> (exit code, stdout, stderr)."""
    now = now or datetime.now(timezone.utc)
    args = _strip_global_options(argv)
    if not args:
        return 1, b"", b"crictl: missing command\n"
    command, rest = args[0], list(args[1:])
    try:
        if command == "ps":
            return 0, crictl_ps(records, rest, now).encode(), b""
        if command == "logs":
            out, err = crictl_logs(records, rest)
            return 0, out.encode(), err.encode()
        if command == "inspect":
            ids = [a for a in rest if not a.startswith("-")]
            if not ids:
                raise CrictlUsageError("ID cannot be empty")
            return 0, "".join(_inspect_json(_find(records, i)) for i in ids).encode(), b""
        if command == "pods":
            seen: dict[str, ContainerRecord] = {}
            for r in sorted(records, key=lambda r: r.created_at, reverse=True):
                seen.setdefault(r.sandbox_id, r)
            rows = [["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"]]
            for r in seen.values():
                ready = any(x.state == RUNNING for x in records if x.sandbox_id == r.sandbox_id)
                rows.append(
                    [
                        r.sandbox_id[:13],
                        _ago(r.created_at, now),
                        "Ready" if ready else "NotReady",
                        r.pod_name,
                        r.pod_namespace,
                        "0",
                        "(default)",
                    ]
                )
            return 0, _table(rows).encode(), b""
    except (CrictlUsageError, ValueError) as exc:
        return 1, b"", _fatal(now, str(exc))
    except LookupError as exc:
        return 1, b"", _fatal(now, str(exc.args[0]))
    return 1, b"", f"No help topic for '{command}'\n".encode()


def run_systemctl(
    argv: Sequence[str],
    *,
    active: bool,
    restart: Callable[[], None],
    journal: Sequence[str] = (),
) -> tuple[int, bytes, bytes]:
    """``systemctl restart|is-active|status kubelet``; other units are not modelled."""
    args = [a for a in argv if not a.startswith("-")]
    quiet = "-q" in argv or "--quiet" in argv
    if len(args) < 2:
        return 1, b"", b"Too few arguments.\n"
    verb, units = args[0], [u.removesuffix(".service") for u in args[1:]]
    if any(unit != "kubelet" for unit in units):
        bad = next(u for u in units if u != "kubelet")
        return 5, b"", f"Failed to {verb} {bad}.service: Unit {bad}.service not found.\n".encode()
    if verb in ("restart", "start", "try-restart", "reload-or-restart"):
        restart()
        return 0, b"", b""
    if verb == "is-active":
        word = "active" if active else "failed"
        return (0 if active else 3), (b"" if quiet else (word + "\n").encode()), b""
    if verb == "status":
        state = "active (running)" if active else "failed (Result: exit-code)"
        text = (
            "● kubelet.service - kubelet: The Kubernetes Node Agent\n"
            "     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled; preset: enabled)\n"
            f"     Active: {state}\n"
        )
        if journal:
            text += "\n" + "".join(line + "\n" for line in journal)
        return (0 if active else 3), text.encode(), b""
    return 1, b"", f"Unknown command verb {verb}.\n".encode()


def write_pod_log(root: Path, record: ContainerRecord, line: LogLine) -> None:
    """Append to the CRI log file under the node's /var/log/pods."""
    if not record.log_path:
        return
    target = root / record.log_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(line.cri_format())
