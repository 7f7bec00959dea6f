"""`-f`: keep reading the current logs as they grow, through lumberjack rotation.

Lumberjack rotates by renaming the current file to its backup name and creating a new,
empty file under the old name. A `Tail` keeps the open file descriptor (which still points
at the renamed file), notices that the path now names another inode, reads what is left
in the old file, and continues from the start of the new one. A file that shrank in place
(`copytruncate`) is read again from its start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kubectl_audit.logs.events import Event
from kubectl_audit.logs.filters import Matcher
from kubectl_audit.logs.output import Renderer
from kubectl_audit.logs.scan import Problems, Scanner
from kubectl_audit.logs.sources import BLOCK_SIZE, Block, FileSet, ReadUpTo

POLL_INTERVAL = 0.2


@dataclass
class Tail:
    """New complete lines of one path, across rotations."""

    path: Path
    start: ReadUpTo | None = None
    _handle: BinaryIO | None = None
    _inode: tuple[int, int] | None = None
    _offset: int = 0
    _partial: bytes = b""

    def __post_init__(self) -> None:
        self._open(resume=self.start, at_end=self.start is None)

    def _open(self, resume: ReadUpTo | None, *, at_end: bool = False) -> None:
        try:
            handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 - kept open while tailing
        except FileNotFoundError:
            # Between lumberjack's rename and its create: try again at the next poll.
            self._handle = None
            return
        info = os.fstat(handle.fileno())
        self._handle = handle
        self._inode = (info.st_dev, info.st_ino)
        self._partial = b""
        if resume is not None and (resume.device, resume.inode) == self._inode:
            self._offset = resume.offset
        elif resume is None and at_end:
            self._offset = info.st_size  # never read before: follow from now on
        else:
            self._offset = 0  # a new file after rotation: all of it is news
        handle.seek(self._offset)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def poll(self) -> Iterator[Block]:
        if self._handle is None:
            self._open(resume=None)
            if self._handle is None:
                return
        yield from self._drain()
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return  # renamed, new one not created yet
        if (info.st_dev, info.st_ino) != self._inode:
            yield from self._drain()
            if self._partial:
                yield Block(self._partial, str(self.path), self._offset, tail=True)
            self.close()
            self._open(resume=None)
            yield from self._drain()
        elif info.st_size < self._offset + len(self._partial):
            assert self._handle is not None
            self._handle.seek(0)
            self._offset = 0
            self._partial = b""
            yield from self._drain()

    def _drain(self) -> Iterator[Block]:
        assert self._handle is not None
        while True:
            chunk = self._handle.read(BLOCK_SIZE)
            if not chunk:
                return
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield Block(data[:cut], str(self.path), self._offset)
                self._offset += cut
            self._partial = data[cut:]


@dataclass
class _Followed:
    tail: Tail
    scanner: Scanner


@dataclass
class Follow:
    """Polls every followed log; events of one round are written in time order."""

    sets: Sequence[FileSet]
    matcher: Matcher
    renderer: Renderer
    problems: Problems
    limit: int | None = None
    _followed: list[_Followed] = field(default_factory=list)

    def __post_init__(self) -> None:
        for fileset in self.sets:
            if fileset.live is None:
                continue
            tail = Tail(fileset.live, fileset.read_up_to)
            scanner = Scanner(self.matcher, fileset.node, self.problems)
            self._followed.append(_Followed(tail, scanner))

    def round(self) -> int:
        """Read what is new everywhere and write the matches; returns how many."""
        found: list[Event] = []
        for followed in self._followed:
            for block in followed.tail.poll():
                found.extend(followed.scanner.block_events(block))
        found.sort(key=lambda e: e.key)
        for event in found:
            if self.limit is not None and self.renderer.count >= self.limit:
                break
            self.renderer.write(event)
        self.renderer.flush()
        return len(found)

    @property
    def followed(self) -> int:
        return len(self._followed)

    @property
    def done(self) -> bool:
        return self.limit is not None and self.renderer.count >= self.limit

    def close(self) -> None:
        for followed in self._followed:
            followed.tail.close()


def follow(
    sets: Sequence[FileSet],
    matcher: Matcher,
    renderer: Renderer,
    problems: Problems,
    *,
    limit: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    interval: float = POLL_INTERVAL,
) -> None:
    """Follow until `stop()` (tests), --limit, or Ctrl-C."""
    following = Follow(sets, matcher, renderer, problems, limit)
    if not following.followed:
        return  # stdin was read to its end already; nothing else grows
    try:
        while not following.done and not stop():
            if not following.round():
                time.sleep(interval)
    finally:
        following.close()
