"""The audit policy as data: what kube-apiserver's internal `audit.Policy` holds.

Field names follow Python style; `audit.k8s.io/v1` JSON names are given where they
differ. Nothing here is defaulted, trimmed or case-folded: the loader copies values
exactly as the apiserver's decoder does (see reference/audit-policy-spec.md §1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeVar

LEVELS: tuple[str, ...] = ("None", "Metadata", "Request", "RequestResponse")
STAGES: tuple[str, ...] = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def level_rank(level: str) -> int:
    """Order levels None < Metadata < Request < RequestResponse; unknown ranks as None."""
    return _LEVEL_RANK.get(level, 0)


@dataclass(frozen=True)
class GroupResources:
    """One entry of a rule's `resources` list."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()  # JSON: resourceNames


@dataclass(frozen=True)
class PolicyRule:
    """One rule. Empty tuples mean "no restriction", as upstream."""

    level: str = ""
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()  # JSON: userGroups
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()  # JSON: nonResourceURLs
    omit_stages: tuple[str, ...] = ()  # JSON: omitStages
    omit_managed_fields: bool | None = None  # JSON: omitManagedFields; None = inherit
    line: int | None = None  # 1-based line where the rule starts in its file, if known

    @property
    def is_resource_rule(self) -> bool:
        return bool(self.namespaces or self.resources)

    @property
    def is_non_resource_rule(self) -> bool:
        return not self.is_resource_rule and bool(self.non_resource_urls)

    def to_dict(self) -> dict[str, Any]:
        """The rule as audit.k8s.io/v1 JSON would spell it (empty fields left out)."""
        out: dict[str, Any] = {"level": self.level}
        for key, value in (
            ("users", self.users),
            ("userGroups", self.user_groups),
            ("verbs", self.verbs),
            ("namespaces", self.namespaces),
            ("nonResourceURLs", self.non_resource_urls),
            ("omitStages", self.omit_stages),
        ):
            if value:
                out[key] = list(value)
        if self.resources:
            out["resources"] = [_group_resources_to_dict(gr) for gr in self.resources]
        if self.omit_managed_fields is not None:
            out["omitManagedFields"] = self.omit_managed_fields
        return out


def _group_resources_to_dict(gr: GroupResources) -> dict[str, Any]:
    out: dict[str, Any] = {"group": gr.group}
    if gr.resources:
        out["resources"] = list(gr.resources)
    if gr.resource_names:
        out["resourceNames"] = list(gr.resource_names)
    return out


_FrozenT = TypeVar("_FrozenT", "GroupResources", "PolicyRule")
_FIELD_NAMES = {cls: frozenset(f.name for f in fields(cls)) for cls in (GroupResources, PolicyRule)}


def assembled(cls: type[_FrozenT], values: dict[str, Any]) -> _FrozenT:
    """`cls(**values)` for a rule or a resources entry, with every field given.

    Equal to what the constructor makes, about five times faster: the frozen dataclass
    __init__ pays an object.__setattr__ per field, and the loader builds every rule of
    every policy the webhook admits. A missing or unknown field is a TypeError, as with
    the constructor.
    """
    if values.keys() != _FIELD_NAMES[cls]:
        raise TypeError(f"{cls.__name__} needs exactly the fields {sorted(_FIELD_NAMES[cls])}")
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


_EMPTY_LINES: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True)
class Policy:
    """A decoded policy. `lines` maps field paths (`rules[2].level`) to 1-based lines."""

    rules: tuple[PolicyRule, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    lines: Mapping[str, int] = field(
        default_factory=lambda: _EMPTY_LINES, compare=False, repr=False
    )

    def line_of(self, path: str | None) -> int | None:
        """The line of `path`, or of its nearest enclosing field that has one."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = _parent_path(path)
        return None


def _parent_path(path: str) -> str:
    """`rules[2].resources.group` -> `rules[2].resources` -> `rules[2]` -> `rules` -> ``."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    dot = path.rfind(".")
    return path[:dot] if dot >= 0 else ""


@dataclass(frozen=True)
class Finding:
    """One error or warning about a policy, in the shape `validate -o json` prints.

    `type` is the upstream field-error type (`Required`, `NotSupported`, `Invalid`) for
    validation errors; `DecodeError`, `GroupVersionError`, `NoRulesError` for load
    failures; `UnknownField`, `DuplicateField`, `Lint` for warnings.
    """

    type: str
    message: str
    field: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "type": self.type, "message": self.message, "line": self.line}


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestAttributes:
    """What the audit filter knows about a request when it evaluates the policy (§5.4).

    `user` is None for requests that carry no user information (failed authentication).
    """

    verb: str
    user: UserInfo | None = None
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one request: what kube-apiserver's checker returns."""

    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool
    rule_index: int | None  # index of the first matching rule, None when nothing matched

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "omitStages": sorted(self.omit_stages, key=_stage_order),
            "omitManagedFields": self.omit_managed_fields,
            "rule": self.rule_index,
        }


def _stage_order(stage: str) -> tuple[int, str]:
    return (STAGES.index(stage) if stage in STAGES else len(STAGES), stage)
