"""Finding the audit policies inside a file: a plain Policy, or ConfigMaps that carry them.

A file is a *policy file* unless its first document is a ConfigMap or a List of them, or
it is a multi-document stream whose first document declares some other kind (not an audit
Policy) and which holds a ConfigMap (e.g. kustomize output with a Namespace first). A
policy file is handed to the loader whole, because kube-apiserver reads only its first
document and that is part of what we check.

In a ConfigMap, a `data` key holds a policy when
* its name is one of `policy.yaml`, `policy.yml`, `policy.json`, `audit-policy.yaml`,
  `audit-policy.yml`, `audit-policy.json` (then even a broken value is checked: that is the
  point), or
* its name ends in `.yaml`, `.yml` or `.json` and the value declares
  `apiVersion: audit.k8s.io/...` or `kind: Policy` (any key case, as the decoder reads it).
`binaryData` is not looked at.

Line numbers inside a value are translated to lines of the file for block literals
(`key: |`), where each value line is one file line; for other scalar styles every finding
points at the key's line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_audit.errors import InputError
from kubectl_audit.policy.yamlsafe import (
    DEFAULT_MAX_BYTES,
    ParsedDocument,
    parse_documents,
    read_text,
)

POLICY_KEYS = frozenset(
    (
        "policy.yaml",
        "policy.yml",
        "policy.json",
        "audit-policy.yaml",
        "audit-policy.yml",
        "audit-policy.json",
    )
)
_POLICY_SUFFIXES = (".yaml", ".yml", ".json")
_DECLARES_POLICY = re.compile(
    r"""^[ \t{]*["']?(?:apiversion["']?[ \t]*:[ \t]*["']?audit\.k8s\.io/"""
    r"""|kind["']?[ \t]*:[ \t]*["']?Policy\b)""",
    re.IGNORECASE | re.MULTILINE,
)
_BLOCK_LITERAL = re.compile(r":[ \t]*\|[-+0-9]*[ \t]*(#.*)?$")


@dataclass(frozen=True)
class PolicySource:
    """One policy document to check, and how to point back into the file it came from."""

    data: str
    location: str | None  # e.g. "ConfigMap kube-system/audit key policy.yaml"; None: whole file
    line_offset: int | None = 0  # file line = policy line + offset; None: use `key_line`
    key_line: int | None = None

    def file_line(self, line: int | None) -> int | None:
        """The line in the file for a line inside this policy document."""
        if self.line_offset is None:
            return self.key_line
        if line is None:
            return self.key_line if self.location else None
        return line + self.line_offset


@dataclass(frozen=True)
class Problem:
    """Something in a ConfigMap file that is not a policy but stops checking one."""

    location: str
    message: str
    line: int | None


@dataclass(frozen=True)
class FileContents:
    policies: tuple[PolicySource, ...]
    problems: tuple[Problem, ...]
    configmaps: int  # how many ConfigMaps were seen (0: a plain policy file)


def _is_configmap(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == "ConfigMap"


def _is_list_of_configmaps(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("kind") not in ("List", "ConfigMapList"):
        return False
    items = value.get("items")
    return isinstance(items, list) and any(_is_configmap(item) for item in items)


def _looks_like_policy(value: Any) -> bool:
    if not isinstance(value, dict):
        return True  # let the loader say what is wrong with it
    declared = False
    for key, item in value.items():
        name = str(key).lower()
        if name == "kind" and item == "Policy":
            return True
        if name == "apiversion" and isinstance(item, str) and item.startswith("audit.k8s.io/"):
            return True
        declared = declared or name in ("kind", "apiversion")
    return not declared  # a document naming some other kind is not a policy attempt


def is_policy_key(key: str, value: Any) -> bool:
    """Whether the ConfigMap data entry `key` carries an audit policy (module docstring)."""
    if key in POLICY_KEYS:
        return True
    if not key.endswith(_POLICY_SUFFIXES) or not isinstance(value, str):
        return False
    return _DECLARES_POLICY.search(value) is not None


def find_policies(
    data: bytes | str, *, source: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> FileContents:
    """The policy documents in a file. Raises InputError when the bytes cannot be read.

    Anything else wrong (YAML errors, a broken policy) is left for the loader to report.
    """
    text = read_text(data, source=source, max_bytes=max_bytes)
    whole_file = FileContents((PolicySource(text, None),), (), 0)
    try:
        documents = parse_documents(text, source=source, go_yaml=True, max_bytes=max_bytes)
    except InputError:
        return whole_file  # not readable as YAML: the loader reports why, with a line
    if not documents or _looks_like_policy(documents[0].data):
        return whole_file
    if not any(_is_configmap(doc.data) or _is_list_of_configmaps(doc.data) for doc in documents):
        return whole_file
    lines = text.splitlines()
    policies: list[PolicySource] = []
    problems: list[Problem] = []
    configmaps = 0
    for document in documents:
        for configmap, prefix in _configmaps_of(document):
            configmaps += 1
            found, trouble = _policies_in(configmap, prefix, document, lines)
            policies.extend(found)
            problems.extend(trouble)
    return FileContents(tuple(policies), tuple(problems), configmaps)


def _configmaps_of(document: ParsedDocument) -> list[tuple[dict[str, Any], str]]:
    """(ConfigMap, its path prefix in the document's line map)."""
    data = document.data
    if _is_configmap(data):
        return [(data, "")]
    if _is_list_of_configmaps(data):
        return [
            (item, f"items[{index}].")
            for index, item in enumerate(data["items"])
            if _is_configmap(item)
        ]
    return []


def _name_of(configmap: Mapping[str, Any]) -> str:
    metadata = configmap.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    name = name if isinstance(name, str) and name else "<unnamed>"
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name


def _data_path(prefix: str, key: str) -> str:
    return (
        f"{prefix}data[{key}]"
        if not re.fullmatch(r"[A-Za-z_$][\w$-]*", key)
        else (f"{prefix}data.{key}")
    )


def _policies_in(
    configmap: dict[str, Any], prefix: str, document: ParsedDocument, lines: list[str]
) -> tuple[list[PolicySource], list[Problem]]:
    name = _name_of(configmap)
    entries = configmap.get("data")
    policies: list[PolicySource] = []
    problems: list[Problem] = []
    if entries is None:
        return policies, problems
    if not isinstance(entries, dict):
        problems.append(
            Problem(
                f"ConfigMap {name}",
                "data must be a map of strings",
                document.lines.get(f"{prefix}data"),
            )
        )
        return policies, problems
    for key, value in entries.items():
        if not is_policy_key(key, value):
            continue
        location = f"ConfigMap {name} key {key}"
        key_line = document.lines.get(_data_path(prefix, key))
        if not isinstance(value, str):
            problems.append(Problem(location, "ConfigMap data values must be strings", key_line))
            continue
        offset = _block_literal_offset(key_line, lines)
        policies.append(PolicySource(value, location, offset, key_line))
    return policies, problems


def _block_literal_offset(key_line: int | None, lines: list[str]) -> int | None:
    """For `key: |` the value's first line is the next file line: offset = key line."""
    if key_line is None or key_line > len(lines):
        return None
    return key_line if _BLOCK_LITERAL.search(lines[key_line - 1]) else None


__all__ = [
    "POLICY_KEYS",
    "FileContents",
    "PolicySource",
    "Problem",
    "find_policies",
    "is_policy_key",
]
