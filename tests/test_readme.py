"""Every command the README shows is run here, so the README cannot drift from the tool.

The README marks each ```console block with an HTML comment just above it:

- `<!-- readme: exact -->`: run each `$ ` command from the repository root (through the
  real `kubectl`, so the plugin is found the way users find it) and compare stdout+stderr
  with the lines shown, exactly.
- `<!-- readme: cluster -->`: run against a fresh tests/kubesim cluster, in order, with
  KUBECONFIG pointing at it. Output lines must appear in order; `...` inside a line stands
  for text that differs per run (times, hashes, pod names).
- `<!-- readme: covered-by PATH -->`: a command that cannot run here as shown (installing
  from PyPI or krew, deploying to a real cluster). The named test exercises it; this only
  checks that the test exists and mentions the command.
Unmarked console blocks fail the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.kubesim.cluster import Cluster

README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- readme: (?P<mode>[^>]*?) -->\s*```console\n(?P<body>.*?)```", re.S)
_ANY_CONSOLE = re.compile(r"```console\n")


@dataclass(frozen=True)
class Command:
    line: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    mode: str
    argument: str
    commands: tuple[Command, ...]


def parse_blocks(text: str) -> list[Block]:
    blocks = []
    for match in _BLOCK.finditer(text):
        mode, _, argument = match["mode"].strip().partition(" ")
        commands: list[Command] = []
        current: str | None = None
        expected: list[str] = []
        for line in match["body"].splitlines():
            if line.startswith("$ "):
                if current is not None:
                    commands.append(Command(current, tuple(expected)))
                current, expected = line[2:], []
            elif current is not None:
                expected.append(line)
        if current is not None:
            commands.append(Command(current, tuple(expected)))
        blocks.append(Block(mode, argument.strip(), tuple(commands)))
    return blocks


BLOCKS = parse_blocks(README.read_text())


def shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def assert_lines_in_order(expected: tuple[str, ...], output: str) -> None:
    lines = output.splitlines()
    position = 0
    for want in (line for line in expected if line.strip()):
        pattern = _pattern(want.rstrip())
        while position < len(lines) and not pattern.fullmatch(lines[position].rstrip()):
            position += 1
        assert position < len(lines), f"expected line not found in order: {want!r}\n{output}"
        position += 1


def test_every_console_block_is_marked() -> None:
    text = README.read_text()
    assert len(_ANY_CONSOLE.findall(text)) == len(BLOCKS), "a ```console block lacks a marker"
    assert {block.mode for block in BLOCKS} <= {"exact", "cluster", "covered-by"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize(
    "command",
    [c for b in BLOCKS if b.mode == "exact" for c in b.commands],
    ids=lambda c: c.line[:60],
)
def test_exact_examples(command: Command) -> None:
    result = shell(command.line + " 2>&1")
    assert result.stdout.rstrip("\n").splitlines() == [line.rstrip() for line in command.expected]


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.mode == "covered-by"], ids=lambda b: b.argument
)
def test_covered_examples_name_a_real_test(block: Block) -> None:
    test_file = ROOT / block.argument
    assert test_file.is_file(), f"{block.argument} does not exist"
    source = test_file.read_text()
    for command in block.commands:
        assert program_of(command.line) in source, f"{block.argument}: {command.line}"


def program_of(line: str) -> str:
    """What a command runs: `scripts/build-release` -> build-release, `kubectl krew ...` ->
    krew, `python3 -m pip ...` -> pip."""
    words = [w for w in line.split() if w != "-m"]
    first = Path(words[0]).name
    return words[1] if first in ("kubectl", "python3") and len(words) > 1 else first


@pytest.mark.slow
def test_cluster_walkthrough(kubesim: Cluster) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubesim.kubeconfig)}
    fast = "--timeout 20s --settle 1 --kubelet-period 1"
    for block in (b for b in BLOCKS if b.mode == "cluster"):
        for command in block.commands:
            if command.line.startswith(("sudo python3 -m tests.kubesim", "export KUBECONFIG")):
                continue  # the fixture is this cluster; KUBECONFIG is set above
            line = command.line
            if re.search(r"kubectl audit (enable|disable)\b", line) and "--dry-run" not in line:
                line += f" {fast}"  # the simulator's apiserver restarts in a second
            result = shell(line + " 2>&1", env=env)
            assert result.returncode == 0, f"{line}\n{result.stdout}"
            assert_lines_in_order(command.expected, result.stdout)
