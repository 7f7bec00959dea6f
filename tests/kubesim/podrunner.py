"""Debug and workload pods bound to a node (``spec.nodeName``), run by its kubelet.

What the real kubelet does, kept to what the plugin's debug pods meet:
* admission: a NoExecute taint the pod does not tolerate rejects it (the scheduler is
  bypassed by ``nodeName``, so NoSchedule taints do not matter);
* image pull: an image the node cannot pull leaves the container waiting with
  ``ErrImagePull``, then ``ImagePullBackOff``, retried with back-off, as containerd reports it;
* ``hostPath`` volumes become bind mounts of the node root's paths (``/`` = the node root);
* the main process runs in a ``PodSandbox`` (tests/kubesim/sandbox.py);
* ``activeDeadlineSeconds`` counts from ``status.startTime``; when it passes, every process
  is killed and the pod is Failed with reason ``DeadlineExceeded``;
* the main process's exit makes the pod Succeeded (0) or Failed (``restartPolicy: Never``),
  or restarts the container otherwise; deleting the pod kills its processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.kubesim import apiserver, cri
from tests.kubesim.kubelet import image_ref, now, pod_conditions, stamp

if TYPE_CHECKING:
    from tests.kubesim.kubelet import Kubelet
    from tests.kubesim.sandbox import PodSandbox

log = logging.getLogger(__name__)

DEFAULT_PULLABLE = ("docker.io/library/busybox",)


def normalize_image(ref: str) -> tuple[str, str | None]:
    """``busybox`` -> (``docker.io/library/busybox``, None); the tag/digest if one was given."""
    name, tag = ref, None
    if "@" in name:
        name, tag = name.split("@", 1)
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) == 1:
        name = f"docker.io/library/{name}"
    elif "." not in parts[0] and ":" not in parts[0] and parts[0] != "localhost":
        name = f"docker.io/{name}"
    return name, tag


def image_matches(image: str, pattern: str) -> bool:
    """A pattern without a tag stands for every tag of that repository."""
    name, tag = normalize_image(image)
    want_name, want_tag = normalize_image(pattern)
    if name != want_name:
        return False
    return want_tag is None or (tag or "latest") == want_tag


def full_image(image: str) -> str:
    name, tag = normalize_image(image)
    if tag and len(tag) > 60:
        return f"{name}@{tag}"
    return f"{name}:{tag or 'latest'}"


def pull_error(ref: str) -> str:
    """containerd's words for an image it cannot resolve."""
    return (
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": '
        "pull access denied, repository does not exist or may require authorization: "
        "server message: insufficient_scope: authorization failed"
    )


def untolerated_noexecute(node: dict, pod: dict) -> dict | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (
        taint.get("value") or ""
    )


@dataclass
class PodRunner:
    kubelet: Kubelet
    namespace: str
    name: str
    uid: str
    pod: dict
    sandbox: PodSandbox | None = None
    task: asyncio.Task | None = None
    record: cri.ContainerRecord | None = None
    started: datetime = field(default_factory=now)
    sandbox_id: str = field(default_factory=cri.new_id)
    restart_count: int = 0
    _log_offset: int = 0

    # -- status ----------------------------------------------------------------------

    @property
    def container(self) -> dict:
        return ((self.pod.get("spec") or {}).get("containers") or [{}])[0]

    def _write_status(self, status: dict[str, Any]) -> bool:
        store = self.kubelet.node.cluster.store
        current = store.get("pods", self.namespace, self.name)
        if current is None or current["metadata"].get("uid") != self.uid:
            return False
        current["status"] = status
        store.update("pods", current)
        return True

    def _status(
        self,
        phase: str,
        state: dict,
        *,
        ready: bool = False,
        reason: str = "",
        message: str = "",
        last: dict | None = None,
    ) -> dict[str, Any]:
        node = self.kubelet.node
        condition_time = stamp(now())
        container_status: dict[str, Any] = {
            "name": self.container.get("name", "container"),
            "image": self.container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": self.restart_count,
            "started": "running" in state,
            "state": state,
            "lastState": last or {},
        }
        if self.record is not None:
            container_status["containerID"] = f"containerd://{self.record.id}"
            image = full_image(self.container.get("image", ""))
            container_status["imageID"] = f"{image.rsplit(':', 1)[0]}@{self.record.image_ref}"
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": pod_conditions(
                started=stamp(self.started),
                sandbox_ready=bool(self.sandbox),
                sandbox_since=condition_time,
                ready=ready,
                ready_since=condition_time,
            ),
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "startTime": stamp(self.started),
            "qosClass": "BestEffort",
            "containerStatuses": [container_status],
        }
        if (self.pod.get("spec") or {}).get("hostNetwork"):
            status["podIP"] = node.ip
            status["podIPs"] = [{"ip": node.ip}]
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        return status

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"pod {self.namespace}/{self.name}"
        )

    async def terminate(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self._kill()

    async def _kill(self) -> None:
        if self.sandbox is not None:
            try:
                await self.sandbox.terminate()
            except Exception:
                log.exception("terminating pod %s/%s", self.namespace, self.name)
        if self.record is not None and self.record.state == cri.RUNNING:
            self.record.exit(now(), 137, "Error")

    async def _run(self) -> None:
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("pod %s/%s failed in the kubelet", self.namespace, self.name)
            self._write_status(
                self._status(
                    "Failed",
                    {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(exc)}},
                )
            )

    async def _lifecycle(self) -> None:
        node = self.kubelet.node
        period = max(float(getattr(node.cluster.knobs, "kubelet_period", 0.05)), 0.01)
        # A dead kubelet runs nothing (the pod stays Pending with no status); a slow one
        # picks the pod up late.
        while self.kubelet.is_broken:
            await asyncio.sleep(period)
        if self.kubelet.delay:
            await asyncio.sleep(self.kubelet.delay)
        node_obj = node.cluster.store.get("nodes", None, node.name) or node.node_object()
        taint = untolerated_noexecute(node_obj, self.pod)
        if taint is not None:
            text = f"{{{taint.get('key')}: {taint.get('value', '')}}}"
            self._write_status(
                self._status(
                    "Failed",
                    {"waiting": {"reason": "ContainerCreating"}},
                    reason="Taint",
                    message=(
                        "Pod was rejected: Predicate TaintToleration failed: node(s) had "
                        f"untolerated taint {text}"
                    ),
                )
            )
            return
        self._write_status(self._status("Pending", {"waiting": {"reason": "ContainerCreating"}}))
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        try:
            # The deadline counts from status.startTime: image pulls are inside it.
            timeout = None if deadline is None else max(float(deadline), 0.0)
            await asyncio.wait_for(self._pull_and_run(), timeout=timeout)
        except asyncio.TimeoutError:
            await self._kill()
            last_state = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": stamp(self.record.started_at) if self.record else None,
                    "finishedAt": stamp(now()),
                    "containerID": f"containerd://{self.record.id}" if self.record else "",
                }
            }
            self._write_status(
                self._status(
                    "Failed",
                    last_state,
                    reason="DeadlineExceeded",
                    message="Pod was active on the node longer than the specified deadline",
                )
            )

    async def _pull_and_run(self) -> None:
        await self._pull_image()
        await self._set_up_volumes()
        await self._run_containers()

    async def _set_up_volumes(self) -> None:
        """hostPath type checks as for static pods; a failing volume keeps the pod in
        ContainerCreating while the kubelet retries (the reason is in its journal)."""
        period = max(float(getattr(self.kubelet.node.cluster.knobs, "kubelet_period", 0.05)), 0.01)
        failures = 0
        while True:
            try:
                apiserver.setup_host_volumes(self.pod, self.kubelet.node.root)
                return
            except apiserver.VolumeSetupFailed as exc:
                if failures == 0:
                    self.kubelet.journal(
                        "E",
                        "nestedpendingoperations.go:348",
                        f'Operation for volume of pod "{self.name}" (UID: "{self.uid}") '
                        f"failed. Error: {exc}",
                    )
                failures += 1
            await asyncio.sleep(min(period * 4 * 2**failures, period * 40))

    def pullable(self, image: str) -> bool:
        knobs = self.kubelet.node.cluster.knobs
        for pattern in getattr(knobs, "unpullable_images", None) or ():
            if image_matches(image, pattern):
                return False
        allowed = getattr(knobs, "pullable_images", None)
        if allowed is None:
            node_obj = self.kubelet.node.node_object()
            allowed = list(DEFAULT_PULLABLE)
            for entry in (node_obj.get("status") or {}).get("images") or []:
                allowed.extend(entry.get("names") or [])
        return any(image_matches(image, pattern) for pattern in allowed)

    async def _pull_image(self) -> None:
        image = str(self.container.get("image", ""))
        attempt = 0
        knobs = self.kubelet.node.cluster.knobs
        period = max(float(getattr(knobs, "kubelet_period", 0.05)), 0.01)
        # A slow registry: the container stays ContainerCreating while the image is pulled.
        pull_delay = float(getattr(knobs, "image_pull_delay", 0.0) or 0.0)
        if pull_delay:
            await asyncio.sleep(pull_delay)
        while not self.pullable(image):
            ref = full_image(image)
            self._write_status(
                self._status(
                    "Pending",
                    {
                        "waiting": {
                            "reason": "ErrImagePull",
                            "message": pull_error(ref),
                        }
                    },
                )
            )
            await asyncio.sleep(period * 2)
            self._write_status(
                self._status(
                    "Pending",
                    {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{image}"',
                        }
                    },
                )
            )
            attempt += 1
            await asyncio.sleep(min(period * 4 * 2**attempt, period * 40))

    def _mounts(self) -> list[Any]:
        from tests.kubesim.sandbox import Mount

        node = self.kubelet.node
        volumes = {v.get("name"): v for v in (self.pod.get("spec") or {}).get("volumes") or []}
        mounts = []
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name")) or {}
            host = (volume.get("hostPath") or {}).get("path")
            if not host:
                continue  # emptyDir, projected service-account tokens...: not modelled
            source = node.root / str(host).lstrip("/") if host != "/" else node.root
            mounts.append(
                Mount(
                    source=source,
                    target=str(mount.get("mountPath")),
                    read_only=bool(mount.get("readOnly")),
                )
            )
        return mounts

    def _env(self) -> dict[str, str]:
        env = {}
        for item in self.container.get("env") or []:
            if "value" in item and item.get("name"):
                env[str(item["name"])] = str(item["value"])
        return env

    async def _run_containers(self) -> None:
        from tests.kubesim.sandbox import PodSandbox, SandboxError

        node = self.kubelet.node
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        argv = [
            str(a)
            for a in (self.container.get("command") or []) + (self.container.get("args") or [])
        ]
        if not argv:
            argv = ["sh"]  # the busybox image's default command
        last: dict = {}
        while True:
            workdir = Path(node.cluster.workdir) / "pods"
            workdir.mkdir(parents=True, exist_ok=True)
            self.sandbox = PodSandbox(
                name=f"{self.namespace}_{self.name}",
                workdir=workdir,
                mounts=self._mounts(),
                env=self._env(),
            )
            self.record = cri.ContainerRecord(
                id=cri.new_id(),
                name=self.container.get("name", "container"),
                attempt=self.restart_count,
                pod_name=self.name,
                pod_namespace=self.namespace,
                pod_uid=self.uid,
                sandbox_id=self.sandbox_id,
                image=full_image(str(self.container.get("image", ""))),
                image_ref=image_ref(full_image(str(self.container.get("image", "")))),
                created_at=now(),
                log_path=(
                    f"/var/log/pods/{self.namespace}_{self.name}_{self.uid}/"
                    f"{self.container.get('name', 'container')}/{self.restart_count}.log"
                ),
            )
            self.kubelet.add_container(self.record)
            try:
                await self.sandbox.start(argv)
            except SandboxError as exc:
                self.record.exit(now(), 128, "StartError", str(exc))
                code = 128
                self._write_status(
                    self._status(
                        "Failed" if policy == "Never" else "Running",
                        {
                            "terminated": {
                                "exitCode": 128,
                                "reason": "StartError",
                                "message": str(exc),
                                "startedAt": stamp(self.record.created_at),
                                "finishedAt": stamp(now()),
                                "containerID": f"containerd://{self.record.id}",
                            }
                        },
                    )
                )
                if policy == "Never":
                    return
            else:
                self.record.start(now())
                self._write_status(
                    self._status(
                        "Running",
                        {"running": {"startedAt": stamp(self.record.started_at)}},
                        ready=True,
                        last=last,
                    )
                )
                code = await self._wait_collecting_logs()
                reason = "Completed" if code == 0 else "Error"
                self.record.exit(now(), code, reason)
                terminated = {
                    "terminated": {
                        "exitCode": code,
                        "reason": reason,
                        "startedAt": stamp(self.record.started_at),
                        "finishedAt": stamp(self.record.finished_at),
                        "containerID": f"containerd://{self.record.id}",
                    }
                }
                if policy == "Never" or (policy == "OnFailure" and code == 0):
                    await self.sandbox.terminate()
                    self._write_status(
                        self._status("Succeeded" if code == 0 else "Failed", terminated)
                    )
                    return
                last = terminated
            await self.sandbox.terminate()
            self.restart_count += 1
            self._write_status(
                self._status(
                    "Running",
                    {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": (
                                "back-off 10s restarting failed container="
                                f"{self.record.name} pod={self.name}_{self.namespace}({self.uid})"
                            ),
                        }
                    },
                    last=last,
                )
            )
            await asyncio.sleep(
                max(float(getattr(node.cluster.knobs, "kubelet_period", 0.05)), 0.01) * 4
            )

    async def _wait_collecting_logs(self) -> int:
        """Wait for the main process, copying its output to the CRI log as it comes (so
        ``kubectl logs`` and ``crictl logs`` see a running pod's output)."""
        assert self.sandbox is not None
        self._log_offset = 0
        waiter = asyncio.ensure_future(self.sandbox.wait())
        period = max(float(getattr(self.kubelet.node.cluster.knobs, "kubelet_period", 0.05)), 0.01)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=period * 2)
                self._collect_logs()
                if done:
                    return waiter.result()
        finally:
            if not waiter.done():
                waiter.cancel()

    def _collect_logs(self) -> None:
        """New complete lines of the sandbox's container log since the last look."""
        if self.sandbox is None or self.record is None:
            return
        path = getattr(self.sandbox, "log_path", None)
        if path is None or not Path(path).exists():
            return
        with Path(path).open("rb") as handle:
            handle.seek(self._log_offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1
        if self.sandbox.running:
            chunk = chunk[:complete]
        self._log_offset += len(chunk)
        for text in chunk.decode(errors="replace").splitlines():
            line = cri.LogLine(now(), "stdout", text)
            self.record.log.append(line)
            cri.write_pod_log(self.kubelet.node.root, self.record, line)


def on_pod_event(kubelet: Kubelet, event_type: str, pod: dict) -> None:
    """Store listener: start runners for new pods bound here, kill deleted ones."""
    meta = pod.get("metadata") or {}
    key = (meta.get("namespace", ""), meta.get("name", ""))
    runner = kubelet.debug.get(key)
    if event_type == "DELETED":
        if runner is not None and runner.uid == meta.get("uid"):
            del kubelet.debug[key]
            asyncio.get_running_loop().create_task(runner.terminate())
        return
    if runner is not None and runner.uid == meta.get("uid"):
        return
    if runner is not None:  # same name, new object: the old pod's processes go
        asyncio.get_running_loop().create_task(runner.terminate())
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return
    runner = PodRunner(kubelet, key[0], key[1], meta.get("uid", ""), pod)
    kubelet.debug[key] = runner
    runner.start()


def sandbox_of(kubelet: Kubelet, namespace: str, name: str) -> PodSandbox | None:
    runner = kubelet.debug.get((namespace, name))
    if runner is None or runner.sandbox is None or not runner.sandbox.running:
        return None
    return runner.sandbox
