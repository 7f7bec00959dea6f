"""What the apiserver does to an object between decoding and storing it.

Defaulting (the fields `kubectl get -o yaml` shows on a fresh pod), the validation errors our
clients can provoke (names, empty containers, ConfigMap size), and Pod Security admission's
`enforce` mode with the texts of kubernetes/pod-security-admission (`policy/check_*.go`,
`admission/admission.go`): `violates PodSecurity "<level>:<version>": <reason> (<detail>), ...`.
Checks run baseline first, then restricted, each sorted by check ID; a restricted check that
overrides a baseline one replaces it (restricted volume types for hostPath volumes,
unrestricted capabilities for non-default capabilities, seccompProfile).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character (e.g. 'example.com',"
    " regex used for validation is"
    " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
CONFIGMAP_MAX_BYTES = 1024 * 1024

# Capabilities the baseline level allows to be added (pod-security-admission
# check_capabilities_baseline.go).
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_RESTRICTED_VOLUME_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
LABEL_PREFIX = "pod-security.kubernetes.io/"
LEVEL_LABEL = f"{LABEL_PREFIX}enforce"
VERSION_LABEL = f"{LABEL_PREFIX}enforce-version"


@dataclass(frozen=True)
class FieldError:
    """One entry of an Invalid (422) Status, worded like apimachinery's field.Error."""

    field: str
    kind: str  # "Required value", "Invalid value", "Too long", ...
    detail: str = ""
    value: object = None

    def __str__(self) -> str:
        if self.kind == "Invalid value":
            text = f"{self.field}: Invalid value: {json.dumps(self.value)}"
        else:
            text = f"{self.field}: {self.kind}"
        return f"{text}: {self.detail}" if self.detail else text


# -- defaulting -------------------------------------------------------------------------------


def default_namespace(obj: dict) -> None:
    meta = obj["metadata"]
    meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Active"}


def _pull_policy(image: str) -> str:
    tag = image.rsplit("/", 1)[-1]
    if "@" in tag:
        return "IfNotPresent"
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


def default_pod(pod: dict) -> None:
    """The defaults the real apiserver (and its DefaultTolerationSeconds plugin) fills in."""
    spec = pod.setdefault("spec", {})
    for container in spec.get("containers") or []:
        container.setdefault("imagePullPolicy", _pull_policy(container.get("image", "")))
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            t.get("operator") == "Exists" and t.get("key") in (None, "", key) for t in tolerations
        ):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            )
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", "BestEffort")


# -- validation -------------------------------------------------------------------------------


def validate_name(meta: dict) -> list[FieldError]:
    name = meta.get("name") or ""
    if not name:
        if meta.get("generateName"):
            return []
        return [FieldError("metadata.name", "Required value", "name or generateName is required")]
    if len(name) > 253:
        return [
            FieldError(
                "metadata.name", "Invalid value", "must be no more than 253 characters", name
            )
        ]
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [FieldError("metadata.name", "Invalid value", _SUBDOMAIN_MESSAGE, name)]
    return []


def validate_pod(pod: dict) -> list[FieldError]:
    errors = validate_name(pod.get("metadata", {}))
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        errors.append(FieldError("spec.containers", "Required value"))
    for i, container in enumerate(containers):
        if not container.get("name"):
            errors.append(FieldError(f"spec.containers[{i}].name", "Required value"))
        if not container.get("image"):
            errors.append(FieldError(f"spec.containers[{i}].image", "Required value"))
    return errors


def validate_configmap(cm: dict) -> list[FieldError]:
    errors = validate_name(cm.get("metadata", {}))
    size = sum(len(k) + len(str(v).encode()) for k, v in (cm.get("data") or {}).items())
    size += sum(len(k) + len(str(v)) for k, v in (cm.get("binaryData") or {}).items())
    if size > CONFIGMAP_MAX_BYTES:
        errors.append(
            FieldError("[]", "Too long", f"must have at most {CONFIGMAP_MAX_BYTES} bytes")
        )
    return errors


# -- Pod Security admission -------------------------------------------------------------------


def _all_containers(spec: dict) -> list[dict]:
    return (
        list(spec.get("initContainers") or [])
        + list(spec.get("containers") or [])
        + list(spec.get("ephemeralContainers") or [])
    )


def _quoted(names: list[str]) -> str:
    return ", ".join(json.dumps(n) for n in names)


def _containers(names: list[str], singular: str = "container", plural: str = "containers") -> str:
    return f"{singular if len(names) == 1 else plural} {_quoted(names)}"


def _sc(container: dict) -> dict:
    return container.get("securityContext") or {}


Check = Callable[[dict], "tuple[str, str] | None"]


def _check_host_namespaces(spec: dict) -> tuple[str, str] | None:
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f)]
    return ("host namespaces", ", ".join(used)) if used else None


def _check_host_path_volumes(spec: dict) -> tuple[str, str] | None:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    return ("hostPath volumes", _containers(names, "volume", "volumes")) if names else None


def _check_host_ports(spec: dict) -> tuple[str, str] | None:
    names, ports = [], []
    for c in _all_containers(spec):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            names.append(c.get("name", ""))
            ports.extend(used)
    if not names:
        return None
    verb = "uses" if len(names) == 1 else "use"
    noun = "hostPort" if len(ports) == 1 else "hostPorts"
    return ("hostPort", f"{_containers(names)} {verb} {noun} {', '.join(ports)}")


def _check_privileged(spec: dict) -> tuple[str, str] | None:
    names = [c.get("name", "") for c in _all_containers(spec) if _sc(c).get("privileged")]
    if not names:
        return None
    return ("privileged", f"{_containers(names)} must not set securityContext.privileged=true")


def _added_capabilities(spec: dict, allowed: set[str]) -> tuple[list[str], list[str]]:
    names, caps = [], []
    for c in _all_containers(spec):
        bad = [
            cap for cap in (_sc(c).get("capabilities") or {}).get("add") or [] if cap not in allowed
        ]
        if bad:
            names.append(c.get("name", ""))
            caps.extend(cap for cap in bad if cap not in caps)
    return names, caps


def _check_capabilities_baseline(spec: dict) -> tuple[str, str] | None:
    names, caps = _added_capabilities(spec, _BASELINE_CAPABILITIES)
    if not names:
        return None
    return (
        "non-default capabilities",
        f"{_containers(names)} must not include {_quoted(caps)} in"
        " securityContext.capabilities.add",
    )


def _check_allow_privilege_escalation(spec: dict) -> tuple[str, str] | None:
    names = [
        c.get("name", "")
        for c in _all_containers(spec)
        if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not names:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_containers(names)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _check_capabilities_restricted(spec: dict) -> tuple[str, str] | None:
    details = []
    no_drop = [
        c.get("name", "")
        for c in _all_containers(spec)
        if "ALL" not in ((_sc(c).get("capabilities") or {}).get("drop") or [])
    ]
    if no_drop:
        details.append(f'{_containers(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    names, caps = _added_capabilities(spec, {"NET_BIND_SERVICE"})
    if names:
        details.append(
            f"{_containers(names)} must not include {_quoted(caps)} in"
            " securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _check_restricted_volumes(spec: dict) -> tuple[str, str] | None:
    by_type: dict[str, list[str]] = {}
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name" and k not in _RESTRICTED_VOLUME_SOURCES]
        for kind in kinds:
            by_type.setdefault(kind, []).append(volume.get("name", ""))
    if not by_type:
        return None
    names = [n for ns in by_type.values() for n in ns]
    verb = "uses" if len(names) == 1 else "use"
    kinds = list(by_type)
    noun = "type" if len(kinds) == 1 else "types"
    return (
        "restricted volume types",
        f"{_containers(names, 'volume', 'volumes')} {verb} restricted volume {noun}"
        f" {_quoted(kinds)}",
    )


def _check_run_as_non_root(spec: dict) -> tuple[str, str] | None:
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    explicit = [
        c.get("name", "") for c in _all_containers(spec) if _sc(c).get("runAsNonRoot") is False
    ]
    implicit = [
        c.get("name", "")
        for c in _all_containers(spec)
        if _sc(c).get("runAsNonRoot") is None and pod_value is not True
    ]
    details = []
    if pod_value is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    if explicit:
        details.append(f"{_containers(explicit)} must not set securityContext.runAsNonRoot=false")
    if implicit and pod_value is None:
        details.append(f"pod or {_containers(implicit)} must set securityContext.runAsNonRoot=true")
    return ("runAsNonRoot != true", "; ".join(details)) if details else None


def _check_run_as_user(spec: dict) -> tuple[str, str] | None:
    details = []
    if (spec.get("securityContext") or {}).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    names = [c.get("name", "") for c in _all_containers(spec) if _sc(c).get("runAsUser") == 0]
    if names:
        details.append(f"{_containers(names)} must not set runAsUser=0")
    return ("runAsUser=0", "; ".join(details)) if details else None


def _check_seccomp_restricted(spec: dict) -> tuple[str, str] | None:
    pod_type = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    good = ("RuntimeDefault", "Localhost")
    missing = [
        c.get("name", "")
        for c in _all_containers(spec)
        if ((_sc(c).get("seccompProfile") or {}).get("type") or pod_type) not in good
    ]
    if not missing:
        return None
    subject = f"pod or {_containers(missing)}" if pod_type is None else _containers(missing)
    return (
        "seccompProfile",
        f'{subject} must set securityContext.seccompProfile.type to "RuntimeDefault" or'
        ' "Localhost"',
    )


# (check ID, check, IDs it overrides), sorted by ID within each level.
_BASELINE: list[tuple[str, Check, tuple[str, ...]]] = [
    ("capabilities_baseline", _check_capabilities_baseline, ()),
    ("hostNamespaces", _check_host_namespaces, ()),
    ("hostPathVolumes", _check_host_path_volumes, ()),
    ("hostPorts", _check_host_ports, ()),
    ("privileged", _check_privileged, ()),
]
_RESTRICTED: list[tuple[str, Check, tuple[str, ...]]] = [
    ("allowPrivilegeEscalation", _check_allow_privilege_escalation, ()),
    ("capabilities_restricted", _check_capabilities_restricted, ("capabilities_baseline",)),
    ("restrictedVolumes", _check_restricted_volumes, ("hostPathVolumes",)),
    ("runAsNonRoot", _check_run_as_non_root, ()),
    ("runAsUser", _check_run_as_user, ()),
    ("seccompProfile_restricted", _check_seccomp_restricted, ()),
]


def _pod_security_findings(namespace: dict | None, pod: dict, mode: str) -> str | None:
    """`PodSecurity "<level>:<version>": <findings>` for the namespace's `mode` label
    (enforce, warn or audit), or None when that level admits the pod."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(f"{LABEL_PREFIX}{mode}", "privileged")
    if level not in ("baseline", "restricted"):
        return None
    version = labels.get(f"{LABEL_PREFIX}{mode}-version", "latest")
    checks = list(_BASELINE)
    if level == "restricted":
        overridden = {o for _, _, overrides in _RESTRICTED for o in overrides}
        checks = [c for c in checks if c[0] not in overridden] + _RESTRICTED
    spec = pod.get("spec") or {}
    found = [result for _, check, _ in checks if (result := check(spec))]
    if not found:
        return None
    parts = [f"{reason} ({detail})" if detail else reason for reason, detail in found]
    return f'PodSecurity "{level}:{version}": {", ".join(parts)}'


def pod_security_violation(namespace: dict | None, pod: dict) -> str | None:
    """The `violates PodSecurity ...` text if the namespace's enforce level refuses the pod."""
    findings = _pod_security_findings(namespace, pod, "enforce")
    return f"violates {findings}" if findings else None


def pod_security_warning(namespace: dict | None, pod: dict) -> str | None:
    """The `would violate PodSecurity ...` warning of the namespace's warn level."""
    findings = _pod_security_findings(namespace, pod, "warn")
    return f"would violate {findings}" if findings else None
