"""agent.sh against a node root on disk, through LocalShell (chroot into a busybox root).

The swap-and-watch part needs a kubelet and crictl, so it is tested end to end against
tests/kubesim; here: inspect, install, prepare, abort, result, locks, and their file modes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from kubectl_audit.errors import NodeError
from kubectl_audit.node.agent import (
    APISERVER_MANIFEST,
    NodeAgent,
    NodeChangedError,
    NodeLockedError,
    agent_script,
)
from kubectl_audit.node.local import LocalShell
from tests.conftest import TESTDATA

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")

MANIFEST = TESTDATA / "apiserver-manifests" / "kind-v1.32.2-austintalbot-before-audit.yaml"
POLICY_PATH = "/etc/kubernetes/audit/policy.yaml"
LOG_PATH = "/var/log/kubernetes/audit/audit.log"
RUNDIR = "/etc/kubernetes/tmp/kubectl-audit-20261128T120000Z"


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    from tests.kubesim.userland import install_busybox

    root = tmp_path / "node"
    install_busybox(root)
    manifests = root / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    shutil.copy(MANIFEST, manifests / "kube-apiserver.yaml")
    (manifests / "kube-apiserver.yaml").chmod(0o600)
    for other in ("etcd.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"):
        (manifests / other).write_text("apiVersion: v1\nkind: Pod\n")
    return root


@pytest.fixture
def agent(node_root: Path) -> NodeAgent:
    return NodeAgent(LocalShell(node_root, node="cp-1"), timeout=30)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def prepare(
    agent: NodeAgent,
    *,
    token: str = "run-1",
    sha: str | None = None,
    policy: bytes | None = b"apiVersion: audit.k8s.io/v1\n",
    rundir: str = RUNDIR,
) -> None:
    agent.install(rundir)
    agent.prepare(
        rundir,
        token=token,
        expected_sha256=sha or hashlib.sha256(MANIFEST.read_bytes()).hexdigest(),
        new_manifest=MANIFEST.read_text() + "# changed\n",
        policy_path=POLICY_PATH,
        policy=policy,
        log_dir=os.path.dirname(LOG_PATH),
    )


def test_inspect_reads_the_manifest_and_lists_the_folder(agent: NodeAgent, node_root: Path) -> None:
    (node_root / "etc/kubernetes/manifests/kube-apiserver.yaml.bak").write_text("old")
    (node_root / "etc/kubernetes/manifests/.hidden").write_text("ignored by the kubelet")
    found = agent.inspect(policy_path=POLICY_PATH, log_path=LOG_PATH)
    assert found.manifest == MANIFEST.read_bytes()
    assert found.manifest_sha256 == hashlib.sha256(MANIFEST.read_bytes()).hexdigest()
    assert found.stray_manifest_files() == ("kube-apiserver.yaml.bak",)
    assert ".hidden" not in found.manifest_dir_files
    assert found.policy_sha256 == "absent"
    assert not found.log_dir_exists
    assert found.lock_owner is None
    assert not found.has_crictl


def test_prepare_backs_up_writes_policy_and_stages(agent: NodeAgent, node_root: Path) -> None:
    prepare(agent)
    run = node_root / RUNDIR.lstrip("/")
    backup = run / "kube-apiserver.yaml"
    assert backup.read_bytes() == MANIFEST.read_bytes()
    assert mode(backup) == 0o600
    assert mode(run) == 0o700
    policy = node_root / POLICY_PATH.lstrip("/")
    assert policy.read_bytes() == b"apiVersion: audit.k8s.io/v1\n"
    assert mode(policy) == 0o600
    assert mode(node_root / "var/log/kubernetes/audit") == 0o700
    staged = node_root / "etc/kubernetes/manifests/.kube-apiserver.yaml.kubectl-audit"
    assert staged.read_text().endswith("# changed\n")
    # The live manifest is untouched until the commit.
    assert (node_root / APISERVER_MANIFEST.lstrip("/")).read_bytes() == MANIFEST.read_bytes()
    assert agent.inspect(policy_path=POLICY_PATH, log_path=LOG_PATH).lock_owner.startswith("run-1 ")
    assert agent.result(RUNDIR).state == "not-started"


def test_a_second_run_is_refused_while_the_lock_is_held(agent: NodeAgent) -> None:
    prepare(agent, token="run-1")
    with pytest.raises(NodeLockedError, match="locked by another kubectl-audit run"):
        prepare(agent, token="run-2", rundir=RUNDIR + "-second")


def test_a_run_directory_is_never_shared(agent: NodeAgent) -> None:
    prepare(agent, token="run-1")
    agent.cleanup_locks(-1)
    with pytest.raises(NodeError, match="belongs to another run"):
        prepare(agent, token="run-2")


def test_abort_is_harmless_when_prepare_never_ran(agent: NodeAgent, node_root: Path) -> None:
    agent.install(RUNDIR)
    agent.abort(RUNDIR, policy_path=POLICY_PATH)
    assert (node_root / APISERVER_MANIFEST.lstrip("/")).read_bytes() == MANIFEST.read_bytes()


def test_prepare_refuses_when_the_manifest_changed(agent: NodeAgent, node_root: Path) -> None:
    with pytest.raises(NodeChangedError, match="changed since it was read"):
        prepare(agent, sha="0" * 64)
    assert not (node_root / POLICY_PATH.lstrip("/")).exists()
    assert agent.inspect(policy_path=POLICY_PATH, log_path=LOG_PATH).lock_owner is None


def test_abort_restores_the_previous_policy_and_unlocks(agent: NodeAgent, node_root: Path) -> None:
    policy = node_root / POLICY_PATH.lstrip("/")
    policy.parent.mkdir(parents=True)
    policy.write_bytes(b"previous policy\n")
    prepare(agent)
    assert policy.read_bytes() != b"previous policy\n"
    agent.abort(RUNDIR, policy_path=POLICY_PATH)
    assert policy.read_bytes() == b"previous policy\n"
    assert not (node_root / "etc/kubernetes/manifests/.kube-apiserver.yaml.kubectl-audit").exists()
    assert agent.inspect(policy_path=POLICY_PATH, log_path=LOG_PATH).lock_owner is None


def test_abort_removes_a_policy_that_did_not_exist(agent: NodeAgent, node_root: Path) -> None:
    prepare(agent)
    agent.abort(RUNDIR, policy_path=POLICY_PATH)
    assert not (node_root / POLICY_PATH.lstrip("/")).exists()


def test_stale_locks_are_removed_only_when_old(agent: NodeAgent) -> None:
    prepare(agent)
    assert agent.cleanup_locks(3600) is None
    assert agent.cleanup_locks(-1) is not None
    assert agent.inspect(policy_path=POLICY_PATH, log_path=LOG_PATH).lock_owner is None


def test_discard_keeps_a_run_directory_with_a_backup(agent: NodeAgent, node_root: Path) -> None:
    prepare(agent)
    agent.discard(RUNDIR)
    assert (node_root / RUNDIR.lstrip("/") / "kube-apiserver.yaml").exists()


@pytest.mark.parametrize("shell", ["dash", "busybox sh", "bash --posix"])
def test_agent_script_parses_in_every_node_shell(shell: str, tmp_path: Path) -> None:
    program = shell.split()[0]
    if shutil.which(program) is None:
        pytest.skip(f"{program} not installed")
    script = tmp_path / "agent.sh"
    script.write_text(agent_script())
    subprocess.run([*shell.split(), "-n", str(script)], check=True, timeout=10)
