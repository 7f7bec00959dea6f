"""The client side of `agent.sh`: run its commands through a NodeShell and read their answers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from kubectl_audit.errors import NodeError
from kubectl_audit.node.shell import CommandResult, NodeShell

MANIFESTS_DIR = "/etc/kubernetes/manifests"
APISERVER_MANIFEST = f"{MANIFESTS_DIR}/kube-apiserver.yaml"
# kubeadm keeps its own upgrade backups here too: outside the folder the kubelet watches.
TMP_DIR = "/etc/kubernetes/tmp"

EXIT_LOCKED = 3
EXIT_CHANGED = 4


class NodeLockedError(NodeError):
    """Another kubectl-audit run holds the node's lock."""


class NodeChangedError(NodeError):
    """The manifest changed between reading it and preparing the change."""


def agent_script() -> str:
    return resources.files("kubectl_audit.node").joinpath("agent.sh").read_text()


def parse_reply(stdout: bytes) -> dict[str, list[str]]:
    """`key<TAB>value` lines -> {key: [values...]} (a key may repeat)."""
    reply: dict[str, list[str]] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            reply.setdefault(key, []).append(value)
    return reply


def _first(reply: dict[str, list[str]], key: str, default: str = "") -> str:
    values = reply.get(key)
    return values[0] if values else default


# Runs the agent from the script sent on stdin: exec URLs stay short (proxies in front of
# API servers often cap request lines at 8 KiB) and nothing is written to the node for it.
_LOADER = 'exec sh -c "$(head -c "$0")" kubectl-audit-agent "$@"'
# Writes stdin (exactly SIZE bytes) to RUNDIR/NAME, atomically, creating RUNDIR (0700).
_UPLOAD = (
    'umask 077 && mkdir -p "$0" && chmod 700 "$0" && head -c "$1" > "$0/.$2.tmp" '
    '&& mv -f "$0/.$2.tmp" "$0/$2"'
)


@dataclass(frozen=True)
class NodeInspection:
    """What is on the node before we change anything."""

    manifest: bytes | None
    manifest_sha256: str
    manifest_dir_files: tuple[str, ...]
    policy_sha256: str  # "absent" when there is none
    log_dir_exists: bool
    lock_owner: str | None
    has_crictl: bool
    has_systemctl: bool
    running_apiserver: str

    def stray_manifest_files(self) -> tuple[str, ...]:
        """Non-hidden files the kubelet would also run that are not control-plane manifests."""
        expected = {
            "kube-apiserver.yaml",
            "kube-controller-manager.yaml",
            "kube-scheduler.yaml",
            "etcd.yaml",
        }
        return tuple(name for name in self.manifest_dir_files if name not in expected)


@dataclass(frozen=True)
class CommitResult:
    state: Literal[
        "committed",
        "rolled-back",
        "failed",
        "running",
        "not-started",
        "died-before-swap",
        "died-after-swap",
    ]
    container: str = ""
    old_apiserver_running: bool | None = None
    remedies: tuple[str, ...] = ()
    failed_container: str = ""
    failed_log: str = ""
    reason: str = ""
    progress_log: str = ""


class NodeAgent:
    """Runs agent.sh commands on one node. Every path is passed as an argument, never
    interpolated into shell text; file contents travel on stdin."""

    def __init__(self, shell: NodeShell, *, timeout: float = 60.0) -> None:
        self.shell = shell
        self.timeout = timeout
        self._script = agent_script().encode()

    @property
    def node(self) -> str:
        return self.shell.node

    def _run(self, *args: str, via: str | None = None) -> CommandResult:
        if via is None:
            argv = ["sh", "-c", _LOADER, str(len(self._script)), *args]
            return self.shell.run(argv, timeout=self.timeout, stdin=self._script)
        return self.shell.run(["sh", via, *args], timeout=self.timeout)

    def upload(self, rundir: str, name: str, data: bytes) -> None:
        """Put `data` at RUNDIR/NAME on the node (0600), creating RUNDIR (0700)."""
        argv = ["sh", "-c", _UPLOAD, rundir, str(len(data)), name]
        result = self.shell.run(argv, timeout=self.timeout, stdin=data)
        if not result.ok:
            error = result.stderr.decode("utf-8", "replace").strip()
            raise NodeError(f"cannot write {rundir}/{name} on {self.node}: {error}")

    def _check(self, result: CommandResult, what: str) -> dict[str, list[str]]:
        reply = parse_reply(result.stdout)
        if result.ok:
            return reply
        message = _first(reply, "error") or result.stderr.decode("utf-8", "replace").strip()
        text = f"{what} on {self.node} failed: {message or f'exit code {result.exit_code}'}"
        if result.exit_code == EXIT_LOCKED:
            raise NodeLockedError(
                f"{self.node}: {message}",
                hint="wait for the other run to finish; if it died, `kubectl audit cleanup` "
                "removes locks older than the longest possible run",
            )
        if result.exit_code == EXIT_CHANGED:
            raise NodeChangedError(f"{self.node}: {message}")
        raise NodeError(text)

    def inspect(self, *, policy_path: str, log_path: str) -> NodeInspection:
        reply = self._check(
            self._run("inspect", APISERVER_MANIFEST, policy_path, log_path, TMP_DIR), "inspect"
        )
        manifest_b64 = _first(reply, "manifest_b64")
        return NodeInspection(
            manifest=base64.b64decode(manifest_b64) if manifest_b64 else None,
            manifest_sha256=_first(reply, "manifest_sha256", "absent"),
            manifest_dir_files=tuple(reply.get("manifest_dir_file", [])),
            policy_sha256=_first(reply, "policy_sha256", "absent"),
            log_dir_exists=_first(reply, "log_dir_exists") == "yes",
            lock_owner=_first(reply, "lock") or None,
            has_crictl=_first(reply, "crictl") == "yes",
            has_systemctl=_first(reply, "systemctl") == "yes",
            running_apiserver=_first(reply, "running_apiserver"),
        )

    def install(self, rundir: str) -> None:
        """Put the agent in RUNDIR, where the detached commit worker runs it from."""
        self.upload(rundir, "agent.sh", self._script)

    def discard(self, rundir: str) -> None:
        self._check(self._run("discard", rundir, via=f"{rundir}/agent.sh"), "discard")

    def prepare(
        self,
        rundir: str,
        *,
        token: str,
        expected_sha256: str,
        new_manifest: str,
        policy_path: str,
        policy: bytes | None,
        log_dir: str,
    ) -> None:
        """Lock the node, back up, write the policy, create the log dir, stage the manifest."""
        self.upload(rundir, "new-manifest.yaml", new_manifest.encode())
        if policy is not None:
            self.upload(rundir, "policy.new", policy)
        self._check(
            self._run(
                "prepare",
                rundir,
                token,
                APISERVER_MANIFEST,
                expected_sha256,
                policy_path,
                log_dir,
                via=f"{rundir}/agent.sh",
            ),
            "preparing the change",
        )

    def abort(self, rundir: str, *, policy_path: str) -> None:
        """Undo a prepare whose commit has not started; harmless if prepare never ran."""
        self._check(
            self._run("abort", rundir, APISERVER_MANIFEST, policy_path),
            "undoing the prepared change",
        )

    def commit(
        self, rundir: str, *, policy_path: str, timeout: int, settle: int, kubelet_period: int
    ) -> None:
        self._check(
            self._run(
                "commit",
                rundir,
                APISERVER_MANIFEST,
                policy_path,
                str(timeout),
                str(settle),
                str(kubelet_period),
                via=f"{rundir}/agent.sh",
            ),
            "starting the commit",
        )

    def result(self, rundir: str) -> CommitResult:
        result = self._run("result", rundir, via=f"{rundir}/agent.sh")
        reply = self._check(result, "reading the result")
        old = _first(reply, "old_apiserver_running")
        return CommitResult(
            state=_first(reply, "state", "not-started"),  # type: ignore[arg-type]
            container=_first(reply, "container"),
            old_apiserver_running=None if not old else old == "yes",
            remedies=tuple(r for r in _first(reply, "remedies").split(",") if r),
            failed_container=_first(reply, "failed_container"),
            failed_log=_decode(_first(reply, "failed_log_b64")),
            reason=_first(reply, "reason"),
            progress_log=_decode(_first(reply, "log_b64")),
        )

    def cleanup_locks(self, max_age_seconds: int) -> str | None:
        reply = self._check(
            self._run("cleanup-locks", TMP_DIR, str(max_age_seconds)), "cleaning up locks"
        )
        return _first(reply, "removed_lock") or None


def _decode(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8", "replace") if b64 else ""
