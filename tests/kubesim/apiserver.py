"""Would the real kube-apiserver start with this static-pod manifest on this node?

Order of checks, as the real components do them:
1. the kubelet sets up hostPath volumes (type checks; ``DirectoryOrCreate``/``FileOrCreate``
   create) - a failure keeps the container from ever being created (ContainerCreating);
2. cobra/pflag parse the flags (``Error: unknown flag``, ``Error: invalid argument``);
3. options validation (spec §6.2, only with a non-empty ``--audit-log-path``), errors
   aggregated (``k8s.io/apimachinery/pkg/util/errors.NewAggregate``);
4. ``Audit.ApplyTo``: load the policy (``loading audit policy file: ...``), then
   ``ensureLogFile`` (MkdirAll 0700 + open 0600) for the log backend
   (kubernetes/apiserver ``pkg/server/options/audit.go``).
Paths are seen from inside the container: a path not under any volumeMount is in the
container's own file system, where the policy does not exist and where the log vanishes.

The running apiserver then turns served requests into audit events (``AuditSink``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.kubesim import auditlog, policyreader

log = logging.getLogger(__name__)

# Flags of pkg/server/options/audit.go (log + webhook backends) and their value types.
_AUDIT_FLAGS: dict[str, str] = {
    "audit-policy-file": "string",
    "audit-log-path": "string",
    "audit-log-maxage": "int",
    "audit-log-maxbackup": "int",
    "audit-log-maxsize": "int",
    "audit-log-format": "string",
    "audit-log-version": "string",
    "audit-log-compress": "bool",
    "audit-log-mode": "string",
    "audit-log-batch-buffer-size": "int",
    "audit-log-batch-max-size": "int",
    "audit-log-batch-max-wait": "duration",
    "audit-log-batch-throttle-enable": "bool",
    "audit-log-batch-throttle-qps": "float",
    "audit-log-batch-throttle-burst": "int",
    "audit-log-truncate-enabled": "bool",
    "audit-log-truncate-max-batch-size": "int",
    "audit-log-truncate-max-event-size": "int",
    "audit-webhook-config-file": "string",
    "audit-webhook-initial-backoff": "duration",
    "audit-webhook-batch-initial-backoff": "duration",
    "audit-webhook-version": "string",
    "audit-webhook-mode": "string",
    "audit-webhook-batch-buffer-size": "int",
    "audit-webhook-batch-max-size": "int",
    "audit-webhook-batch-max-wait": "duration",
    "audit-webhook-batch-throttle-enable": "bool",
    "audit-webhook-batch-throttle-qps": "float",
    "audit-webhook-batch-throttle-burst": "int",
    "audit-webhook-truncate-enabled": "bool",
    "audit-webhook-truncate-max-batch-size": "int",
    "audit-webhook-truncate-max-event-size": "int",
}
_BOOL_WORDS = {
    "1": True,
    "t": True,
    "T": True,
    "true": True,
    "TRUE": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "false": False,
    "FALSE": False,
    "False": False,
}
_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$")


class ApiserverWontStart(Exception):
    """The container starts and exits 1; ``log`` holds its stderr lines."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


class VolumeSetupFailed(Exception):
    """The kubelet cannot set up a volume: the container is never created."""


@dataclass(frozen=True)
class Mounted:
    """A volumeMount resolved to a hostPath on the node (host path is absolute on the node)."""

    mount_path: str
    host_path: str
    read_only: bool


@dataclass
class AuditSink:
    """Where a running apiserver's audit events go."""

    policy: policyreader.Policy | None
    log_path: str  # "" = no log backend, "-" = stdout (the container log)
    node_file: Path | None  # the file on the node; None = inside the container (lost)
    format: str = "json"
    writer: auditlog.LumberjackWriter | None = None
    lost: int = 0
    written: int = 0
    to_stdout: list[str] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.policy is not None and self.log_path != ""


@dataclass(frozen=True)
class Started:
    sink: AuditSink
    log: list[str]
    version: str


# ---------------------------------------------------------------- klog-style lines


def klog_line(
    severity: str, source: str, message: str, moment: datetime | None = None, pid: int = 1
) -> str:
    """klog's header: ``Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg``."""
    now = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{severity}{now:%m%d %H:%M:%S.%f} {pid:7d} {source}] {message}"


def go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def command_failed(err: str) -> str:
    return klog_line("E", "run.go:74", f'"command failed" err={go_quote(err)}')


# ---------------------------------------------------------------- manifest helpers


def apiserver_container(pod: dict) -> dict:
    for container in pod.get("spec", {}).get("containers") or []:
        if container.get("name") == "kube-apiserver":
            return container
    return (pod.get("spec", {}).get("containers") or [{}])[0]


def image_version(image: str) -> tuple[int, int]:
    match = re.search(r":v(\d+)\.(\d+)", image or "")
    return (int(match.group(1)), int(match.group(2))) if match else (1, 36)


def parse_flags(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--k=v`` / ``--k v`` / ``--bool`` -> {k: v}; the last occurrence wins (pflag)."""
    flags: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = str(argv[i])
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            if not eq:
                kind = _AUDIT_FLAGS.get(name)
                if kind == "bool" or (
                    kind is None and (i + 1 >= len(argv) or str(argv[i + 1]).startswith("-"))
                ):
                    value = "true"
                else:
                    i += 1
                    value = str(argv[i]) if i < len(argv) else ""
            flags[name] = value
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def resolve_mounts(pod: dict, container: dict) -> list[Mounted]:
    volumes = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    mounted = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) or {}
        host = (volume.get("hostPath") or {}).get("path")
        if host and mount.get("mountPath"):
            mounted.append(
                Mounted(
                    str(mount["mountPath"]).rstrip("/") or "/",
                    str(host),
                    bool(mount.get("readOnly")),
                )
            )
    return mounted


def host_path_for(path: str, mounts: list[Mounted]) -> tuple[str, Mounted] | None:
    """The node path behind a container path: the deepest mount containing it wins."""
    best: Mounted | None = None
    for mount in mounts:
        prefix = mount.mount_path
        inside = path == prefix or path.startswith(prefix.rstrip("/") + "/")
        if inside and (best is None or len(prefix) > len(best.mount_path)):
            best = mount
    if best is None:
        return None
    rest = path[len(best.mount_path) :].lstrip("/")
    host = best.host_path.rstrip("/") + ("/" + rest if rest else "")
    return host or "/", best


def on_node(root: Path, host_path: str) -> Path:
    return root / host_path.lstrip("/")


def setup_host_volumes(pod: dict, root: Path) -> None:
    """The kubelet's hostPath type checks (pkg/volume/hostpath); may create dirs/files."""
    for volume in pod.get("spec", {}).get("volumes") or []:
        spec = volume.get("hostPath")
        if not spec or not spec.get("path"):
            continue
        path = str(spec["path"])
        kind = spec.get("type") or ""
        target = on_node(root, path)
        prefix = (
            f'MountVolume.SetUp failed for volume "{volume.get("name")}" : '
            "hostPath type check failed: "
        )
        if kind == "DirectoryOrCreate":
            if target.exists() and not target.is_dir():
                raise VolumeSetupFailed(f"{prefix}{path} is not a directory")
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind == "Directory":
            if not target.is_dir():
                raise VolumeSetupFailed(f"{prefix}{path} is not a directory")
        elif kind == "FileOrCreate":
            if not target.exists():
                if not target.parent.is_dir():
                    raise VolumeSetupFailed(f"{prefix}open {path}: no such file or directory")
                target.touch(mode=0o644)
            elif not target.is_file():
                raise VolumeSetupFailed(f"{prefix}{path} is not a file")
        elif kind == "File":
            if not target.is_file():
                raise VolumeSetupFailed(f"{prefix}{path} is not a file")
        elif kind == "" and not target.exists():
            # No check; the container runtime creates a missing source as a directory.
            target.mkdir(mode=0o755, parents=True, exist_ok=True)


# ---------------------------------------------------------------- flags


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value, 0) if value.lower().startswith(("0x", "0o", "0b")) else int(value)
    except ValueError:
        raise ApiserverWontStart(
            f'invalid argument "{value}" for "--{name}" flag: strconv.ParseInt: parsing '
            f'"{value}": invalid syntax',
            [],
        ) from None


def _flag_errors(flags: dict[str, str]) -> None:
    """pflag parse errors: unknown audit flag names and badly typed values."""
    for name, value in flags.items():
        if name.startswith("audit-") and name not in _AUDIT_FLAGS:
            raise ApiserverWontStart(f"unknown flag: --{name}", [])
        kind = _AUDIT_FLAGS.get(name)
        if kind == "int":
            _parse_int(name, value)
        elif kind == "bool" and value not in _BOOL_WORDS:
            raise ApiserverWontStart(
                f'invalid argument "{value}" for "--{name}" flag: strconv.ParseBool: parsing '
                f'"{value}": invalid syntax',
                [],
            )
        elif kind == "float":
            try:
                float(value)
            except ValueError:
                raise ApiserverWontStart(
                    f'invalid argument "{value}" for "--{name}" flag: strconv.ParseFloat: '
                    f'parsing "{value}": invalid syntax',
                    [],
                ) from None
        elif kind == "duration" and not _DURATION.match(value):
            raise ApiserverWontStart(
                f'invalid argument "{value}" for "--{name}" flag: time: invalid duration "{value}"',
                [],
            )


def _int(flags: dict[str, str], name: str, default: int) -> int:
    return _parse_int(name, flags[name]) if name in flags else default


def validate_log_options(flags: dict[str, str]) -> list[str]:
    """Spec §6.2, in its order; nothing is checked without --audit-log-path."""
    if not flags.get("audit-log-path"):
        return []
    errors: list[str] = []
    mode = flags.get("audit-log-mode", "blocking")
    if mode not in ("batch", "blocking", "blocking-strict"):
        errors.append(
            f'invalid audit log mode {mode}, allowed modes are "batch,blocking,blocking-strict"'
        )
    elif mode == "batch":
        buffer_size = _int(flags, "audit-log-batch-buffer-size", 10000)
        max_size = _int(flags, "audit-log-batch-max-size", 1)
        throttle = _BOOL_WORDS.get(flags.get("audit-log-batch-throttle-enable", "false"), False)
        qps = float(flags.get("audit-log-batch-throttle-qps", "0"))
        burst = _int(flags, "audit-log-batch-throttle-burst", 0)
        if buffer_size <= 0:
            errors.append(
                f"invalid audit batch log buffer size {buffer_size}, must be a positive number"
            )
        elif max_size <= 0:
            errors.append(
                f"invalid audit batch log max batch size {max_size}, must be a positive number"
            )
        elif throttle and qps <= 0:
            errors.append(
                f"invalid audit batch log throttle QPS {qps:g}, must be a positive number"
            )
        elif throttle and burst <= 0:
            errors.append(
                f"invalid audit batch log throttle burst {burst}, must be a positive number"
            )
    event_size = _int(flags, "audit-log-truncate-max-event-size", 102400)
    batch_size = _int(flags, "audit-log-truncate-max-batch-size", 10485760)
    if event_size <= 0:
        errors.append(
            f"invalid audit truncate log max event size {event_size}, must be a positive number"
        )
    elif batch_size < event_size:
        errors.append(
            f"invalid audit truncate log max batch size {batch_size}, must be greater than max "
            f"event size ({event_size})"
        )
    version = flags.get("audit-log-version", "audit.k8s.io/v1")
    if version.count("/") > 1:
        errors.append(f"unexpected GroupVersion string: {version}")
    elif version != "audit.k8s.io/v1":
        errors.append('invalid group version, allowed versions are ["audit.k8s.io/v1"]')
    log_format = flags.get("audit-log-format", "json")
    if log_format not in ("json", "legacy"):
        errors.append(f'invalid audit log format {log_format}, allowed formats are "legacy,json"')
    for name in ("maxage", "maxbackup", "maxsize"):
        value = _int(flags, f"audit-log-{name}", 0)
        if value < 0:
            errors.append(f"--audit-log-{name} {value} can't be a negative number")
    return errors


def rotation_config(
    flags: dict[str, str], version: tuple[int, int], bytes_per_mb: int
) -> auditlog.RotationConfig:
    """Defaults changed in 1.36 (100/366/100; maxsize 0 = no rotation); before, 0/0/0 and
    lumberjack read maxsize 0 as its own 100 MiB (spec §6.1)."""
    new = version >= (1, 36)
    maxsize = _int(flags, "audit-log-maxsize", 100 if new else 0)
    if maxsize == 0 and not new:
        maxsize = 100
    return auditlog.RotationConfig(
        max_bytes=maxsize * bytes_per_mb,
        max_backups=_int(flags, "audit-log-maxbackup", 100 if new else 0),
        max_age_days=_int(flags, "audit-log-maxage", 366 if new else 0),
        compress=_BOOL_WORDS.get(flags.get("audit-log-compress", "false"), False),
    )


# ---------------------------------------------------------------- start


def _read_policy(path: str, mounts: list[Mounted], root: Path) -> policyreader.Policy:
    resolved = host_path_for(path, mounts)
    data: bytes | None = None
    error: str | None = None
    if resolved is None:
        error = f"open {path}: no such file or directory"
    else:
        target = on_node(root, resolved[0])
        if target.is_dir():
            error = f"read {path}: is a directory"
        elif not target.exists():
            error = f"open {path}: no such file or directory"
        else:
            data = target.read_bytes()
    return policyreader.load_policy_file(data, path, error)


# Flags naming files the apiserver reads at startup, and how its error starts when the file
# is not there (the serving cert/key and CA loaders report the bare open error).
_FILE_FLAGS: dict[str, str] = {
    "tls-cert-file": "",
    "tls-private-key-file": "",
    "client-ca-file": "",
    "requestheader-client-ca-file": "",
    "service-account-key-file": "",
    "service-account-signing-key-file": "",
    "etcd-cafile": "",
    "etcd-certfile": "",
    "etcd-keyfile": "",
    "kubelet-client-certificate": "",
    "kubelet-client-key": "",
    "proxy-client-cert-file": "",
    "proxy-client-key-file": "",
    "encryption-provider-config": "error while parsing file: error reading encryption provider "
    'configuration file "{path}": ',
    "admission-control-config-file": "failed to read plugin config: ",
    "audit-webhook-config-file": "initializing audit webhook: ",
    "tracing-config-file": "failed to read tracing config file: ",
}


def _check_file_flags(flags: dict[str, str], mounts: list[Mounted], root: Path) -> None:
    """Every file flag must name a file the container can see through a hostPath mount."""
    for name, prefix in _FILE_FLAGS.items():
        path = flags.get(name)
        if not path:
            continue
        resolved = host_path_for(path, mounts)
        if resolved is None or not on_node(root, resolved[0]).exists():
            error = f"open {path}: no such file or directory"
            raise ApiserverWontStart(prefix.format(path=path) + error, [])


def _ensure_log_file(path: str, mounts: list[Mounted], root: Path) -> Path | None:
    """ensureLogFile: MkdirAll(dir, 0700) + open(path, O_CREATE|O_APPEND, 0600)."""
    resolved = host_path_for(path, mounts)
    if resolved is None:
        return None  # created in the container's own file system: the events are lost
    host, mount = resolved
    target = on_node(root, host)
    if mount.read_only:
        missing = not target.parent.is_dir()
        op = "mkdir " + os.path.dirname(path) if missing else "open " + path
        raise ApiserverWontStart(f"ensureLogFile: {op}: read-only file system", [])
    if target.is_dir():
        raise ApiserverWontStart(f"ensureLogFile: open {path}: is a directory", [])
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_CREAT | os.O_APPEND | os.O_RDWR, 0o600)
    os.close(fd)
    return target


def _log_is_its_own_mount(path: str, mounts: list[Mounted]) -> bool:
    """A log mounted as a single file cannot be renamed inside the container (EBUSY)."""
    resolved = host_path_for(path, mounts)
    return resolved is not None and resolved[1].mount_path == path.rstrip("/")


def try_start(
    pod: dict,
    root: Path,
    *,
    node_ip: str,
    bytes_per_mb: int = 1048576,
    clock: Callable[[], datetime] | None = None,
) -> Started:
    """Run the startup model. Raises VolumeSetupFailed or ApiserverWontStart (with the log)."""
    setup_host_volumes(pod, root)
    container = apiserver_container(pod)
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    image = str(container.get("image") or "")
    version = image_version(image)
    tag = image.rpartition(":")[2] if ":" in image else "v1.36.0"
    flags, _ = parse_flags(argv[1:])
    lines: list[str] = []
    try:
        _flag_errors(flags)
    except ApiserverWontStart as exc:
        raise ApiserverWontStart(str(exc), [f"Error: {exc}"]) from None
    lines.append(
        klog_line("I", "options.go:222", f"external host was not specified, using {node_ip}")
    )
    errors = validate_log_options(flags)
    if errors:
        message = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        raise ApiserverWontStart(message, [*lines, command_failed(message)])
    lines.append(klog_line("I", "server.go:148", f"Version: {tag}"))
    lines.append(
        klog_line("I", "server.go:150", '"Golang settings" GOGC="" GOMAXPROCS="" GOTRACEBACK=""')
    )
    mounts = resolve_mounts(pod, container)
    policy = None
    try:
        _check_file_flags(flags, mounts, root)
        if flags.get("audit-policy-file"):
            policy = _read_policy(flags["audit-policy-file"], mounts, root)
            lines.extend(klog_line("W", "reader.go:82", w) for w in policy.warnings)
        log_path = flags.get("audit-log-path", "")
        node_file = None
        if log_path and log_path != "-":
            node_file = _ensure_log_file(log_path, mounts, root)
    except policyreader.PolicyLoadError as exc:
        message = f"loading audit policy file: {exc}"
        raise ApiserverWontStart(message, [*lines, command_failed(message)]) from None
    except ApiserverWontStart as exc:
        raise ApiserverWontStart(str(exc), [*lines, command_failed(str(exc))]) from None
    sink = AuditSink(
        policy=policy,
        log_path=log_path,
        node_file=node_file,
        format=flags.get("audit-log-format", "json"),
    )
    if node_file is not None:
        sink.writer = auditlog.LumberjackWriter(
            node_file, rotation_config(flags, version, bytes_per_mb), clock
        )
        sink.writer.rename_blocked = _log_is_its_own_mount(log_path, mounts)
    if log_path and policy is None:
        lines.append(
            klog_line(
                "I",
                "audit.go:434",
                "No audit policy file provided, no events will be recorded for log backend",
            )
        )
    port = flags.get("secure-port", "6443")
    lines.append(klog_line("I", "secure_serving.go:213", f"Serving securely on [::]:{port}"))
    return Started(sink=sink, log=lines, version=tag)


# ---------------------------------------------------------------- serving


def request_of(record: Any) -> policyreader.Request:
    return policyreader.Request(
        user=record.user,
        groups=tuple(record.groups),
        verb=record.verb,
        path=record.path,
        resource_request=record.resource_request,
        api_group=record.api_group,
        resource=record.resource,
        subresource=record.subresource,
        namespace=record.namespace,
        name=record.name,
    )


def legacy_line(event: dict[str, Any]) -> str:
    """``--audit-log-format=legacy`` (spec §6.4)."""
    user = event.get("user", {})
    username = user.get("username", "")
    groups = ",".join(go_quote(g) for g in user.get("groups", [])) or "<none>"
    ref = event.get("objectRef", {})
    code = event.get("responseStatus", {}).get("code")
    ips = event.get("sourceIPs") or ["<unknown>"]
    fields = [
        ("id", go_quote(event["auditID"])),
        ("stage", go_quote(event["stage"])),
        ("ip", go_quote(ips[0])),
        ("method", go_quote(event["verb"])),
        ("user", go_quote(username or "<none>")),
        ("groups", go_quote(groups) if username else "<none>"),
        ("as", '"<self>"'),
        ("asgroups", '"<lookup>"'),
        ("user-agent", go_quote(event.get("userAgent", ""))),
        ("namespace", go_quote(ref.get("namespace") or "<none>")),
        ("uri", go_quote(event["requestURI"])),
        ("response", f'"{code if code is not None else "<deferred>"}"'),
    ]
    return f"{event['requestReceivedTimestamp']} AUDIT: " + " ".join(f"{k}={v}" for k, v in fields)


def record_request(sink: AuditSink, record: Any) -> list[dict[str, Any]]:
    """Write the events of one served request; returns them (also when they are lost)."""
    if not sink.enabled or sink.policy is None:
        return []
    level, omit = policyreader.decide(sink.policy, request_of(record))
    events = auditlog.build_events(record, level, omit)
    for event in events:
        data = (
            auditlog.encode_event(event)
            if sink.format == "json"
            else (legacy_line(event) + "\n").encode()
        )
        if sink.log_path == "-":
            sink.to_stdout.append(data.decode().rstrip("\n"))
            sink.written += 1
        elif sink.writer is None:
            sink.lost += 1
        else:
            try:
                ok = sink.writer.write(data)
            except OSError as exc:
                # Blocking mode: the apiserver logs the failed write and serves on; the
                # event is lost (e.g. the log directory was removed under it).
                log.warning("audit log write to %s failed: %s", sink.writer.path, exc)
                ok = False
            if ok:
                sink.written += 1
            else:
                sink.lost += 1
    return events
