"""The short-lived privileged pod that reaches a node (DESIGN §4), and its lifecycle.

Like `kubectl debug node/NAME --profile=sysadmin`, but better behaved: labelled so
`kubectl audit cleanup` finds strays, an `activeDeadlineSeconds` backstop in case the client
dies, no service-account token, only the host PID namespace (for systemctl), deleted in
`finally`, and an image the node already has when it has a usable one.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubectl_audit.errors import ClusterError, NodeError
from kubectl_audit.kube.errors import ApiUnreachable, NotFound, api_call, api_error
from kubectl_audit.kube.rest import Rest, core_path
from kubectl_audit.node.podexec import ExecStream, exec_in_pod
from kubectl_audit.node.shell import CommandResult

log = logging.getLogger(__name__)

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-audit"
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT = "node-agent"
LABEL_NODE = "kubectl-audit.io/node"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
CONTAINER = "agent"
HOST_ROOT = "/host"
DEFAULT_IMAGE = "docker.io/library/busybox:1.37"
# Images that carry a shell, `sleep` and `chroot`: worth reusing when already on the node.
_DELETE_PATIENCE = 30.0  # seconds
_SHELL_IMAGES = ("busybox", "alpine", "debian", "ubuntu", "fedora", "almalinux", "rockylinux")


@dataclass(frozen=True)
class DebugPodOptions:
    namespace: str = "kube-system"
    image: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    deadline_seconds: int = 900
    start_timeout: float = 120.0
    labels: dict[str, str] = field(default_factory=dict)


def images_on_node(node: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for image in (node.get("status") or {}).get("images") or []:
        names.extend(image.get("names") or [])
    return names


def choose_image(node: dict[str, Any], requested: str | None) -> str:
    """`--image` if given; else a shell image the node already has; else busybox."""
    if requested:
        return requested
    for name in images_on_node(node):
        if "@sha256:" in name:
            continue
        repository = name.rsplit("/", 1)[-1].split(":", 1)[0]
        if repository in _SHELL_IMAGES:
            return name
    return DEFAULT_IMAGE


def pod_name_for(node_name: str) -> str:
    suffix = secrets.token_hex(3)
    stem = f"kubectl-audit-{node_name}"[: 63 - len(suffix) - 1].rstrip("-.")
    return f"{stem}-{suffix}"


def build_debug_pod(node_name: str, name: str, image: str, options: DebugPodOptions) -> dict:
    """The pod manifest (pure): pinned to the node, root at /host, sleeping main process."""
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: COMPONENT,
        LABEL_NODE: node_name[:63],
        **options.labels,
    }
    spec: dict[str, Any] = {
        "nodeName": node_name,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": options.deadline_seconds,
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostPID": True,
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", str(options.deadline_seconds)],
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "host-root", "mountPath": HOST_ROOT}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
        "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}}],
    }
    if options.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in options.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": labels,
            "annotations": {
                "kubectl-audit.io/purpose": "edits the kube-apiserver static pod for audit "
                "logging; deleted when done, by its deadline at the latest",
            },
        },
        "spec": spec,
    }


_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _container_waiting(pod: dict[str, Any]) -> tuple[str, str] | None:
    for status in _container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return waiting["reason"], waiting.get("message") or ""
    return None


def _is_running(pod: dict[str, Any]) -> bool:
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    return any(
        s.get("name") == CONTAINER and (s.get("state") or {}).get("running") is not None
        for s in _container_statuses(pod)
    )


class DebugPod:
    """A NodeShell through a privileged pod; use as a context manager (it deletes the pod)."""

    def __init__(
        self,
        api_client: Any,
        node: dict[str, Any],
        options: DebugPodOptions,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.rest = Rest(api_client)
        self.node_object = node
        self.node = node["metadata"]["name"]
        self.options = options
        self.image = choose_image(node, options.image)
        self.name = pod_name_for(self.node)
        self._progress = progress or (lambda message: None)
        self._created = False
        self._kept = False

    @property
    def path(self) -> str:
        return core_path("pods", self.name, namespace=self.options.namespace)

    def __enter__(self) -> DebugPod:
        manifest = build_debug_pod(self.node, self.name, self.image, self.options)
        where = f"{self.options.namespace}/{self.name}"
        self._progress(f"starting node-agent pod {where} ({self.image})")
        with api_call(f"create pod in namespace {self.options.namespace}"):
            self.rest.create(core_path("pods", namespace=self.options.namespace), manifest)
        self._created = True
        try:
            self._wait_until_running()
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._kept:
            return
        self.delete()

    def keep(self) -> None:
        """Leave the pod to its deadline: a detached process in it must not be killed
        (deleting a pod kills every process of its container, setsid'ed or not)."""
        self._kept = True

    def run(
        self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None
    ) -> CommandResult:
        """Run argv in the node's root file system (`chroot /host ...`)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return exec_in_pod(*self._exec_target(argv), timeout=timeout, stdin=stdin)
        except ApiException as error:
            raise api_error(error, f"exec in pod {self.name}") from None
        except TimeoutError as error:
            raise NodeError(f"{error} on node {self.node}") from None

    def stream(self, argv: Sequence[str], *, timeout: float | None) -> ExecStream:
        """argv in the node's root file system, its stdout handed out as it arrives."""
        return ExecStream(*self._exec_target(argv), timeout=timeout)

    def _exec_target(self, argv: Sequence[str]) -> tuple[Rest, str, str, str, list[str]]:
        """rest, namespace, pod, container and argv of an exec in the node's root."""
        return self.rest, self.options.namespace, self.name, CONTAINER, ["chroot", HOST_ROOT, *argv]

    def delete(self) -> None:
        if not self._created:
            return
        # The API may be away for a few seconds (an apiserver restarting): wait that out
        # rather than leave a privileged pod behind until its deadline.
        deadline = time.monotonic() + _DELETE_PATIENCE
        while True:
            try:
                with api_call(f"delete pod {self.options.namespace}/{self.name}"):
                    self.rest.delete(self.path, query=[("gracePeriodSeconds", 0)])
            except NotFound:
                log.debug("pod %s/%s was already gone", self.options.namespace, self.name)
            except ApiUnreachable:
                if time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                log.warning(
                    "could not delete pod %s/%s: the API server is unreachable; it deletes "
                    "itself at its deadline, or `kubectl audit cleanup --all` removes it",
                    self.options.namespace,
                    self.name,
                )
                return
            except ClusterError as error:
                log.warning("%s; `kubectl audit cleanup --all` removes it", error.message)
                return
            self._created = False
            return

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout
        last = "Pending"
        while time.monotonic() < deadline:
            try:
                with api_call(f"read pod {self.options.namespace}/{self.name}"):
                    pod = self.rest.get(self.path)
            except ApiUnreachable:
                time.sleep(0.5)  # the API is briefly away (an apiserver restarting): wait
                continue
            if _is_running(pod):
                return
            status = pod.get("status") or {}
            phase = status.get("phase") or "Pending"
            waiting = _container_waiting(pod)
            if waiting and waiting[0] in _PULL_FAILURES:
                raise self._pull_failure(*waiting)
            if phase in ("Failed", "Succeeded"):
                reason = status.get("reason") or status.get("message") or phase
                raise NodeError(f"node-agent pod {self.name} on {self.node} ended early: {reason}")
            last = f"{phase}" + (f" ({waiting[0]}: {waiting[1]})" if waiting else "")
            time.sleep(0.25)
        raise NodeError(
            f"node-agent pod {self.name} did not start on {self.node} within "
            f"{self.options.start_timeout:.0f}s (last state: {last})",
            hint="check `kubectl describe pod` events while it starts, or raise --timeout",
        )

    def _pull_failure(self, reason: str, message: str) -> NodeError:
        cached = [name for name in images_on_node(self.node_object) if "@sha256:" not in name]
        on_node = f"; images already on {self.node}: {', '.join(cached[:6])}" if cached else ""
        return NodeError(
            f"node {self.node} cannot pull image {self.image} ({reason}: {message})".rstrip(),
            hint="pass --image with an image that has sh, sleep and chroot and that the node "
            f"can pull, or --image-pull-secret for a private registry{on_node}",
        )
