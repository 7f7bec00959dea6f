"""JSON with orjson's speed when it is installed, and the standard library when it is not.

The krew archive carries only pure-Python dependencies, so every compiled speed-up is
optional; import JSON helpers from here, never orjson directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # the self-contained zipapp on a python3 without orjson
    orjson = None  # type: ignore[assignment]

HAVE_ORJSON = orjson is not None
JSONDecodeError: type[ValueError] = orjson.JSONDecodeError if orjson is not None else ValueError


# Bound directly (no wrapper): the log scanner calls this once per candidate line.
loads: Callable[[bytes | bytearray | memoryview | str], Any] = (
    orjson.loads if orjson is not None else json.loads
)


def dumps(data: Any, *, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """Compact (or 2-space indented) UTF-8 JSON bytes."""
    if orjson is not None:
        option = orjson.OPT_NON_STR_KEYS
        if pretty:
            option |= orjson.OPT_INDENT_2
        if sort_keys:
            option |= orjson.OPT_SORT_KEYS
        return orjson.dumps(data, option=option)
    text = json.dumps(
        data,
        ensure_ascii=False,
        indent=2 if pretty else None,
        separators=None if pretty else (",", ":"),
        sort_keys=sort_keys,
        default=str,
    )
    return text.encode()
