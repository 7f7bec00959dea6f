"""Which files of a node's audit log to read, whatever carries them (pure, no I/O).

A node's log is named by the apiserver's `--audit-log-path` (as a path on the node); its
lumberjack backups sit in the same directory. The listing comes from the kubelet's
`/logs` page or `ls` in the node-agent pod; the choice is the same as for `--file`:
backups oldest first, then the current log, backups wholly outside --since/--until left
out by the times in their names (`sources._window`, with its rotation slack).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kubectl_audit.logs.sources import LogName, _window


@dataclass(frozen=True)
class LogFiles:
    """The log `directory/current_name` on a node, and how to pick its files from a listing."""

    directory: str
    current_name: str

    def belongs(self, name: str) -> bool:
        wanted = LogName.of(Path(self.current_name))
        found = LogName.of(Path(name))
        return (found.stem, found.ext) == (wanted.stem, wanted.ext)

    def backups(self, names: Iterable[str]) -> list[str]:
        """The backups in `names`, oldest first; a backup and its `.gz` twin (lumberjack
        compressing it right now) count once, as the uncompressed one."""
        found: dict[datetime, str] = {}
        for name in names:
            log_name = LogName.of(Path(name))
            if log_name.rotated_at is None or not self.belongs(name):
                continue
            if log_name.rotated_at not in found or not log_name.gz:
                found[log_name.rotated_at] = name
        return [found[stamp] for stamp in sorted(found)]

    def choose(
        self, names: Iterable[str], since: datetime | None, until: datetime | None
    ) -> tuple[list[str], list[str]]:
        """(files to read in order, backups skipped by the time window)."""
        listed = list(names)
        ordered = self.backups(listed)
        if self.current_name in listed:
            ordered.append(self.current_name)
        kept, skipped = _window([Path(name) for name in ordered], since, until)
        return [p.name for p in kept], [p.name for p in skipped]

    @staticmethod
    def rotation_key(name: str) -> datetime | None:
        return LogName.of(Path(name)).rotated_at


def new_backups(log: LogFiles, seen: list[str], names: list[str]) -> list[str]:
    """Backups in `names` (oldest first) that `seen` did not have: rotations since."""
    known = {LogFiles.rotation_key(name) for name in seen}
    return [name for name in log.backups(names) if LogFiles.rotation_key(name) not in known]


def is_gzip_name(name: str) -> bool:
    return name.endswith(".gz")
