"""The simulated kubelet of one node: static pods (read by tests/kubesim/manifests.py),
their mirror pods and containers, the kube-apiserver's restarts and crash loops.

* A changed static pod UID (``kubernetes.io/config.hash``) is a new pod: the old containers
  are killed, the mirror pod whose ``kubernetes.io/config.mirror`` no longer matches is
  deleted and recreated (pkg/kubelet/pod/mirror_client.go, kubelet.go syncPod).
* Mirror pods are written through an apiserver; while none is up the changes wait.
* Container GC keeps a couple of dead containers per pod container, as
  ``maxPerPodContainer`` does.

Timing is scaled: one tick = ``knobs.kubelet_period``. Pods bound to the node that are not
mirror pods (debug pods) are run by tests/kubesim/podrunner.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tests.kubesim import apiserver, cri
from tests.kubesim.manifests import ManifestSource, StaticPod

if TYPE_CHECKING:
    from tests.kubesim.node import SimNode

log = logging.getLogger(__name__)

RELIST_TICKS = 10
JOURNAL_LINES = 200
KUBELET_PID = 741  # the pid the journal lines carry; the kubelet is not a real process here
DEAD_PER_CONTAINER = 2


def now() -> datetime:
    return datetime.now(timezone.utc)


def pod_conditions(
    *,
    started: str | None,
    sandbox_ready: bool,
    sandbox_since: str | None,
    ready: bool,
    ready_since: str | None,
) -> list[dict[str, Any]]:
    """The five conditions the kubelet reports for a pod, in its order."""

    def condition(kind: str, status: bool, since: str | None) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }

    return [
        condition("PodReadyToStartContainers", sandbox_ready, sandbox_since),
        condition("Initialized", True, started),
        condition("Ready", ready, ready_since),
        condition("ContainersReady", ready, ready_since),
        condition("PodScheduled", True, started),
    ]


def stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- static pod workers


def _backoff_text(attempt: int) -> str:
    seconds = min(10 * 2**attempt, 300)
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def image_ref(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


@dataclass
class StaticPodWorker:
    """One static pod's containers on the node (one container per pod is modelled)."""

    kubelet: Kubelet
    pod: StaticPod
    replacing: bool
    containers: list[cri.ContainerRecord] = field(default_factory=list)
    sandbox_id: str = field(default_factory=cri.new_id)
    started: datetime = field(default_factory=now)
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    ready: bool = False
    ready_since: datetime | None = None
    held: bool = False
    sink: apiserver.AuditSink | None = None
    task: asyncio.Task | None = None
    attempt: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def container_name(self) -> str:
        return self.pod.containers[0].get("name", "container")

    @property
    def image(self) -> str:
        return str(self.pod.containers[0].get("image", ""))

    @property
    def current(self) -> cri.ContainerRecord | None:
        return self.containers[-1] if self.containers else None

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.state == cri.RUNNING

    @property
    def serving(self) -> bool:
        """An apiserver that answers: container running and past its readiness delay."""
        return self.running and self.ready

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"static {self.pod.name}"
        )

    def _new_container(self) -> cri.ContainerRecord:
        record = cri.ContainerRecord(
            id=cri.new_id(),
            name=self.container_name,
            attempt=self.attempt,
            pod_name=self.pod.name,
            pod_namespace=self.pod.namespace,
            pod_uid=self.pod.uid,
            sandbox_id=self.sandbox_id,
            image=self.image,
            image_ref=image_ref(self.image),
            created_at=now(),
            log_path=(
                f"/var/log/pods/{self.pod.namespace}_{self.pod.name}_{self.pod.uid}/"
                f"{self.container_name}/{self.attempt}.log"
            ),
            mounts=[
                {"containerPath": m.mount_path, "hostPath": m.host_path, "readonly": m.read_only}
                for m in apiserver.resolve_mounts(self.pod.manifest, self.pod.containers[0])
            ],
        )
        self.containers.append(record)
        del self.containers[: -DEAD_PER_CONTAINER - 1]
        self.kubelet.add_container(record)
        return record

    def _log(self, record: cri.ContainerRecord, lines: list[str], stream: str = "stderr") -> None:
        for text in lines:
            line = cri.LogLine(now(), stream, text)
            record.log.append(line)
            cri.write_pod_log(self.kubelet.node.root, record, line)

    async def _run(self) -> None:
        knobs = self.kubelet.node.cluster.knobs
        try:
            if self.replacing and self.pod.is_apiserver:
                await asyncio.sleep(float(getattr(knobs, "apiserver_restart_delay", 0.3)))
            if self.pod.is_apiserver:
                await self._run_apiserver()
            else:
                record = self._new_container()
                record.start(now())
                self._log(
                    record,
                    [apiserver.klog_line("I", "server.go:150", f"Starting {self.container_name}")],
                )
                self.waiting_reason = ""
                self.ready = True
                self.ready_since = now()
                self.kubelet.publish(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("static pod worker %s failed", self.pod.name)
            raise

    async def _run_apiserver(self) -> None:
        node = self.kubelet.node
        knobs = node.cluster.knobs
        mount_failures = 0
        while True:
            try:
                started = apiserver.try_start(
                    self.pod.manifest,
                    node.root,
                    node_ip=node.ip,
                    bytes_per_mb=int(getattr(knobs, "bytes_per_mb", 1048576)),
                )
            except apiserver.VolumeSetupFailed as exc:
                # No container is ever created; the kubelet retries the mount.
                self.waiting_reason, self.waiting_message = "ContainerCreating", ""
                self.kubelet.journal(
                    "E",
                    "nestedpendingoperations.go:348",
                    f'Operation for volume of pod "{self.pod.name}" (UID: "{self.pod.uid}") '
                    f"failed. Error: {exc}",
                )
                self.kubelet.publish(self)
                mount_failures += 1
                await self._back_off(self._backoff(min(mount_failures, 3)))
                continue
            except apiserver.ApiserverWontStart as exc:
                record = self._new_container()
                record.start(now())
                self._log(record, exc.log)
                record.exit(now(), 1, "Error", "\n".join(exc.log[-2:]) + "\n")
                self.waiting_reason = "CrashLoopBackOff"
                self.waiting_message = (
                    f"back-off {_backoff_text(self.attempt)} restarting failed "
                    f"container={self.container_name} pod={self.pod.name}_{self.pod.namespace}"
                    f"({self.pod.uid})"
                )
                err = (
                    f'failed to "StartContainer" for "{self.container_name}" with '
                    f'CrashLoopBackOff: "{self.waiting_message}"'
                )
                self.kubelet.journal(
                    "E",
                    "pod_workers.go:1301",
                    f'"Error syncing pod, skipping" err={apiserver.go_quote(err)} '
                    f'pod="{self.pod.namespace}/{self.pod.name}" podUID="{self.pod.uid}"',
                )
                self.kubelet.publish(self)
                await self._back_off(self._backoff(self.attempt))
                self.attempt += 1
                continue
            record = self._new_container()
            record.start(now())
            self._log(record, started.log)
            self.sink = started.sink
            self.waiting_reason = ""
            self.kubelet.publish(self)
            await asyncio.sleep(float(getattr(knobs, "apiserver_ready_delay", 0.0) or 0.0))
            self.ready = True
            self.ready_since = now()
            self.kubelet.publish(self)
            node.apiserver_changed()
            return

    async def _back_off(self, seconds: float) -> None:
        """Wait out a back-off; a kubelet restart forgets back-offs and retries at once."""
        self.wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)

    def _backoff(self, attempt: int) -> float:
        base = max(
            float(getattr(self.kubelet.node.cluster.knobs, "apiserver_restart_delay", 0.3)), 0.05
        )
        return min(base * 2**attempt, base * 8)

    def flush_stdout(self) -> None:
        """Events of --audit-log-path=- go to the container log, as they do for real."""
        record = self.current
        if self.sink is None or record is None or not self.sink.to_stdout:
            return
        lines, self.sink.to_stdout = self.sink.to_stdout, []
        self._log(record, lines, "stdout")

    async def stop(self, *, exit_code: int = 0, reason: str = "Completed") -> None:
        """Kill the pod's container (manifest changed or removed, or a fault)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        was_serving = self.serving
        record = self.current
        if record is not None and record.state == cri.RUNNING:
            record.exit(now(), exit_code, reason)
        self.ready = False
        self.sink = None
        if was_serving:
            self.kubelet.node.apiserver_changed()

    async def hold(self) -> None:
        """The stop_apiserver fault: the container dies and is not restarted."""
        self.held = True
        await self.stop(exit_code=137, reason="Error")
        self.waiting_reason = "CrashLoopBackOff"
        self.waiting_message = "stopped by the simulator's stop_apiserver fault"
        self.kubelet.publish(self)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self.attempt += 1
        self.replacing = False
        self.start()

    # -- mirror pod ----------------------------------------------------------------------

    def container_status(self) -> dict[str, Any]:
        record = self.current
        status: dict[str, Any] = {
            "name": self.container_name,
            "image": self.image,
            "imageID": "",
            "ready": self.serving if self.pod.is_apiserver else self.ready and self.running,
            "restartCount": self.attempt if record else 0,
            "started": self.running,
        }
        if record is not None:
            status["containerID"] = f"containerd://{record.id}"
            status["imageID"] = f"{self.image.rpartition(':')[0]}@{record.image_ref}"
        if record is not None and record.state == cri.RUNNING:
            status["state"] = {"running": {"startedAt": stamp(record.started_at)}}
        else:
            waiting: dict[str, Any] = {"reason": self.waiting_reason or "ContainerCreating"}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            status["state"] = {"waiting": waiting}
        previous = [c for c in self.containers if c.state == cri.EXITED]
        if previous:
            last = previous[-1]
            terminated: dict[str, Any] = {
                "containerID": f"containerd://{last.id}",
                "exitCode": last.exit_code,
                "finishedAt": stamp(last.finished_at),
                "reason": last.reason,
                "startedAt": stamp(last.started_at),
            }
            if last.message:
                terminated["message"] = last.message
            status["lastState"] = {"terminated": terminated}
        else:
            status["lastState"] = {}
        return status

    def mirror_object(self, node_uid: str | None) -> dict:
        node = self.kubelet.node
        pod = copy.deepcopy(self.pod.manifest)
        meta = pod.setdefault("metadata", {})
        meta.pop("creationTimestamp", None)
        meta["name"] = self.pod.name
        meta["namespace"] = self.pod.namespace
        annotations = meta.setdefault("annotations", {}) or {}
        meta["annotations"] = annotations
        annotations["kubernetes.io/config.hash"] = self.pod.uid
        annotations["kubernetes.io/config.mirror"] = self.pod.uid
        annotations["kubernetes.io/config.seen"] = self.started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        annotations["kubernetes.io/config.source"] = "file"
        owner: dict[str, Any] = {
            "apiVersion": "v1",
            "controller": True,
            "kind": "Node",
            "name": node.name,
        }
        if node_uid:
            owner["uid"] = node_uid
        meta["ownerReferences"] = [owner]
        spec = pod.setdefault("spec", {})
        spec["nodeName"] = node.name
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        tolerations = spec.setdefault("tolerations", [])
        if {"effect": "NoExecute", "operator": "Exists"} not in tolerations:
            tolerations.append({"effect": "NoExecute", "operator": "Exists"})
        pod["status"] = self.pod_status()
        return pod

    def pod_status(self) -> dict[str, Any]:
        node = self.kubelet.node
        ready = self.serving if self.pod.is_apiserver else self.ready and self.running
        since = stamp(self.ready_since or self.started)
        created = any(c for c in self.containers)
        return {
            "phase": "Running" if created else "Pending",
            "conditions": pod_conditions(
                started=stamp(self.started),
                sandbox_ready=True,
                sandbox_since=stamp(self.started),
                ready=ready,
                ready_since=since,
            ),
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "podIP": node.ip,
            "podIPs": [{"ip": node.ip}],
            "startTime": stamp(self.started),
            "qosClass": "Burstable",
            "containerStatuses": [self.container_status()],
        }


# ---------------------------------------------------------------- the kubelet


class Kubelet:
    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.source = ManifestSource(node.root, node.name)
        self.static: dict[str, StaticPodWorker] = {}
        self.containers: list[cri.ContainerRecord] = []
        self.broken = False
        self.delay = 0.0
        self.needs_restart = False
        self._task: asyncio.Task | None = None
        self._sync_lock = asyncio.Lock()
        self._restart_requested = False
        self._republish = False
        self._api_seen = False
        self._mirrors_stale = False
        self._flush_armed = False
        self.debug: dict[tuple[str, str], Any] = {}
        self.restarts = 0
        self.ticks = 0  # loop passes so far (tests wait on it instead of sleeping)
        self.journal_lines: deque[str] = deque(maxlen=JOURNAL_LINES)
        self._reported_errors: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.node.cluster.store.add_listener(self._on_store_event)
        await self.sync(relist=True)
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"kubelet {self.node.name}"
        )

    async def stop(self) -> None:
        self.node.cluster.store.remove_listener(self._on_store_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for worker in list(self.static.values()):
            await worker.stop()
        for runner in list(self.debug.values()):
            await runner.terminate()

    def _knob(self, name: str, default: Any) -> Any:
        return getattr(self.node.cluster.knobs, name, default)

    @property
    def is_broken(self) -> bool:
        return self.broken or bool(self._knob("kubelet_broken", False))

    @property
    def must_restart_to_notice(self) -> bool:
        return self.needs_restart or bool(self._knob("kubelet_needs_restart", False))

    async def _loop(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(max(float(self._knob("kubelet_period", 0.05)), 0.005))
            self.ticks += 1
            if self.is_broken:
                continue
            if self.delay:
                await asyncio.sleep(self.delay)
            tick += 1
            try:
                restart, self._restart_requested = self._restart_requested, False
                if restart:
                    await self.sync(relist=True, force=True)
                else:
                    await self.sync(relist=tick % RELIST_TICKS == 0)
                for worker in self.static.values():
                    worker.flush_stdout()
            except Exception:
                log.exception("kubelet %s sync failed", self.node.name)

    def journal(self, severity: str, source: str, message: str) -> None:
        """A line of the kubelet's journal (what ``systemctl status kubelet`` ends with)."""
        moment = now()
        line = apiserver.klog_line(severity, source, message, moment, pid=KUBELET_PID)
        self.journal_lines.append(
            f"{moment:%b %d %H:%M:%S} {self.node.name} kubelet[{KUBELET_PID}]: {line}"
        )

    def _report_manifest_errors(self) -> None:
        for source, error in self.source.errors.items():
            if self._reported_errors.get(source) != error:
                self.journal(
                    "E",
                    "file.go:187",
                    f'"Could not process manifest file" err={apiserver.go_quote(error)} '
                    f'path="{source}"',
                )
        self._reported_errors = dict(self.source.errors)

    def request_restart(self) -> None:
        """``systemctl restart kubelet``: re-read the manifests on the next tick; the new
        kubelet process has no back-off state, so crash-looping containers retry at once."""
        self.restarts += 1
        self._restart_requested = True
        for worker in self.static.values():
            worker.wake.set()

    async def sync(self, *, relist: bool, force: bool = False) -> None:
        async with self._sync_lock:
            if not self.must_restart_to_notice or force:
                if relist:
                    self.source.relist()
                else:
                    self.source.watch_events()
            self._report_manifest_errors()
            await self._reconcile()
            self._flush_stale_mirrors()
            if self._republish:
                self._republish = False
                for worker in self.static.values():
                    self.publish(worker)

    async def _reconcile(self) -> None:
        desired = {pod.name: pod for pod in self.source.pods.values()}
        for name, worker in list(self.static.items()):
            wanted = desired.get(name)
            if wanted is None or wanted.uid != worker.pod.uid:
                del self.static[name]
                await worker.stop()
                self._delete_mirror(worker)
                if wanted is not None:
                    self._start_worker(wanted, replacing=True)
        for name, pod in desired.items():
            if name not in self.static:
                self._start_worker(pod, replacing=False)

    def _start_worker(self, pod: StaticPod, *, replacing: bool) -> None:
        worker = StaticPodWorker(self, pod, replacing)
        self.static[pod.name] = worker
        self.publish(worker)
        worker.start()

    # -- containers ----------------------------------------------------------------------

    def add_container(self, record: cri.ContainerRecord) -> None:
        """Track a new container; dead ones beyond ``DEAD_PER_CONTAINER`` per (pod, name) go,
        with their log files, as the kubelet's container GC removes them
        (``maxPerPodContainer``, run every minute: a short crash loop shows a few)."""
        self.containers.append(record)
        dead = [
            r
            for r in self.containers
            if r.state == cri.EXITED and r.pod_uid == record.pod_uid and r.name == record.name
        ]
        for old in dead[: max(len(dead) - DEAD_PER_CONTAINER, 0)]:
            self.containers.remove(old)
            if old.log_path:
                (self.node.root / old.log_path.lstrip("/")).unlink(missing_ok=True)

    # -- mirror pods ---------------------------------------------------------------------

    def _node_uid(self) -> str | None:
        obj = self.node.cluster.store.get("nodes", None, self.node.name)
        return obj["metadata"].get("uid") if obj else None

    def _api_reachable(self) -> bool:
        """Mirror pods are written through an apiserver: with none up (a single control plane
        restarting) the kubelet's changes wait, and land a tick after one is back - so for a
        moment after /readyz turns OK the old mirror pod, old hash included, is still what
        the API shows. Before the first apiserver ever came up (cluster bootstrap) writes go
        straight through, as if the cluster had been running for a while."""
        up = getattr(self.node.cluster, "apiservers_up", None)
        if up is None or up():
            self._api_seen = True
            return True
        return not self._api_seen

    def _flush_stale_mirrors(self) -> None:
        if not self._mirrors_stale or not self._api_reachable():
            self._flush_armed = False
            return
        if not self._flush_armed:
            self._flush_armed = True  # the kubelet's next pod sync, one tick later
            return
        self._mirrors_stale = self._flush_armed = False
        store = self.node.cluster.store
        for pod in store.list("pods"):
            annotations = pod["metadata"].get("annotations") or {}
            mine = (pod.get("spec") or {}).get("nodeName") == self.node.name
            orphan = pod["metadata"]["name"] not in self.static
            if mine and orphan and "kubernetes.io/config.mirror" in annotations:
                store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for worker in list(self.static.values()):
            self.publish(worker)

    def publish(self, worker: StaticPodWorker) -> None:
        """Create or refresh the worker's mirror pod (delete + create when its hash changed)."""
        if self.static.get(worker.pod.name) is not worker:
            return
        if self._mirrors_stale or not self._api_reachable():
            self._mirrors_stale = True  # the next sync after the API is back writes it
            return
        store = self.node.cluster.store
        wanted = worker.mirror_object(self._node_uid())
        existing = store.get("pods", worker.pod.namespace, worker.pod.name)
        if existing is not None:
            mirror = (existing["metadata"].get("annotations") or {}).get(
                "kubernetes.io/config.mirror"
            )
            if mirror == worker.pod.uid:
                existing["status"] = wanted["status"]
                store.update("pods", existing)
                return
            store.delete("pods", worker.pod.namespace, worker.pod.name)
        store.create("pods", wanted)

    def _delete_mirror(self, worker: StaticPodWorker) -> None:
        if self._mirrors_stale or not self._api_reachable():
            self._mirrors_stale = True  # the next sync after the API is back writes it
            return
        store = self.node.cluster.store
        existing = store.get("pods", worker.pod.namespace, worker.pod.name)
        if existing is None:
            return
        mirror = (existing["metadata"].get("annotations") or {}).get("kubernetes.io/config.mirror")
        if mirror == worker.pod.uid:
            store.delete("pods", worker.pod.namespace, worker.pod.name)

    def _on_store_event(self, event_type: str, resource: str, obj: dict) -> None:
        if resource != "pods" or (obj.get("spec") or {}).get("nodeName") != self.node.name:
            return
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if "kubernetes.io/config.mirror" in annotations:
            if event_type == "DELETED":
                # A deleted mirror pod comes back: the static pod is still running.
                self._republish = True
            return
        from tests.kubesim.podrunner import on_pod_event  # local: keeps import cycles out

        on_pod_event(self, event_type, obj)

    # -- views for the node --------------------------------------------------------------

    @property
    def apiserver(self) -> StaticPodWorker | None:
        for worker in self.static.values():
            if worker.pod.is_apiserver:
                return worker
        return None

    def run_crictl(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        return cri.run_crictl(self.containers, argv)

    def run_systemctl(self, argv: list[str]) -> tuple[int, bytes, bytes]:
        return cri.run_systemctl(
            argv,
            active=not self.is_broken,
            restart=self.request_restart,
            journal=list(self.journal_lines)[-10:],
        )
