"""Where audit log bytes come from: one `LogSource` per node, yielding blocks of whole lines.

The seam for every source is the `LogSource` protocol: a node name, an optional size (for
the progress bar) and `blocks()`, which yields `Block`s of complete lines, oldest first.
Blocks instead of single lines because the prefilter searches a whole block at C speed.

Implemented here: `FileSet` (a current log and its lumberjack backups, gzipped or not,
skipping backups outside the time window by the timestamp in their names) and
`StreamSource` (stdin). The cluster sources (kubelet `/logs` node proxy, debug pod with a
`grep -F` prefilter on the node) plug in behind the same protocol: see `logs/cluster.py`.

Whole-file JSON documents (a pretty-printed event, a JSON array of events, an EventList)
are detected by their first line not being a JSON value on its own, parsed whole (up to
`DOCUMENT_LIMIT` bytes) and re-emitted as compact lines, so the rest of the pipeline only
ever sees JSON lines. If such a file does not parse as one document either, it is read as
lines and its lines are counted as unreadable.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Protocol

from kubectl_audit import jsonfast
from kubectl_audit.errors import InputError

BLOCK_SIZE = 1 << 20
GZIP_READ = 128 << 10  # compressed bytes per step (audit logs inflate ~10-20x)
DOCUMENT_LIMIT = 32 << 20
# How long after its rotation an event may still be written with an earlier stage time
# (buffered backends); backups are only skipped with this much room.
ROTATION_SLACK = timedelta(minutes=5)
_GZIP_MAGIC = b"\x1f\x8b"
_STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}"
_BACKUP = re.compile(rf"^(?P<stem>.+)-(?P<stamp>{_STAMP})(?P<ext>\.[^.]*)?(?P<gz>\.gz)?$")


@dataclass(frozen=True, slots=True)
class Block:
    """Whole lines of one file: `data[start:end]`, each line ending with a newline.

    `tail` marks the last bytes of a file that did not end with a newline: a line the
    writer may not have finished (the scanner always checks it, and counts it if broken).
    """

    data: bytes
    origin: str
    offset: int  # of data[0] in the file
    start: int = 0  # the lines are data[start:end]
    end: int = -1  # -1: len(data)
    tail: bool = False
    broken: str | None = None  # the reason a (compressed) file could not be read to its end

    @property
    def stop(self) -> int:
        return len(self.data) if self.end < 0 else self.end

    def lines(self) -> bytes:
        if self.start == 0 and self.end < 0:
            return self.data
        return self.data[self.start : self.stop]


class LogSource(Protocol):
    """The audit log of ONE node, oldest event first."""

    node: str

    def size(self) -> int | None:
        """Bytes `blocks()` will read, if known (for the progress bar)."""
        ...

    def blocks(self) -> Iterator[Block]: ...


# --- lumberjack names --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogName:
    """A log file name split like lumberjack splits it: `<stem>[-<stamp>]<ext>[.gz]`."""

    directory: Path
    stem: str
    ext: str
    rotated_at: datetime | None = None  # None: the current (active) log
    gz: bool = False

    @classmethod
    def of(cls, path: Path) -> LogName:
        match = _BACKUP.match(path.name)
        if match:
            ext, gz = match.group("ext") or "", bool(match.group("gz"))
            if ext == ".gz" and not gz:
                ext, gz = "", True
            stamp = datetime.strptime(match.group("stamp"), "%Y-%m-%dT%H-%M-%S.%f")
            return cls(
                path.parent, match.group("stem"), ext, stamp.replace(tzinfo=timezone.utc), gz
            )
        base, dot, suffix = path.name.rpartition(".")
        if dot and base:
            return cls(path.parent, base, "." + suffix)
        return cls(path.parent, path.name, "")

    @property
    def identity(self) -> tuple[Path, str, str]:
        return (self.directory, self.stem, self.ext)

    @property
    def current(self) -> Path:
        return self.directory / f"{self.stem}{self.ext}"


def backup_name(current: Path, rotated_at: datetime, *, gz: bool = False) -> str:
    """The name lumberjack gives `current` when rotating it at `rotated_at` (spec 6.5)."""
    name = LogName.of(current)
    utc = rotated_at.astimezone(timezone.utc)
    stamp = utc.strftime("%Y-%m-%dT%H-%M-%S.") + f"{utc.microsecond // 1000:03d}"
    return f"{name.stem}-{stamp}{name.ext}" + (".gz" if gz else "")


def find_backups(current: Path) -> list[Path]:
    """The lumberjack backups of `current` in its directory, oldest first.

    A backup and its `.gz` twin (left for a moment while lumberjack compresses) count once:
    the uncompressed one is read.
    """
    wanted = LogName.of(current)
    found: dict[datetime, Path] = {}
    try:
        entries = list(current.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        name = LogName.of(entry)
        if name.rotated_at is None or name.identity != wanted.identity:
            continue
        if name.rotated_at not in found or not name.gz:
            found[name.rotated_at] = entry
    return [found[stamp] for stamp in sorted(found)]


# --- reading files -----------------------------------------------------------------------


def open_raw(path: Path) -> BinaryIO:
    """Open a log file unbuffered, or raise an InputError that names it."""
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="check the path given to --file") from None
    except IsADirectoryError:
        raise InputError(
            f"{path}: is a directory", hint="give the log file itself, e.g. DIR/audit.log"
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    if stat.S_ISDIR(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise InputError(f"{path}: is a directory", hint="give the log file itself")
    return handle


def _is_regular(handle: BinaryIO) -> bool:
    return stat.S_ISREG(os.fstat(handle.fileno()).st_mode)


class BrokenInput(Exception):
    """A compressed file that ends early or is not gzip after all: what was read counts,
    the rest is reported (never fatal)."""


def _read_chunks(handle: BinaryIO, where: str, size: int = 0) -> Iterator[bytes]:
    while True:
        try:
            chunk = handle.read(size or BLOCK_SIZE)
        except OSError as error:
            raise InputError(f"{where}: cannot read: {error.strerror or error}") from None
        if not chunk:
            return
        yield chunk


def _json_object(line: bytes) -> bool:
    try:
        return isinstance(jsonfast.loads(line), dict)
    except jsonfast.JSONDecodeError:
        return False


def _looks_like_document(head: bytes) -> bool:
    """Whether the data starts like one multi-line JSON document rather than JSON lines.

    A JSON array, or an object whose first line is not JSON on its own, unless the second
    line is (JSON lines whose first line is broken, e.g. a log copied from mid-line).
    A first line longer than `head` is a long JSON line: documents break lines early.
    """
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return True
    if not stripped.startswith(b"{"):
        return False
    lines = stripped.split(b"\n", 2)
    if len(lines) == 1 or _json_object(lines[0]):
        return False
    return not (len(lines) == 3 and _json_object(lines[1]))


def _document_lines(document: bytes | bytearray) -> bytes | None:
    """A whole-file JSON document as compact event lines, or None if it is not one."""
    try:
        value = jsonfast.loads(document)
    except jsonfast.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        value = value["items"]
    items = value if isinstance(value, list) else [value]
    return b"".join(jsonfast.dumps(item) + b"\n" for item in items)


def read_blocks(chunks: Iterator[bytes], where: str, *, head_sniff: bool = True) -> Iterator[Block]:
    """Cut a stream of chunks into blocks of whole lines (see `Block`).

    A stream that breaks off (`BrokenInput`) ends with a `broken` block saying why.
    """
    try:
        yield from _read_blocks(chunks, where, head_sniff=head_sniff)
    except BrokenInput as error:
        yield Block(b"", where, -1, tail=True, broken=str(error))


def _read_blocks(chunks: Iterator[bytes], where: str, *, head_sniff: bool) -> Iterator[Block]:
    first = next(chunks, b"")
    while b"\n" not in first[:65536] and len(first) < 65536:
        more = next(chunks, b"")  # a pipe delivers little at a time: sniff a whole line
        if not more:
            break
        first += more
    if head_sniff and _looks_like_document(first[:65536]):
        whole = bytearray(first)
        for chunk in chunks:
            whole += chunk
            if len(whole) > DOCUMENT_LIMIT:
                break
        lines = _document_lines(whole) if len(whole) <= DOCUMENT_LIMIT else None
        if lines is not None:
            yield Block(lines, where, 0)
            return
        first = bytes(whole)
    yield from _cut_lines(_chain(first, chunks), where)


def _cut_lines(chunks: Iterator[bytes], where: str) -> Iterator[Block]:
    # No copying of the (large) chunks: a block is the chunk itself with bounds, and only
    # the one line that straddles two chunks is glued together as its own small block.
    offset = 0  # of the current chunk in the file
    carry: list[bytes] = []
    for chunk in chunks:
        first_end = chunk.find(b"\n") + 1
        if not first_end:
            carry.append(chunk)
            offset += len(chunk)
            continue
        begin = 0
        if carry:
            joined = b"".join(carry)
            yield Block(joined + chunk[:first_end], where, offset - len(joined))
            carry = []
            begin = first_end
        cut = chunk.rfind(b"\n") + 1
        if cut > begin:
            yield Block(chunk, where, offset, begin, cut)
        if cut < len(chunk):
            carry.append(chunk[cut:])
        offset += len(chunk)
    if carry:
        joined = b"".join(carry)
        yield Block(joined, where, offset - len(joined), tail=True)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def file_blocks(path: Path, opened: BinaryIO | None = None) -> Iterator[Block]:
    """The blocks of one file, gunzipped if it starts with the gzip magic (not by name)."""
    with opened or open_raw(path) as handle:
        magic = os.pread(handle.fileno(), 2, 0) if _is_regular(handle) else b""
        chunks = (
            gunzip_chunks(_read_chunks(handle, str(path), size=GZIP_READ), str(path), batch=0)
            if magic == _GZIP_MAGIC
            else _read_chunks(handle, str(path))
        )
        yield from read_blocks(chunks, str(path))


def gunzip_chunks(
    chunks: Iterable[bytes], where: str, *, batch: int = BLOCK_SIZE
) -> Iterator[bytes]:
    """Decompress a gzip stream (all its members) as it arrives, in pieces of `batch` bytes
    or more (a stream off the network comes in small frames); batch=0 hands each piece
    out as zlib gives it (reads of a local file are large already: no joining copy).

    A stream that breaks off or turns corrupt raises BrokenInput after yielding what it
    had (a backup caught while lumberjack compresses it, a connection cut short). zlib
    directly rather than GzipFile: GzipFile loses a whole read's worth of data when the
    input ends early.
    """
    decompressor = zlib.decompressobj(wbits=31)
    pending: list[bytes] = []
    size = 0
    for compressed in chunks:
        data = compressed
        while data:
            try:
                out = decompressor.decompress(data)
            except zlib.error as error:
                if pending:
                    yield b"".join(pending)
                raise BrokenInput(f"{where}: {error}") from None
            if out:
                pending.append(out)
                size += len(out)
                if size >= batch:
                    yield b"".join(pending)
                    pending, size = [], 0
            data = b""
            if decompressor.eof and decompressor.unused_data:  # the next gzip member
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
    if pending:
        yield b"".join(pending)
    if not decompressor.eof:
        raise BrokenInput(f"{where}: compressed data ended before its end")


@dataclass(frozen=True, slots=True)
class ReadUpTo:
    """Where reading the current log stopped: the file (device, inode) and the offset just
    after its last complete line. `-f` resumes exactly there, so nothing written meanwhile
    is lost or shown twice."""

    device: int
    inode: int
    offset: int


@dataclass
class FileSet:
    """One node's log as files: backups oldest first, then the current log if given."""

    node: str
    files: list[Path]
    skipped: list[Path] = field(default_factory=list)
    read_up_to: ReadUpTo | None = None
    live: Path | None = None  # the current log, followed by -f even if the window skipped it
    # With -f the current log's unfinished last line is left to the follower (it is being
    # written), instead of being reported as truncated.
    leave_tail_to_follower: bool = False

    def size(self) -> int | None:
        total = 0
        for path in self.files:
            try:
                total += path.stat().st_size
            except OSError:
                return None
        return total

    def blocks(self) -> Iterator[Block]:
        current = self.current
        for path in self.files:
            if path != current:
                yield from file_blocks(path)
                continue
            with open_raw(path) as handle:
                info = os.fstat(handle.fileno())
                end = 0
                for block in file_blocks(path, handle):
                    if not block.tail:
                        end = block.offset + block.stop
                    elif self.leave_tail_to_follower and block.broken is None:
                        continue
                    yield block
                self.read_up_to = ReadUpTo(info.st_dev, info.st_ino, end)

    @property
    def current(self) -> Path | None:
        """The active log (what `-f` follows), if it is part of this set."""
        last = self.files[-1] if self.files else None
        if last is not None and LogName.of(last).rotated_at is None:
            return last
        return None


@dataclass
class StreamSource:
    """Lines from an already open binary stream (stdin: `--file -`)."""

    node: str
    stream: BinaryIO

    def size(self) -> int | None:
        return None

    def blocks(self) -> Iterator[Block]:
        def chunks() -> Iterator[bytes]:
            while True:
                chunk = (
                    self.stream.read1(BLOCK_SIZE)
                    if hasattr(self.stream, "read1")
                    else (self.stream.read(BLOCK_SIZE))
                )
                if not chunk:
                    return
                yield chunk

        yield from read_blocks(chunks(), "<stdin>")


def _in_window(
    start: datetime | None, end: datetime | None, since: datetime | None, until: datetime | None
) -> bool:
    """Can a file holding events written in (start, end] have any in [since, until]?"""
    if since is not None and end is not None and end < since:
        return False
    return not (until is not None and start is not None and start - ROTATION_SLACK > until)


def file_sets(
    paths: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    stdin: BinaryIO | None = None,
) -> list[LogSource]:
    """Group `--file` arguments into one source per log (current + backups).

    Naming a current log brings in all its backups; naming only backups reads just those.
    Each file must exist (an InputError names the first that does not).
    """
    groups: dict[tuple[Path, str, str], set[Path]] = {}
    with_backups: set[tuple[Path, str, str]] = set()
    sources: list[LogSource] = []
    for text in paths:
        if text == "-":
            if any(isinstance(s, StreamSource) for s in sources):
                raise InputError("stdin (-) can only be read once")
            sources.append(StreamSource("stdin", stdin or sys.stdin.buffer))
            continue
        path = Path(text)
        open_raw(path).close()  # fail early, naming the file
        name = LogName.of(path)
        groups.setdefault(name.identity, set()).add(path)
        if name.rotated_at is None:
            with_backups.add(name.identity)
    labels = _labels(groups)
    for identity, given in groups.items():
        files = set(given)
        if identity in with_backups:
            files.update(find_backups(next(p for p in given if LogName.of(p).rotated_at is None)))
        ordered = sorted(files, key=_file_order)
        kept, skipped = _window(ordered, since, until)
        live = next((p for p in ordered if LogName.of(p).rotated_at is None), None)
        sources.append(FileSet(labels[identity], kept, skipped, live=live))
    return sources


def _file_order(path: Path) -> tuple[int, datetime]:
    name = LogName.of(path)
    if name.rotated_at is None:
        return (1, datetime.max.replace(tzinfo=timezone.utc))
    return (0, name.rotated_at)


def _window(
    ordered: list[Path], since: datetime | None, until: datetime | None
) -> tuple[list[Path], list[Path]]:
    kept: list[Path] = []
    skipped: list[Path] = []
    previous: datetime | None = None
    for path in ordered:
        rotated_at = LogName.of(path).rotated_at
        if _in_window(previous, rotated_at, since, until):
            kept.append(path)
        else:
            skipped.append(path)
        previous = rotated_at if rotated_at is not None else previous
    return kept, skipped


def _labels(groups: dict[tuple[Path, str, str], set[Path]]) -> dict[tuple[Path, str, str], str]:
    """NODE column for files: the log's name, with its folder when two logs share a name."""
    plain = {identity: f"{identity[1]}{identity[2]}" for identity in groups}
    counts: dict[str, int] = {}
    for label in plain.values():
        counts[label] = counts.get(label, 0) + 1
    labels = {}
    for identity, label in plain.items():
        if counts[label] > 1:
            label = f"{identity[0].name or identity[0]}/{label}"
        labels[identity] = label
    return labels
