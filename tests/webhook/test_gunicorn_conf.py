"""webhook/gunicorn_conf.py hooks, run in a fresh interpreter (the file sets process env)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_freezes_what_it_loaded_so_full_collections_skip_it(tmp_path: Path) -> None:
    script = """
import gc, runpy, sys
conf = runpy.run_path(sys.argv[1])
import webhook
webhook.create_app()
before = gc.get_freeze_count()
conf["post_worker_init"](None)
print(before, gc.get_freeze_count())
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "webhook" / "gunicorn_conf.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    before, after = (int(n) for n in done.stdout.split())
    assert before == 0
    # The app, the engine and their libraries: tens of thousands of objects.
    assert after > 10_000
