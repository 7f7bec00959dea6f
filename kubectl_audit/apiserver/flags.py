"""kube-apiserver's command line: parse it, and check its `--audit-*` flags like upstream.

Upstream validation (reference/audit-policy-spec.md §6.2, `pkg/server/options/audit.go`) is
reproduced message for message; those problems carry `upstream=True`. On top of that come
our own warnings for setups that start fine but lose or drown events.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from kubectl_audit.apiserver.kubeversion import KubeVersion, parse_version
from kubectl_audit.apiserver.problems import Problem, error, warning

# pflag bool flags never take the next argument as their value (`--x true` is two args).
_KNOWN_BOOLS = frozenset(
    {
        "--audit-log-compress",
        "--audit-log-batch-throttle-enable",
        "--audit-log-truncate-enabled",
        "--audit-webhook-batch-throttle-enable",
        "--audit-webhook-truncate-enabled",
        "--allow-privileged",
        "--anonymous-auth",
        "--contention-profiling",
        "--enable-aggregator-routing",
        "--enable-bootstrap-token-auth",
        "--enable-garbage-collector",
        "--enable-logs-handler",
        "--enable-priority-and-fairness",
        "--logtostderr",
        "--permit-address-sharing",
        "--permit-port-sharing",
        "--profiling",
        "--service-account-lookup",
        "--shutdown-send-retry-after",
        "--watch-cache",
    }
)


@dataclass(frozen=True)
class Flag:
    """One `--name[=value]` argument. `value` is None for a bare `--name`."""

    name: str
    value: str | None
    index: int  # position in the argument list (command + args), 0 = the binary

    @property
    def text(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


def parse_command(argv: Sequence[str]) -> tuple[Flag, ...]:
    """Flags of a container's `command + args`, in order; non-flag words are skipped.

    `--name=value` and `--name value` (for flags not known to be booleans) are both
    understood, as pflag does (`--audit-log-path -` is stdout); `--` ends flag parsing.
    """
    out: list[Flag] = []
    index = 0
    while index < len(argv):
        arg = str(argv[index])
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            name, sep, value = arg.partition("=")
            if sep:
                out.append(Flag(name, value, index))
            elif index > 0 and index + 1 < len(argv) and _takes_next(name, str(argv[index + 1])):
                out.append(Flag(name, str(argv[index + 1]), index))
                index += 1
            else:
                out.append(Flag(name, None, index))
        index += 1
    return tuple(out)


def _takes_next(name: str, following: str) -> bool:
    """pflag gives a non-bool flag the next word whatever it is; for flags whose type we do
    not know, a following word that looks like a flag is taken to be one."""
    if name in _KNOWN_BOOLS:
        return False
    spec = _LOG_SPECS.get(name)
    if spec is not None:
        return spec.type != _BOOL
    return not following.startswith("-")


def last_values(flags: Sequence[Flag]) -> dict[str, str | None]:
    """name -> value of its last occurrence: pflag lets the last one win."""
    return {flag.name: flag.value for flag in flags}


# -- typed options -------------------------------------------------------------------------

_STRING, _INT, _BOOL, _FLOAT, _DURATION = "string", "int", "bool", "float", "duration"


@dataclass(frozen=True)
class _Spec:
    type: str
    default: object
    default_136: object | None = None  # when 1.36 changed the default


_LOG_SPECS: Mapping[str, _Spec] = MappingProxyType(
    {
        "--audit-policy-file": _Spec(_STRING, ""),
        "--audit-log-path": _Spec(_STRING, ""),
        "--audit-log-maxage": _Spec(_INT, 0, 366),
        "--audit-log-maxbackup": _Spec(_INT, 0, 100),
        "--audit-log-maxsize": _Spec(_INT, 0, 100),
        "--audit-log-format": _Spec(_STRING, "json"),
        "--audit-log-version": _Spec(_STRING, "audit.k8s.io/v1"),
        "--audit-log-compress": _Spec(_BOOL, False),
        "--audit-log-mode": _Spec(_STRING, "blocking"),
        "--audit-log-batch-buffer-size": _Spec(_INT, 10000),
        "--audit-log-batch-max-size": _Spec(_INT, 1),
        "--audit-log-batch-max-wait": _Spec(_DURATION, "0s"),
        "--audit-log-batch-throttle-enable": _Spec(_BOOL, False),
        "--audit-log-batch-throttle-qps": _Spec(_FLOAT, 0.0),
        "--audit-log-batch-throttle-burst": _Spec(_INT, 0),
        "--audit-log-truncate-enabled": _Spec(_BOOL, False),
        "--audit-log-truncate-max-batch-size": _Spec(_INT, 10485760),
        "--audit-log-truncate-max-event-size": _Spec(_INT, 102400),
        "--audit-webhook-config-file": _Spec(_STRING, ""),
        "--audit-webhook-initial-backoff": _Spec(_DURATION, "10s"),
        "--audit-webhook-batch-initial-backoff": _Spec(_DURATION, "10s"),
        "--audit-webhook-version": _Spec(_STRING, "audit.k8s.io/v1"),
        "--audit-webhook-mode": _Spec(_STRING, "batch"),
        "--audit-webhook-batch-buffer-size": _Spec(_INT, 10000),
        "--audit-webhook-batch-max-size": _Spec(_INT, 400),
        "--audit-webhook-batch-max-wait": _Spec(_DURATION, "30s"),
        "--audit-webhook-batch-throttle-enable": _Spec(_BOOL, True),
        "--audit-webhook-batch-throttle-qps": _Spec(_FLOAT, 10.0),
        "--audit-webhook-batch-throttle-burst": _Spec(_INT, 15),
        "--audit-webhook-truncate-enabled": _Spec(_BOOL, False),
        "--audit-webhook-truncate-max-batch-size": _Spec(_INT, 10485760),
        "--audit-webhook-truncate-max-event-size": _Spec(_INT, 102400),
    }
)

ROTATION_FLAGS = (
    "--audit-log-maxage",
    "--audit-log-maxbackup",
    "--audit-log-maxsize",
    "--audit-log-compress",
)
_ALLOWED_MODES = ("batch", "blocking", "blocking-strict")
_ALLOWED_FORMATS = ("legacy", "json")
_ALLOWED_VERSIONS = ("audit.k8s.io/v1",)
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^[-+]?0$")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_GO_BOOLS.update({"0": False, "f": False, "F": False, "FALSE": False, "false": False})
_GO_BOOLS.update({"False": False})


def default_for(name: str, version: KubeVersion | str) -> object:
    """The flag's default in the given kube-apiserver version (1.36 changed rotation ones)."""
    spec = _LOG_SPECS[name]
    if spec.default_136 is not None and parse_version(version).minor_version >= (1, 36):
        return spec.default_136
    return spec.default


@dataclass(frozen=True)
class AuditOptions:
    """The effective value of every `--audit-*` flag (given or defaulted), by flag name."""

    values: Mapping[str, object]
    given: frozenset[str]  # flags present on the command line
    version: KubeVersion

    def __getitem__(self, name: str) -> object:
        return self.values[name]

    def text(self, name: str) -> str:
        return str(self.values[name])

    def number(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int)
        return value

    @property
    def log_path(self) -> str:
        return self.text("--audit-log-path")

    @property
    def policy_file(self) -> str:
        return self.text("--audit-policy-file")

    @property
    def webhook_config_file(self) -> str:
        return self.text("--audit-webhook-config-file")

    @property
    def rotates(self) -> bool:
        """Whether the log file is rotated: 1.36+ writes a plain file when maxsize is 0."""
        if self.log_path in ("", "-"):
            return False
        return self.number("--audit-log-maxsize") > 0 or self.version.minor_version < (1, 36)


def audit_options(
    flags: Sequence[Flag], version: KubeVersion | str
) -> tuple[AuditOptions, list[Problem]]:
    """Typed effective values; flags that pflag would refuse to parse become problems."""
    kube_version = parse_version(version)
    given = last_values(flags)
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for name in _LOG_SPECS:
        default = default_for(name, kube_version)
        if name not in given:
            values[name] = default
            continue
        parsed, problem = _parse_value(name, _LOG_SPECS[name].type, given[name])
        if problem is not None:
            problems.append(problem)
            values[name] = default
        else:
            values[name] = parsed
    options = AuditOptions(
        MappingProxyType(values), frozenset(n for n in given if n in _LOG_SPECS), kube_version
    )
    return options, problems


def _parse_value(name: str, kind: str, raw: str | None) -> tuple[object, Problem | None]:
    if kind == _BOOL:
        if raw is None:
            return True, None
        if raw in _GO_BOOLS:
            return _GO_BOOLS[raw], None
        return None, _parse_problem(
            name, raw, f'strconv.ParseBool: parsing "{raw}": invalid syntax'
        )
    if raw is None:
        return None, error(
            "missing-value",
            f"flag needs an argument: {name}",
            flag=name,
            upstream=True,
        )
    if kind == _INT:
        try:
            return _go_int(raw), None
        except ValueError:
            return None, _parse_problem(
                name, raw, f'strconv.ParseInt: parsing "{raw}": invalid syntax'
            )
    if kind == _FLOAT:
        try:
            return float(raw), None
        except ValueError:
            return None, _parse_problem(
                name, raw, f'strconv.ParseFloat: parsing "{raw}": invalid syntax'
            )
    if kind == _DURATION and not _GO_DURATION.match(raw):
        return None, _parse_problem(name, raw, f'time: invalid duration "{raw}"')
    return raw, None


def _go_int(raw: str) -> int:
    """strconv.ParseInt(raw, 0, 64): 0x/0o/0b prefixes, `_` separators, and - unlike
    Python - a leading 0 meaning octal; no surrounding spaces."""
    if raw != raw.strip():
        raise ValueError(raw)
    signed = raw[:1] in ("+", "-")
    sign, digits = (raw[0], raw[1:]) if signed else ("", raw)
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567_":
        digits = "0o" + digits[1:]
    return int(sign + digits, 0)


def _parse_problem(name: str, raw: str, why: str) -> Problem:
    return error(
        "invalid-argument",
        f'invalid argument "{raw}" for "{name}" flag: {why}',
        flag=name,
        upstream=True,
    )


# -- validation ------------------------------------------------------------------------------


def validate_audit_flags(flags: Sequence[Flag], version: KubeVersion | str) -> list[Problem]:
    """Every problem with the `--audit-*` flags: parse errors, upstream validation, ours."""
    options, problems = audit_options(flags, version)
    if options.log_path:
        problems.extend(_validate_backend(options, "log"))
        problems.extend(_validate_log_specific(options))
    if options.webhook_config_file:
        problems.extend(_validate_backend(options, "webhook"))
    problems.extend(_duplicates(flags))
    problems.extend(_our_warnings(options))
    return problems


def _validate_backend(options: AuditOptions, plugin: str) -> list[Problem]:
    """Mode/batch, truncate and version checks shared by log and webhook (§6.2 1-3)."""
    prefix = f"--audit-{plugin}-"
    out: list[Problem] = []
    batch_problem = _validate_mode_and_batch(options, plugin, prefix)
    if batch_problem:
        out.append(batch_problem)
    max_event = options.number(prefix + "truncate-max-event-size")
    max_batch = options.number(prefix + "truncate-max-batch-size")
    if max_event <= 0:
        out.append(
            _upstream(
                f"invalid audit truncate {plugin} max event size {max_event}, "
                "must be a positive number",
                prefix + "truncate-max-event-size",
            )
        )
    elif max_batch < max_event:
        out.append(
            _upstream(
                f"invalid audit truncate {plugin} max batch size {max_batch}, "
                f"must be greater than max event size ({max_event})",
                prefix + "truncate-max-batch-size",
            )
        )
    version = options.text(prefix + "version")
    if version.count("/") > 1:
        out.append(_upstream(f"unexpected GroupVersion string: {version}", prefix + "version"))
    elif version not in _ALLOWED_VERSIONS:
        allowed = "[" + " ".join(f'"{v}"' for v in _ALLOWED_VERSIONS) + "]"
        out.append(
            _upstream(f"invalid group version, allowed versions are {allowed}", prefix + "version")
        )
    return out


def _validate_mode_and_batch(options: AuditOptions, plugin: str, prefix: str) -> Problem | None:
    mode = options.text(prefix + "mode")
    if mode not in _ALLOWED_MODES:
        allowed = ",".join(_ALLOWED_MODES)
        return _upstream(
            f'invalid audit {plugin} mode {mode}, allowed modes are "{allowed}"', prefix + "mode"
        )
    if mode != "batch":
        return None
    buffer_size = options.number(prefix + "batch-buffer-size")
    if buffer_size <= 0:
        return _upstream(
            f"invalid audit batch {plugin} buffer size {buffer_size}, must be a positive number",
            prefix + "batch-buffer-size",
        )
    max_size = options.number(prefix + "batch-max-size")
    if max_size <= 0:
        return _upstream(
            f"invalid audit batch {plugin} max batch size {max_size}, must be a positive number",
            prefix + "batch-max-size",
        )
    if options[prefix + "batch-throttle-enable"]:
        qps = options[prefix + "batch-throttle-qps"]
        assert isinstance(qps, float)
        if qps <= 0:
            return _upstream(
                f"invalid audit batch {plugin} throttle QPS {_go_float(qps)}, "
                "must be a positive number",
                prefix + "batch-throttle-qps",
            )
        burst = options.number(prefix + "batch-throttle-burst")
        if burst <= 0:
            return _upstream(
                f"invalid audit batch {plugin} throttle burst {burst}, must be a positive number",
                prefix + "batch-throttle-burst",
            )
    return None


def _validate_log_specific(options: AuditOptions) -> list[Problem]:
    """Format and the three non-negative rotation numbers (§6.2 4-7)."""
    out: list[Problem] = []
    log_format = options.text("--audit-log-format")
    if log_format not in _ALLOWED_FORMATS:
        out.append(
            _upstream(
                f'invalid audit log format {log_format}, allowed formats are "legacy,json"',
                "--audit-log-format",
            )
        )
    for name in ("--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize"):
        value = options.number(name)
        if value < 0:
            out.append(_upstream(f"{name} {value} can't be a negative number", name))
    return out


def _upstream(message: str, flag: str) -> Problem:
    return error("invalid-value", message, flag=flag, upstream=True)


def _go_float(value: float) -> str:
    """Go's %v for float32: `0`, `-1`, `0.5`."""
    return str(int(value)) if value == int(value) else repr(value)


def _duplicates(flags: Sequence[Flag]) -> list[Problem]:
    seen: dict[str, list[Flag]] = {}
    for flag in flags:
        if flag.name.startswith("--audit-"):
            seen.setdefault(flag.name, []).append(flag)
    return [
        warning(
            "duplicate-flag",
            f"{name} is given {len(found)} times; the last one ({found[-1].text}) wins",
            flag=name,
            hint="remove the other occurrences so nobody reads the wrong one",
        )
        for name, found in seen.items()
        if len(found) > 1
    ]


def _our_warnings(options: AuditOptions) -> list[Problem]:
    out: list[Problem] = []
    log_path, policy = options.log_path, options.policy_file
    webhook = options.webhook_config_file
    if (log_path or webhook) and not policy:
        out.append(
            warning(
                "no-policy",
                "no --audit-policy-file is set: the apiserver records no audit events",
                flag="--audit-policy-file",
            )
        )
    if policy and not log_path and not webhook:
        out.append(
            warning(
                "no-backend",
                "--audit-policy-file is set but neither --audit-log-path nor "
                "--audit-webhook-config-file: events go nowhere",
                flag="--audit-log-path",
            )
        )
    if webhook and not log_path:
        out.append(
            warning(
                "webhook-only",
                "events go only to the audit webhook; there is no log file on the node to read",
                flag="--audit-webhook-config-file",
            )
        )
    if log_path == "-":
        out.append(
            warning(
                "log-to-stdout",
                "--audit-log-path=- writes events to the container's stdout: they land in the "
                "kubelet's container logs and can fill that disk",
                flag="--audit-log-path",
                hint="log to a file under a mounted directory, with rotation",
            )
        )
        given = sorted(options.given.intersection(ROTATION_FLAGS))
        if given:
            out.append(
                warning(
                    "rotation-ignored",
                    f"{', '.join(given)} have no effect when --audit-log-path=-",
                    flag=given[0],
                )
            )
    elif log_path:
        out.extend(_rotation_warnings(options))
        if not log_path.startswith("/"):
            out.append(
                warning(
                    "relative-log-path",
                    f"--audit-log-path={log_path} is relative: it resolves against the "
                    "apiserver's working directory, which no mount covers",
                    flag="--audit-log-path",
                )
            )
    return out


def _rotation_warnings(options: AuditOptions) -> list[Problem]:
    if not options.rotates:
        return [
            warning(
                "no-rotation",
                "--audit-log-maxsize=0: from Kubernetes 1.36 the audit log is never rotated "
                "and grows without bound",
                flag="--audit-log-maxsize",
                hint="set --audit-log-maxsize (MiB) to rotate, e.g. 100",
            )
        ]
    if options.number("--audit-log-maxage") == 0 and options.number("--audit-log-maxbackup") == 0:
        return [
            warning(
                "backups-never-deleted",
                "--audit-log-maxage and --audit-log-maxbackup are both 0: rotated audit logs "
                "are never deleted and fill the disk",
                flag="--audit-log-maxbackup",
                hint="set --audit-log-maxbackup=10 and --audit-log-maxage=30 (CIS)",
            )
        ]
    return []
