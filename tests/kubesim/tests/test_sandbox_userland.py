"""The busybox userland installed into pod and node roots."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.kubesim.fixtures import skip_reason
from tests.kubesim.sandbox import PodSandbox, userland_template
from tests.kubesim.userland import applet_paths, install_busybox

needs_root = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

# What the contract promises, and what node-side scripts of the plugin can be expected to use.
COMMANDS = [
    "sh",
    "ls",
    "cat",
    "mv",
    "cp",
    "mkdir",
    "chmod",
    "stat",
    "sha256sum",
    "gzip",
    "grep",
    "sed",
    "awk",
    "sleep",
    "setsid",
    "nohup",
    "wget",
    "date",
    "head",
    "tail",
    "ps",
    "kill",
    "tar",
    "base64",
    "mktemp",
    "sync",
    "env",
    "find",
    "xargs",
    "tee",
    "wc",
    "sort",
    "cut",
    "tr",
    "rm",
    "ln",
    "touch",
    "test",
    "id",
    "chroot",
    "timeout",
    "readlink",
    "realpath",
    "dirname",
    "basename",
    "printf",
]


def chroot(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), "sh", "-c", script], capture_output=True, text=True, timeout=20
    )


@needs_root
def test_every_promised_command_runs_in_the_chroot(tmp_path: Path) -> None:
    install_busybox(tmp_path / "root")
    listing = ["sh", "-c", 'for c; do command -v "$c" >/dev/null || echo "$c"; done', "sh"]
    missing = subprocess.run(
        ["chroot", str(tmp_path / "root"), *listing, *COMMANDS], capture_output=True, text=True
    )
    assert missing.stdout == ""
    assert chroot(tmp_path / "root", "echo a:b | awk -F: '{print $2}'").stdout == "b\n"


@needs_root
def test_nohup_ignores_hangups_like_the_applet(tmp_path: Path) -> None:
    install_busybox(tmp_path / "root")
    result = chroot(tmp_path / "root", "nohup sh -c 'kill -HUP $$; echo survived'")
    assert (result.returncode, result.stdout) == (0, "survived\n")
    assert chroot(tmp_path / "root", "nohup").returncode == 1


def test_install_is_idempotent_and_keeps_what_the_root_already_has(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/wget").write_text("#!/bin/sh\necho the node's own wget\n")
    install_busybox(root)
    install_busybox(root)
    assert (root / "usr/bin/wget").read_text() == "#!/bin/sh\necho the node's own wget\n"
    assert (root / "bin/sh").samefile(root / "bin/busybox")
    assert len(applet_paths()) > 200
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777


@needs_root
def test_pods_starting_together_share_one_template(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        pods = [PodSandbox(name=f"p{i}", workdir=tmp_path, mounts=[]) for i in range(3)]
        await asyncio.gather(*(p.start(["sleep", "60"]) for p in pods))
        try:
            codes = []
            for index, pod in enumerate(pods):
                process = await pod.exec(["sh", "-c", f"echo {index} > /tmp/mine"], stdin=False)
                await process.wait()
                process = await pod.exec(["cat", "/tmp/mine"], stdin=False)
                out, _ = await process.communicate()
                codes.append(int(out))
            return codes
        finally:
            await asyncio.gather(*(p.terminate() for p in pods))

    assert asyncio.run(scenario()) == [0, 1, 2]  # each pod writes its own layer
    template = userland_template(tmp_path)
    assert not (template.root / "tmp" / "mine").exists()
    assert [p.name for p in tmp_path.iterdir()] == [template.root.parent.name]
