"""Find the matching events in one source: prefilter bytes, parse only candidates.

Per block of lines:
1. Pick the needle set that is rarest in the source's first block (counted once, at C
   speed) and find its occurrences with `bytes.find` over the whole block; each hit gives
   one candidate line. Lines written with spaces after colons get the loose needles
   (values only); see `filters`.
2. A candidate must also contain one needle of every other set, and its
   `"stageTimestamp":"..."` (cut to the second) must not be outside --since/--until.
3. Only then is the line parsed (orjson) and tested exactly.

With no needles at all, every line is parsed. Unparsable lines and JSON that is not an
audit event are skipped and counted in `Problems` (only among lines that reach step 3,
plus always a file's unterminated last line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubectl_audit import jsonfast
from kubectl_audit.logs.events import Event, datetime_of_key, is_audit_event
from kubectl_audit.logs.fastfind import finder
from kubectl_audit.logs.filters import Matcher
from kubectl_audit.logs.sources import Block, LogSource

_STAGE_TIME = b'"stageTimestamp":"'
_LOOSE_MARKS = (b'": ', b'" :', b'":\t')
# How far out of stage-time order an event may be written and still be found when whole
# blocks are skipped by --since/--until (the apiserver writes each event right after
# stamping it; buffered backends delay by seconds, not minutes).
TIME_ORDER_SLACK = timedelta(minutes=1)
_OUTSIDE, _INSIDE, _EDGE = range(3)


@dataclass
class Problems:
    """Lines skipped because they are not audit events, for one summary line on stderr."""

    not_json: int = 0
    not_event: int = 0
    truncated: int = 0
    first: tuple[str, int] | None = None  # (file, byte offset) of the first one
    broken: list[str] = field(default_factory=list)  # files that end early: why
    events: int = 0  # audit events parsed (matching or not)

    @property
    def total(self) -> int:
        return self.not_json + self.not_event + self.truncated

    def add(self, kind: str, origin: str, offset: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if self.first is None:
            self.first = (origin, offset)

    def summary(self) -> str | None:
        """One warning line (two if compressed files were cut short), or None."""
        lines = [f"warning: could not read to the end: {reason}" for reason in self.broken[:1]]
        if len(self.broken) > 1:
            lines[0] += f" (and {len(self.broken) - 1} more files)"
        skipped = self._skipped()
        if skipped:
            lines.append(skipped)
            if not self.events and self.not_json:
                lines.append(
                    "hint: no line was an audit event: the input should be JSON lines as the "
                    "apiserver writes them (--audit-log-format=json); YAML and the legacy "
                    "text format are not read"
                )
        return "\n".join(lines) or None

    def _skipped(self) -> str | None:
        if not self.total:
            return None
        parts = []
        if self.not_json:
            parts.append(f"{self.not_json} not JSON")
        if self.not_event:
            parts.append(f"{self.not_event} JSON but not an audit event")
        if self.truncated:
            parts.append(f"{self.truncated} truncated at the end of a file")
        where = ""
        if self.first is not None:
            origin, offset = self.first
            where = f"; first in {origin} at {_line_number(origin, offset)}"
        noun = "line" if self.total == 1 else "lines"
        return f"warning: skipped {self.total} unreadable {noun} ({', '.join(parts)}){where}"


def _line_number(origin: str, offset: int) -> str:
    """`line N` for a plain file (counted again only now, for the one message)."""
    newlines = 0
    try:
        with open(origin, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":
                return f"byte {offset} (uncompressed)"
            handle.seek(0)
            left = offset
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                left -= len(chunk)
    except OSError:
        return f"byte {offset}"
    return f"line {newlines + 1}"


@dataclass
class _Plan:
    """How to prefilter one source's blocks in one mode (compact or loose lines)."""

    primary: tuple[bytes, ...] | None
    others: tuple[tuple[bytes, ...], ...]


@dataclass
class Scanner:
    """Scans the blocks of one source with one Matcher."""

    matcher: Matcher
    node: str
    problems: Problems
    progress: Callable[[int], None] | None = None
    _plans: dict[bool, _Plan] = field(default_factory=dict)
    _spacing_matters: bool = False
    _time_ok: Callable[[bytes], bool] | None = None
    _window: _Window | None = None

    def __post_init__(self) -> None:
        self._spacing_matters = any(s.spacing_matters for s in self.matcher.needle_sets)
        self._time_ok = self._time_prefilter()
        self._window = _block_window(self.matcher.since_key, self.matcher.until_key)

    def events(self, source: LogSource) -> Iterator[Event]:
        for block in source.blocks():
            yield from self.block_events(block)
            if self.progress is not None:
                self.progress(block.stop - block.start)

    def block_events(self, block: Block) -> Iterator[Event]:
        data = block.data
        begin, stop = block.start, block.stop
        if block.broken is not None:
            self.problems.broken.append(block.broken)
            return
        if block.tail:
            yield from self._parse(data, block, 0, tail=True)
            return
        time_ok = self._time_ok
        if self._window is not None:
            where = self._window.classify(data, begin, stop)
            if where == _OUTSIDE:
                return
            if where == _INSIDE:
                time_ok = None  # every line is in the window, give or take the slack
        loose = self._spacing_matters and any(
            data.find(mark, begin, stop) >= 0 for mark in _LOOSE_MARKS
        )
        plan = self._plans.get(loose)
        if plan is None:
            plan = self._plans[loose] = self._plan(data[begin : begin + (4 << 20)], loose)
        if loose:
            time_ok = None
        if plan.primary is None:
            yield from self._every_line(block, plan, time_ok)
            return
        for start, end in _candidates(data, plan.primary, begin, stop):
            line = data[start:end]
            if plan.others and not all(any(n in line for n in s) for s in plan.others):
                continue
            if time_ok is not None and not time_ok(line):
                continue
            yield from self._parse(line, block, start)

    def _every_line(
        self, block: Block, plan: _Plan, time_ok: Callable[[bytes], bool] | None
    ) -> Iterator[Event]:
        others = plan.others
        for line in block.lines().split(b"\n"):
            if others and not all(any(n in line for n in s) for s in others):
                continue
            if time_ok is not None and not time_ok(line):
                continue
            if not line or line.isspace():
                continue
            yield from self._parse(line, block, -1)

    def _parse(
        self, line: bytes, block: Block, start: int, *, tail: bool = False
    ) -> Iterator[Event]:
        try:
            data = jsonfast.loads(line)
        except jsonfast.JSONDecodeError:
            kind = "truncated" if tail else "not_json"
            self.problems.add(kind, block.origin, block.offset + _offset(block, line, start))
            return
        if not is_audit_event(data):
            self.problems.add("not_event", block.origin, block.offset + _offset(block, line, start))
            return
        self.problems.events += 1
        if self.matcher.predicate(data):
            yield Event.of(data, line, self.node)

    def _plan(self, sample: bytes, loose: bool) -> _Plan:
        sets = [s.loose if loose else s.compact for s in self.matcher.needle_sets]
        sets = [s for s in sets if all(s)]  # an empty needle filters nothing
        if not sets:
            return _Plan(None, ())
        counts = [sum(sample.count(n) for n in s) for s in sets]
        best = counts.index(min(counts))
        others = tuple(s for i, s in enumerate(sets) if i != best)
        return _Plan(sets[best], others)

    def _time_prefilter(self) -> Callable[[bytes], bool] | None:
        since = self.matcher.since_key
        until = self.matcher.until_key
        if since is None and until is None:
            return None
        low = since[:19].encode() if since else None
        high = until[:19].encode() if until else None

        key = _STAGE_TIME
        skip = len(_STAGE_TIME)

        def time_ok(line: bytes) -> bool:
            """False only when the line's stage time is surely outside the window
            (inlined `_stage_second`: this runs for every line of a block at the edge)."""
            at = line.rfind(key)
            if at < 0:
                return True
            at += skip
            close = line.find(b'"', at, at + 40)
            if close < 0 or line[close - 1] != 0x5A:  # not UTC "Z": let the parser decide
                return True
            second = line[at : at + 19]
            return not ((low is not None and second < low) or (high is not None and second > high))

        return time_ok


def _stage_second(line: bytes, begin: int = 0, stop: int | None = None) -> bytes | None:
    """`YYYY-MM-DDTHH:MM:SS` of the event's compact UTC stageTimestamp in data[begin:stop].

    The last occurrence: the apiserver writes it after the request and response objects
    (and sorted keys put it after them too), so a nested one in a body cannot be taken
    for it.
    """
    at = line.rfind(_STAGE_TIME, begin, len(line) if stop is None else stop)
    if at < 0:
        return None
    at += len(_STAGE_TIME)
    close = line.find(b'"', at, at + 40)
    if close < 0 or line[close - 1] != 0x5A:  # not UTC "Z": let the parser decide
        return None
    return line[at : at + 19]


def _second(moment: datetime | None) -> bytes | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%S").encode() if moment else None


@dataclass(frozen=True)
class _Window:
    """--since/--until as second strings, widened and narrowed by TIME_ORDER_SLACK, to
    judge a whole block by its first and last line (a log is written in stage-time order,
    give or take the slack)."""

    wide_low: bytes | None
    wide_high: bytes | None
    narrow_low: bytes | None
    narrow_high: bytes | None

    def classify(self, data: bytes, begin: int, stop: int) -> int:
        last_start = max(data.rfind(b"\n", begin, stop - 1) + 1, begin)
        last = _stage_second(data, last_start, stop)
        first_end = data.find(b"\n", begin, stop)
        first = _stage_second(data, begin, first_end if first_end >= 0 else stop)
        if first is None or last is None:
            return _EDGE
        if (self.wide_low is not None and last < self.wide_low) or (
            self.wide_high is not None and first > self.wide_high
        ):
            return _OUTSIDE
        if (self.narrow_low is None or first >= self.narrow_low) and (
            self.narrow_high is None or last <= self.narrow_high
        ):
            return _INSIDE
        return _EDGE


def _block_window(since_key: str | None, until_key: str | None) -> _Window | None:
    if since_key is None and until_key is None:
        return None
    since = datetime_of_key(since_key) if since_key else None
    until = datetime_of_key(until_key) if until_key else None
    slack = TIME_ORDER_SLACK + timedelta(seconds=1)  # keys are cut to whole seconds
    return _Window(
        _second(since - slack if since else None),
        _second(until + slack if until else None),
        _second(since + slack if since else None),
        _second(until - slack if until else None),
    )


def _offset(block: Block, line: bytes, start: int) -> int:
    return start if start >= 0 else max(block.data.find(line, block.start), 0)


def _candidates(
    data: bytes, needles: tuple[bytes, ...], begin: int, stop: int
) -> Iterator[tuple[int, int]]:
    """(start, end) of every line in data[begin:stop] containing one of `needles`, in
    order, each once. Lines end with a newline before `stop`."""
    find = finder(data)
    line_end = data.find
    rfind = data.rfind
    if len(needles) == 1:
        needle = needles[0]
        at = find(needle, begin, stop)
        while at >= 0:
            start = max(rfind(b"\n", begin, at) + 1, begin)
            end = line_end(b"\n", at, stop)
            if end < 0:
                end = stop
            yield start, end
            at = find(needle, end, stop)
        return
    lines: dict[int, int] = {}
    for needle in needles:
        at = find(needle, begin, stop)
        while at >= 0:
            start = max(rfind(b"\n", begin, at) + 1, begin)
            end = line_end(b"\n", at, stop)
            if end < 0:
                end = stop
            lines[start] = end
            at = find(needle, end, stop)
    for start in sorted(lines):
        yield start, lines[start]
