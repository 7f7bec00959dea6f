"""The processes of one simulated pod: a private mount + PID namespace around a busybox root.

One pod is one `unshare --pid --mount --propagation private` shell whose first child is the
pod's PID 1: it sets up the pod's root file system and then becomes the container's main
process inside a `chroot`:

- `<pod dir>/rootfs`: the "busybox image": an overlay of one busybox userland shared by all
  pods under the same work dir (read-only lower layer) and the pod's own upper dir, like a
  container's image layers and writable layer (a private copy where overlayfs is missing);
- `/proc`: a proc of the pod's own PID namespace; `/dev`: a tmpfs with the usual device
  nodes, as a container runtime gives an unprivileged container;
- every `Mount` bind-mounted (recursively, as runc does for hostPath volumes) at its
  target, read-only where asked. A mounted directory that is itself a root file system
  (has `dev/` and `proc/`, like a node root) gets the pod's /dev and /proc mounted on
  those, as a recursive bind of a real node's `/` carries the node's /dev and /proc: so
  `chroot /host sh -c '... >/dev/null'` works as on a node.

Propagation is private, so nothing mounted here ever shows in the host's mount table; the
mounts vanish with the namespace when its last process exits.

`exec` enters the same namespaces (`nsenter --mount --pid`) and chroots into the pod's root
as seen from inside them, so it sees the same mounts and runs in the pod's PID namespace.
(Not `nsenter --root`: PID 1 reports ready just before its own chroot, so its root may
still be the host's for a moment.)

Killing PID 1 makes the kernel kill every process of the namespace, `setsid`/`nohup` ones
included: that is what makes a detached process outlive its exec stream but not its pod,
as with a real container's cgroup. Every process we start is also tied to its parent with
PR_SET_PDEATHSIG (`setpriv --pdeathsig`), so a crashed test run cannot leave pods behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import stat
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tests.kubesim.userland import BUSYBOX, install_busybox

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"  # util-linux
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# `unshare --pid` without --fork: the first process this shell forks becomes PID 1 of the
# new PID namespace, so it forks PID 1 before anything else. It is this shell's child, so
# `wait` gets PID 1's true status (util-linux 2.38's `unshare --fork` turns a child killed by
# SIGKILL into exit status 1). PID 1 is tied to this shell by PR_SET_PDEATHSIG.
# $0 is the busybox binary; arguments: util-linux setpriv's path (busybox sh would run its
# own applet of that name, which lacks --pdeathsig), the PID 1 script, then its arguments.
_POD_PARENT = r"""
setpriv=$1; pid1=$2; shift 2
"$setpriv" --pdeathsig SIGKILL "$0" sh -c "$pid1" pod-init "$@" &
echo "pid $!"
exec >/dev/null
wait $!
"""

# Runs as PID 1 of the new namespaces, before the chroot; its helpers (busybox mount, cp...)
# run as its children inside the new PID namespace, so the /proc it mounts is the pod's.
# Arguments: rootfs, log file, /dev skeleton, overlay lower dir ("-": rootfs is a plain
# directory), upper dir, work dir, mount count, then per mount (source, target, "ro"|"rw",
# "root"|"-"), then the container's argv.
_POD_INIT = r"""
set -e
root=$1; log=$2; dev=$3; lower=$4; upper=$5; work=$6; n=$7; shift 7
if [ "$lower" != - ]; then
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
fi
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$root/dev"
cp -a "$dev/." "$root/dev/"
while [ "$n" -gt 0 ]; do
    src=$1; dst=$root$2; mode=$3; kind=$4; shift 4
    if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "${dst%/*}"; touch "$dst"; fi
    mount --rbind "$src" "$dst"
    if [ "$kind" = root ]; then
        mount --bind "$root/dev" "$dst/dev"
        mount --bind "$root/proc" "$dst/proc"
    fi
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst"; fi
    n=$((n - 1))
done
echo ready
cd /
exec chroot "$root" "$@" >>"$log" 2>&1 </dev/null
"""


USERLAND_TEMPLATE = ".kubesim-userland"
_template_lock = threading.Lock()


def _overlay_available() -> bool:
    try:
        return "\toverlay\n" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


@dataclass(frozen=True)
class UserlandTemplate:
    root: Path  # a busybox root: the pods' read-only overlay lower layer
    dev: Path  # a /dev skeleton (device nodes, fd links) copied onto each pod's /dev tmpfs
    overlay: bool  # False: overlayfs is unavailable, each pod gets its own copy of `root`


# A container runtime's minimal /dev: name -> (major, minor); plus the /proc/self/fd links.
_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
            "urandom": (1, 9), "tty": (5, 0)}  # fmt: skip
_DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
              "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}  # fmt: skip


def userland_template(workdir: Path) -> UserlandTemplate:
    """The busybox userland and /dev skeleton shared by the pods under `workdir`, built once.

    Installing 268 applet links per pod costs 10-50 ms on this ext4 and six mknod processes
    30-60 ms under load; an overlay mount and one `cp -a` cost one process each. A pod's
    writes land in its own upper dir, like a container's writable layer.
    """
    template = Path(workdir) / USERLAND_TEMPLATE
    # overlay options cannot quote ',' or ':' in a lowerdir path
    overlay = _overlay_available() and not any(c in str(template) for c in ",:")
    with _template_lock:
        if not (template / "ready").exists():
            staging = Path(workdir) / f"{USERLAND_TEMPLATE}-{secrets.token_hex(4)}"
            install_busybox(staging / "root")
            dev = staging / "dev"
            dev.mkdir(mode=0o755)
            for name, (major, minor) in _DEVICES.items():
                os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
                os.chmod(dev / name, 0o666)  # mknod's mode is masked by the umask
            (dev / "shm").mkdir()
            (dev / "shm").chmod(0o1777)
            for name, target in _DEV_LINKS.items():
                os.symlink(target, dev / name)
            (staging / "ready").touch()
            try:
                staging.rename(template)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)  # another process was first
    return UserlandTemplate(root=template / "root", dev=template / "dev", overlay=overlay)


@dataclass(frozen=True)
class _Child:
    transport: asyncio.SubprocessTransport
    group: bool  # the process leads its own process group: kill the group


# Every process the sandboxes started, per event loop, until asyncio has seen it exit.
# asyncio.subprocess.Process closes its transport only once the process exited AND every pipe
# reached EOF. A process that is killed without being waited for (an exec cut by an outage,
# a pod start cancelled by shutdown) or whose pipe a detached grandchild still holds keeps an
# open transport; if the loop closes first, the garbage collector finalises it later, at a
# random point of the test run: ResourceWarning, "RuntimeError: Event loop is closed" from
# BaseSubprocessTransport.__del__ (and on Python 3.11.7, when that happens inside ast.parse,
# pytest crashes with "AST constructor recursion depth mismatch"). reap_children() ends them
# all before the loop stops.
_children: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[asyncio.subprocess.Process, _Child]
] = weakref.WeakKeyDictionary()


async def _spawn(
    *argv: str, group: bool, limit: int = 1 << 16, **kwargs: Any
) -> asyncio.subprocess.Process:
    """asyncio.create_subprocess_exec, keeping the transport so that it can be closed."""
    loop = asyncio.get_running_loop()
    # What create_subprocess_exec does, minus dropping the transport.
    transport, protocol = await loop.subprocess_exec(
        lambda: asyncio.subprocess.SubprocessStreamProtocol(limit=limit, loop=loop),
        *argv,
        start_new_session=group,
        **kwargs,
    )
    process = asyncio.subprocess.Process(transport, protocol, loop)
    children = _children.setdefault(loop, {})
    for done in [p for p, child in children.items() if _reaped(p, child)]:
        del children[done]
    children[process] = _Child(transport, group)
    return process


def _reaped(process: asyncio.subprocess.Process, child: _Child) -> bool:
    # The stream protocol closes the transport once the exit and every pipe's EOF were seen.
    return process.returncode is not None and child.transport.is_closing()


def _kill(process: asyncio.subprocess.Process, child: _Child) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if child.group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)


def release(process: asyncio.subprocess.Process) -> None:
    """Kill `process` (its group if it leads one) and close its pipes and transport now.

    For a process nobody will wait for: the running loop sees its exit and finishes it;
    reap_children() waits for that at shutdown. Closing our ends of the pipes matters when a
    detached grandchild holds them: EOF would only come when that grandchild dies.
    """
    child = _children.get(asyncio.get_running_loop(), {}).get(process)
    if child is None:
        return
    _kill(process, child)
    child.transport.close()


async def reap_children(timeout: float = 10.0) -> None:
    """Kill every process the sandboxes started on this loop that is still running, close
    their transports and wait until asyncio has seen each exit (the loop may close after)."""
    loop = asyncio.get_running_loop()
    children = _children.pop(loop, {})
    for process, child in children.items():
        _kill(process, child)
        child.transport.close()
    if not children:
        return
    try:
        await asyncio.wait_for(asyncio.gather(*(process.wait() for process in children)), timeout)
    except asyncio.TimeoutError:
        alive = [p.pid for p in children if p.returncode is None]
        raise SandboxError(f"processes did not die on SIGKILL: {alive}") from None
    # Pipe transports report connection_lost from callbacks scheduled by close().
    await asyncio.sleep(0)


class SandboxError(RuntimeError):
    """The pod's sandbox cannot be set up, or an operation needs a running pod."""


class ExecutableNotFound(SandboxError):
    """argv[0] does not resolve inside the pod: the runtime refuses to start the process."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


def exit_code_of(returncode: int) -> int:
    """A container runtime's exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _validated_target(target: str) -> PurePosixPath:
    path = PurePosixPath(target)
    if not path.is_absolute() or ".." in path.parts or path == PurePosixPath("/"):
        raise SandboxError(f"mount target {target!r} must be an absolute path below / without '..'")
    return path


class PodSandbox:
    """The processes and root file system of one pod (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        workdir: Path,
        mounts: Sequence[Mount],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "pod"
        self.dir = Path(workdir) / f"sandbox-{safe}-{secrets.token_hex(4)}"
        self.rootfs = self.dir / "rootfs"
        self.log_path = self.dir / "container.log"
        self._upper = self.dir / "upper"
        self._work = self.dir / "work"
        self._lower: Path | None = None  # the shared userland template, when overlaid
        self._dev: Path | None = None
        self.mounts = tuple(sorted(mounts, key=lambda m: len(_validated_target(m.target).parts)))
        self.env = {"PATH": DEFAULT_PATH, "HOSTNAME": name[:63], "HOME": "/root"}
        self.env.update(env or {})
        self._init: asyncio.subprocess.Process | None = None
        self._init_pid: int | None = None
        self._exit_code: int | None = None
        self._removed = False
        self._terminating = False  # terminate() was called: a start in flight must not finish
        self._start_finished: asyncio.Event | None = None  # set while start() runs

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, argv: Sequence[str]) -> None:
        """Set up the pod root and start `argv` as the pod's main process (its PID 1)."""
        if self._init is not None or self._terminating:
            raise SandboxError(f"sandbox {self.name} was already started or terminated")
        if not argv:
            raise SandboxError("a container needs a command")
        for mount in self.mounts:
            if not mount.source.exists():
                raise SandboxError(f"mount source {mount.source} for {mount.target} does not exist")
        self._start_finished = asyncio.Event()
        try:
            await asyncio.to_thread(self._prepare_rootfs)
            if not self._terminating:
                await self._start_init(argv)
            if self._terminating:
                raise SandboxError(f"pod {self.name} was terminated while starting")
        except BaseException:
            # Also on cancellation (pod deleted while starting): no process, no directory left.
            self._kill_now()
            shutil.rmtree(self.dir, ignore_errors=True)
            self._removed = True
            raise
        finally:
            self._start_finished.set()

    async def _start_init(self, argv: Sequence[str]) -> None:
        self._check_executable(argv[0])
        mount_args: list[str] = []
        for mount in self.mounts:
            source = mount.source.resolve()
            mount_args += [
                str(source),
                str(_validated_target(mount.target)),
                "ro" if mount.read_only else "rw",
                "root" if (source / "dev").is_dir() and (source / "proc").is_dir() else "-",
            ]
        self._init = await _spawn(
            SETPRIV, "--pdeathsig", "SIGKILL",
            UNSHARE, "--pid", "--mount", "--propagation", "private",
            str(BUSYBOX), "sh", "-c", _POD_PARENT, str(BUSYBOX), SETPRIV, _POD_INIT,
            str(self.rootfs), str(self.log_path), str(self._dev), str(self._lower or "-"),
            str(self._upper), str(self._work), str(len(self.mounts)), *mount_args, *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env, "PATH": f"{DEFAULT_PATH}:{os.environ.get('PATH', '')}"},
            group=False,
        )  # fmt: skip
        try:
            self._init_pid = await asyncio.wait_for(self._read_ready(), START_TIMEOUT)
        except asyncio.TimeoutError:
            await self._kill_and_reap()
            raise SandboxError(f"pod {self.name}: sandbox setup timed out") from None
        if self._init_pid is None:
            await self._kill_and_reap()
            assert self._init.stderr is not None
            err = (await self._init.stderr.read()).decode(errors="replace").strip()
            raise SandboxError(f"pod {self.name}: sandbox setup failed: {err or 'no output'}")

    async def _read_ready(self) -> int | None:
        """PID 1's host PID once it is set up and about to run the command; None if it failed."""
        assert self._init is not None and self._init.stdout is not None
        pid, ready = None, False
        while pid is None or not ready:
            line = await self._init.stdout.readline()
            if not line:
                return None
            if line.startswith(b"pid "):
                pid = int(line.split()[1])
            elif line.strip() == b"ready":
                ready = True
        return pid

    async def wait(self) -> int:
        """The main process's exit code (128+N if killed by signal N)."""
        if self._init is None:
            raise SandboxError(f"sandbox {self.name} was never started")
        if self._exit_code is None:
            returncode = await self._init.wait()
            self._exit_code = exit_code_of(returncode)
        return self._exit_code

    @property
    def running(self) -> bool:
        return self._init is not None and self._init.returncode is None

    @property
    def pid(self) -> int | None:
        """Host PID of the pod's PID 1 (the main process), while it runs."""
        return self._init_pid if self.running else None

    async def terminate(self) -> None:
        """Kill every process of the pod (setsid'ed ones too) and remove its directory."""
        self._terminating = True
        if self._start_finished is not None:
            await asyncio.wait_for(self._start_finished.wait(), START_TIMEOUT + STOP_TIMEOUT)
        if self._init is not None and self._init.returncode is None:
            await self._kill_and_reap()
        if not self._removed:
            # The pod's mounts only exist in its own (now empty) mount namespace: on the
            # host side rootfs/host is an empty directory, so this never reaches a node root.
            await asyncio.to_thread(shutil.rmtree, self.dir, True)
            self._removed = True

    def _kill_now(self) -> None:
        # SIGKILL to the namespace's PID 1 kills the whole namespace; killing its parent
        # shell kills PID 1 through PR_SET_PDEATHSIG if we do not know PID 1 yet.
        if self._init is None or self._init.returncode is not None:
            return
        for pid in (self._init_pid, self._init.pid):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    async def _kill_and_reap(self) -> None:
        assert self._init is not None
        self._kill_now()
        try:
            await asyncio.wait_for(self._init.wait(), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            raise SandboxError(f"pod {self.name}: processes did not die on SIGKILL") from None
        if self._exit_code is None:
            self._exit_code = exit_code_of(self._init.returncode or 0)

    # -- exec ------------------------------------------------------------------------------

    async def exec(
        self, argv: Sequence[str], *, stdin: bool, tty: bool = False
    ) -> asyncio.subprocess.Process:
        """Start `argv` in the pod (same mounts, same PID namespace), stdout/stderr piped.

        With `tty`, stderr goes to stdout, as both go to the one terminal (no pty is
        allocated: line discipline, echo and window size are not modelled).
        The process leads a new process group (on the host side: nsenter and the command);
        killing that group ends the exec but not what the command detached with setsid.
        """
        pid = self.pid
        if pid is None:
            raise SandboxError(f"pod {self.name} is not running")
        self._check_executable(argv[0] if argv else "")
        return await _spawn(
            SETPRIV, "--pdeathsig", "SIGKILL",
            NSENTER, f"--target={pid}", "--mount", "--pid", "--",
            CHROOT, str(self.rootfs), *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE,
            env=dict(self.env),
            group=True,
            limit=1 << 16,
        )  # fmt: skip

    # -- root file system ------------------------------------------------------------------

    def _prepare_rootfs(self) -> None:
        """The busybox image: the shared template under a per-pod overlay, else a copy."""
        self.dir.mkdir(parents=True, exist_ok=False)
        self.rootfs.mkdir()
        self.log_path.touch()
        template = userland_template(self.dir.parent)
        self._dev = template.dev
        if not template.overlay:
            install_busybox(self.rootfs)
            return
        self._upper.mkdir()
        self._work.mkdir()
        self._lower = template.root

    def _check_executable(self, command: str) -> None:
        """Refuse, as runc does, a command that does not resolve to an executable file."""
        if not command:
            raise ExecutableNotFound("exec: no command")
        if "/" in command:
            if self._is_executable(command if command.startswith("/") else "/" + command):
                return
            raise ExecutableNotFound(
                f'exec: "{command}": stat {command}: no such file or directory'
            )
        for directory in self.env.get("PATH", DEFAULT_PATH).split(":"):
            if directory and self._is_executable(f"{directory.rstrip('/')}/{command}"):
                return
        raise ExecutableNotFound(f'exec: "{command}": executable file not found in $PATH')

    def _is_executable(self, pod_path: str) -> bool:
        host = self._resolve(pod_path)
        if host is None:
            return False
        try:
            st = host.stat()
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)

    def _resolve(self, pod_path: str, depth: int = 0) -> Path | None:
        """Where a path inside the pod lives on the host, following symlinks in the pod's view.

        Mounted sub-trees only exist inside the pod's mount namespace, so the host path is
        found by mapping the longest mount target prefix to its source.
        """
        if depth > 40:
            return None
        parts = [p for p in PurePosixPath(pod_path).parts if p != "/"]
        resolved: list[str] = []
        for index, part in enumerate(parts):
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            resolved.append(part)
            host = self._host_path(resolved)
            if host.is_symlink():
                target = os.readlink(host)
                base = "/" if target.startswith("/") else "/" + "/".join(resolved[:-1])
                rest = "/".join(parts[index + 1 :])
                return self._resolve(f"{base}/{target}/{rest}", depth + 1)
        return self._host_path(resolved)

    def _host_path(self, parts: list[str]) -> Path:
        for mount in reversed(self.mounts):
            target = _validated_target(mount.target).parts[1:]
            if tuple(parts[: len(target)]) == target:
                return Path(mount.source).joinpath(*parts[len(target) :])
        if self._lower is None:
            return self.rootfs.joinpath(*parts)
        upper = self._upper.joinpath(*parts)
        try:
            st = upper.lstat()
        except OSError:
            return self._lower.joinpath(*parts)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return self._upper / ".deleted"  # an overlay whiteout: deleted in the pod
        return upper
