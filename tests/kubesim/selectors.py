"""Label and field selectors, as list and watch requests use them.

Label selectors follow apimachinery `labels.Parse`: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
`k notin (a,b)`, `k` (exists), `!k` (does not exist), joined by commas. Field selectors support
`=`, `==` and `!=` over the fields the real registries index for the resources we serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Predicate = Callable[[dict], bool]

_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "namespaces": ("metadata.name", "status.phase"),
    "configmaps": ("metadata.name", "metadata.namespace"),
    "events": (
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}

_SET_TERM = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    """A selector the real apiserver would reject with 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too, as upstream does.
        return not present or value not in self.values


def _split_terms(selector: str) -> list[str]:
    """Splits on commas that are not inside `( ... )`."""
    terms, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(selector: str) -> list[Requirement]:
    requirements = []
    for term in _split_terms(selector):
        set_term = _SET_TERM.match(term)
        if set_term:
            key, op, values = set_term.groups()
            vals = tuple(v.strip() for v in values.split(",") if v.strip())
            requirements.append(Requirement(key, op, vals))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(Requirement(key.strip(), "!=", (value.strip(),)))
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            requirements.append(Requirement(key.strip(), "=", (value.strip(),)))
        elif term.startswith("!"):
            requirements.append(Requirement(term[1:].strip(), "!"))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", term):
            requirements.append(Requirement(term, "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return requirements


def field_value(obj: dict, path: str) -> str:
    value: object = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(resource: str, selector: str) -> list[tuple[str, str, str]]:
    terms = []
    for term in _split_terms(selector):
        if "!=" in term:
            key, value = term.split("!=", 1)
            op = "!="
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            op = "="
        else:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{term}'")
        key = key.strip()
        if key not in _FIELDS.get(resource, ("metadata.name", "metadata.namespace")):
            raise SelectorError(f"field label not supported: {key}")
        terms.append((key, op, value.strip()))
    return terms


def selector_predicate(resource: str, label_selector: str, field_selector: str) -> Predicate:
    """One predicate for both selectors; raises SelectorError for malformed ones."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(resource, field_selector)

    def matches(obj: dict) -> bool:
        obj_labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(obj_labels) for r in labels) and all(
            (field_value(obj, key) == value) == (op == "=") for key, op, value in fields
        )

    return matches
