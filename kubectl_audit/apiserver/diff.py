"""The unified diff `enable --dry-run` / `disable --dry-run` show for a manifest."""

from __future__ import annotations

import difflib

MANIFEST_PATH = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def manifest_diff(
    old: str, new: str, *, node: str | None = None, path: str = MANIFEST_PATH, context: int = 3
) -> str:
    """`diff -u` of two versions of a file, labelled with the node; "" when they are equal.

    Lines without a final newline get the `\\ No newline at end of file` marker, as diff does.
    """
    if old == new:
        return ""
    where = f"{node}:{path}" if node else path
    lines = difflib.unified_diff(
        _lines(old),
        _lines(new),
        fromfile=f"a{where}" if where.startswith("/") else f"a/{where}",
        tofile=f"b{where}" if where.startswith("/") else f"b/{where}",
        n=context,
    )
    return "".join(lines)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
