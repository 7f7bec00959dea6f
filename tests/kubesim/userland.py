"""Install a busybox userland into a directory, so `chroot <dir> sh -c ...` works.

Used for the debug pod's own root file system (the "busybox image") and for every node
root (so `chroot /host sh -c ...` inside an exec finds a shell, as on a real node).

One static busybox binary per root plus a hard link to it per applet, at the paths busybox
itself reports (`busybox --list-full`). The busybox image ships symlinks; hard links behave
the same for every command (busybox dispatches on argv[0]) and cost no inode each: on the
ext4 this runs on, 268 symlinks take ~150 ms, the copy plus 268 links ~7 ms. Each root gets
its own copy so a pod that overwrites /bin/busybox breaks only itself, as it would for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

BUSYBOX = Path(os.environ.get("KUBESIM_BUSYBOX", "/bin/busybox"))

# Directories every Linux root has; a kubeadm node and the busybox image both have them.
# dev/ and proc/ are mount points (the sandbox mounts the pod's /dev and /proc there).
_DIRS = (
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "usr/local/bin",
    "etc",
    "root",
    "var/tmp",
    "dev",
    "proc",
    "sys",
    "run",
)
_ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}


# Applets the busybox image has but Debian's busybox-static was built without, as sh scripts
# doing what the applet does. nohup matters: `setsid nohup cmd &` is how one detaches.
_SCRIPTS = {
    "usr/bin/nohup": """#!/bin/sh
# nohup (kubesim userland: Debian's busybox-static lacks the applet; same behaviour).
if [ $# -eq 0 ]; then
    echo "Usage: nohup PROG ARGS" >&2
    exit 1
fi
if [ -t 0 ]; then exec </dev/null; fi
if [ -t 1 ]; then
    echo "nohup: appending output to nohup.out" >&2
    exec >>nohup.out
fi
if [ -t 2 ]; then exec 2>&1; fi
trap '' HUP
exec "$@"
""",
}


class UserlandError(RuntimeError):
    """The busybox userland cannot be installed (busybox missing, unwritable root)."""


@lru_cache(maxsize=1)
def applet_paths() -> tuple[str, ...]:
    """Relative install paths of every applet of this busybox, e.g. 'bin/sh', 'usr/bin/wget'."""
    if not BUSYBOX.is_file():
        raise UserlandError(
            f"{BUSYBOX} not found: install Debian's busybox-static (or set KUBESIM_BUSYBOX)"
        )
    listing = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return tuple(line.strip() for line in listing.splitlines() if line.strip())


def install_busybox(root: Path) -> None:
    """Make `root` a minimal Linux root: busybox + applet links + /etc/passwd, /tmp, /dev, /proc.

    Existing files are never overwritten: a node root keeps what its seeding (or the
    crictl/systemctl stand-ins) already put there, as a real node keeps its own binaries.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for rel in _DIRS:
            (root / rel).mkdir(parents=True, exist_ok=True)
        tmp = root / "tmp"
        tmp.mkdir(exist_ok=True)
        tmp.chmod(0o1777)
        for rel, text in _ETC_FILES.items():
            path = root / rel
            if not path.exists():
                path.write_text(text)
        binary = root / "bin" / "busybox"
        if not binary.exists():
            shutil.copy2(BUSYBOX, binary)
        for rel, text in _SCRIPTS.items():
            path = root / rel
            if not path.exists() and rel not in applet_paths():
                path.write_text(text)
                path.chmod(0o755)
        for rel in applet_paths():
            if rel == "bin/busybox":
                continue
            try:
                os.link(binary, root / rel)
            except FileExistsError:
                continue
    except OSError as exc:
        raise UserlandError(f"cannot install busybox userland into {root}: {exc}") from exc
