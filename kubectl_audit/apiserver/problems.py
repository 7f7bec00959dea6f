"""One finding about an apiserver's audit configuration, shared by flags, mounts and manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """What is wrong, how bad, and where.

    `severity` is `error` (the apiserver refuses to start, or audit events are lost) or
    `warning` (it runs, but not the way anyone wants). `code` is a short stable name for
    tests and `-o json`; `message` is the sentence shown to people. Messages that
    kube-apiserver itself prints are reproduced verbatim and carry `upstream=True`.
    """

    severity: str
    code: str
    message: str
    flag: str | None = None
    hint: str | None = None
    upstream: bool = False

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "flag": self.flag,
            "hint": self.hint,
            "upstream": self.upstream,
        }


def error(code: str, message: str, **kwargs: Any) -> Problem:
    return Problem("error", code, message, **kwargs)


def warning(code: str, message: str, **kwargs: Any) -> Problem:
    return Problem("warning", code, message, **kwargs)
