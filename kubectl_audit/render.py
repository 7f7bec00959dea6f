"""Printing results: kubectl-style tables, JSON and YAML. Data on stdout, progress on stderr."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import yaml

from kubectl_audit import jsonfast

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_json(data: Any, *, pretty: bool = True) -> str:
    return jsonfast.dumps(data, pretty=pretty).decode()


def to_yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def dump(data: Any, output: str, stream: TextIO) -> None:
    """Write `data` as `json` or `yaml` to `stream`."""
    if output == "json":
        stream.write(to_json(data) + "\n")
    elif output == "yaml":
        stream.write(to_yaml(data))
    else:
        raise ValueError(f"unsupported output format {output!r}")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A kubectl-style table: upper-case headers, columns separated by three spaces."""
    cells = [[str(h).upper() for h in headers]]
    cells += [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [value.ljust(width) for value, width in zip(row, widths, strict=True)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines)
