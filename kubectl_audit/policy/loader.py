"""Load an audit policy exactly as kube-apiserver 1.36 does (reference/audit-policy-spec.md §3).

The steps and their order follow the apiserver's policy reader:

1. JSON when the text starts with `{` after white space, else the FIRST YAML document,
   read with go-yaml v2 scalar rules (`no`, `on`, `1e3` are not strings).
2. apiVersion/kind are found case-insensitively; a missing apiVersion decodes as the
   internal version (rejected in step 5), v1alpha1/v1beta1 are not registered any more.
3. The body is decoded case-sensitively into the v1 Policy type. A wrong JSON type is a
   hard error (the earliest one, in JSON key order, as Go reports it); unknown, mis-cased
   or repeated keys are "strict" errors that only make the apiserver fall back to lenient
   decoding, which drops them. We report each as a warning with its line.
4. Validation (§4), then the rule-count check.

Errors carry the apiserver's own wording where it is observable (`failed decoding: ...`,
`unknown group version field ...`, `rules[0].level: Required value`,
`loaded illegal policy with 0 rules`). Known deviations in wording, all inside
`failed decoding:` messages: YAML and JSON syntax errors use libyaml's / Python's text
(with a true line number) instead of go-yaml's / Go's, and budget refusals (alias bombs,
deep nesting, oversize input) are ours, since Go has different limits.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kubectl_audit.errors import InputError
from kubectl_audit.policy.model import Finding, GroupResources, Policy, PolicyRule, assembled
from kubectl_audit.policy.validation import validate_policy
from kubectl_audit.policy.yamlsafe import (
    DEFAULT_MAX_BYTES,
    DuplicateKey,
    ParsedDocument,
    YamlBudgetError,
    YamlSyntaxError,
    parse_document,
    read_text,
)

GROUP = "audit.k8s.io"
VERSION = "v1"
INTERNAL_VERSION = "__internal"
# The scheme name Go prints in "not registered" errors: the audit scheme is registered in
# k8s.io/apiserver pkg/audit/scheme.go; a real v1.29.1 kube-apiserver log prints this.
SCHEME_NAME = "pkg/audit/scheme.go:30"
# Kinds the audit scheme knows in audit.k8s.io/v1 besides Policy (they decode, then fail
# to convert to a Policy) - the group's own types plus the meta options registered with it.
_OTHER_V1_KINDS = (
    "Event",
    "EventList",
    "PolicyList",
    "WatchEvent",
    "ListOptions",
    "GetOptions",
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
)
_INTERNAL_KINDS = ("Event", "EventList", "Policy", "PolicyList", "WatchEvent")
_TYPEMETA_STRUCT = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)

DECODE_ERROR = "DecodeError"
GROUP_VERSION_ERROR = "GroupVersionError"
NO_RULES_ERROR = "NoRulesError"
UNKNOWN_FIELD = "UnknownField"
DUPLICATE_FIELD = "DuplicateField"


@dataclass(frozen=True)
class LoadResult:
    """The apiserver's verdict: a policy when it would load, else the errors that stop it.

    Warnings (ignored fields) are reported either way; they never make a policy invalid.
    """

    policy: Policy | None
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return self.policy is not None and not self.errors


# --- the v1 Policy type, as Go's JSON decoder sees it --------------------------------------


@dataclass(frozen=True)
class _Scalar:
    go_type: str  # what Go prints: "string", "v1.Level", "bool", "int64", ...
    python: type


@dataclass(frozen=True)
class _List:
    go_type: str
    item: Any  # a spec


@dataclass(frozen=True)
class _Map:
    go_type: str
    value: Any


@dataclass(frozen=True)
class _Struct:
    name: str  # Go struct name, used in type errors: "PolicyRule"
    go_type: str  # "v1.PolicyRule"
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class _Any:
    go_type: str


@dataclass(frozen=True)
class _Time:
    go_type: str


_STRING = _Scalar("string", str)
_BOOL = _Scalar("bool", bool)
_INT64 = _Scalar("int64", int)
_STRINGS = _List("[]string", _STRING)
_STAGES = _List("[]v1.Stage", _Scalar("v1.Stage", str))
_STRING_MAP = _Map("map[string]string", _STRING)

_OWNER_REFERENCE = _Struct(
    "OwnerReference",
    "v1.OwnerReference",
    {
        "apiVersion": _STRING,
        "kind": _STRING,
        "name": _STRING,
        "uid": _Scalar("types.UID", str),
        "controller": _BOOL,
        "blockOwnerDeletion": _BOOL,
    },
)
_MANAGED_FIELDS_ENTRY = _Struct(
    "ManagedFieldsEntry",
    "v1.ManagedFieldsEntry",
    {
        "manager": _STRING,
        "operation": _Scalar("v1.ManagedFieldsOperationType", str),
        "apiVersion": _STRING,
        "time": _Time("v1.Time"),
        "fieldsType": _STRING,
        "fieldsV1": _Any("v1.FieldsV1"),
        "subresource": _STRING,
    },
)
_OBJECT_META = _Struct(
    "ObjectMeta",
    "v1.ObjectMeta",
    {
        "name": _STRING,
        "generateName": _STRING,
        "namespace": _STRING,
        "selfLink": _STRING,
        "uid": _Scalar("types.UID", str),
        "resourceVersion": _STRING,
        "generation": _INT64,
        "creationTimestamp": _Time("v1.Time"),
        "deletionTimestamp": _Time("v1.Time"),
        "deletionGracePeriodSeconds": _INT64,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "ownerReferences": _List("[]v1.OwnerReference", _OWNER_REFERENCE),
        "finalizers": _STRINGS,
        "managedFields": _List("[]v1.ManagedFieldsEntry", _MANAGED_FIELDS_ENTRY),
    },
)
_GROUP_RESOURCES = _Struct(
    "GroupResources",
    "v1.GroupResources",
    {"group": _STRING, "resources": _STRINGS, "resourceNames": _STRINGS},
)
_POLICY_RULE = _Struct(
    "PolicyRule",
    "v1.PolicyRule",
    {
        "level": _Scalar("v1.Level", str),
        "users": _STRINGS,
        "userGroups": _STRINGS,
        "verbs": _STRINGS,
        "resources": _List("[]v1.GroupResources", _GROUP_RESOURCES),
        "namespaces": _STRINGS,
        "nonResourceURLs": _STRINGS,
        "omitStages": _STAGES,
        "omitManagedFields": _BOOL,
    },
)
_POLICY = _Struct(
    "Policy",
    "v1.Policy",
    {
        "apiVersion": _STRING,
        "kind": _STRING,
        "metadata": _OBJECT_META,
        "rules": _List("[]v1.PolicyRule", _POLICY_RULE),
        "omitStages": _STAGES,
        "omitManagedFields": _BOOL,
    },
)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})"
)


_SPECIAL_FLOAT = re.compile(r"\.(?:inf|nan)", re.IGNORECASE)


class _TypeMismatch(Exception):
    """Go's UnmarshalTypeError: the earliest wrong JSON type ends decoding."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


@dataclass
class _Decoder:
    """Decodes JSON-shaped data against a spec the way sigs.k8s.io/json does."""

    sort_keys: bool  # YAML input reaches Go as JSON with sorted keys
    lines: Mapping[str, int]
    unknown: list[tuple[str, str, str]]  # (path, key, where it belongs)

    def decode(self, value: Any, spec: Any, path: str, stack: tuple[str, ...], struct: str) -> Any:
        if value is None:
            return None  # null leaves the Go zero value
        if isinstance(spec, _Struct):
            if not isinstance(value, dict):
                raise self._mismatch(value, spec.go_type, path, stack, struct)
            if _struct_conforms(value, spec):
                return value  # what decoding gives, without paths or sorted keys
            return self._struct(value, spec, path, stack)
        if isinstance(spec, _List):
            if not isinstance(value, list):
                raise self._mismatch(value, spec.go_type, path, stack, struct)
            if _all_strings(value, spec.item):
                return list(value)  # what decoding each item gives, without item paths
            return [
                self.decode(item, spec.item, f"{path}[{index}]", stack, struct)
                for index, item in enumerate(value)
            ]
        if isinstance(spec, _Map):
            if not isinstance(value, dict):
                raise self._mismatch(value, spec.go_type, path, stack, struct)
            keys = sorted(value) if self.sort_keys else list(value)
            return {
                key: self.decode(value[key], spec.value, f"{path}[{key}]", stack, struct)
                for key in keys
            }
        if isinstance(spec, _Scalar):
            return self._scalar(value, spec, path, stack, struct)
        if isinstance(spec, _Time):
            if not isinstance(value, str):
                raise _TypeMismatch(
                    f"json: cannot unmarshal {_json_type(value)} into Go value of type string",
                    path,
                )
            if not _RFC3339.fullmatch(value):
                raise _TypeMismatch(
                    f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                    f'"{value}" as RFC 3339',
                    path,
                )
            return value
        return value  # _Any: raw JSON kept by a custom unmarshaler

    def _scalar(
        self, value: Any, spec: _Scalar, path: str, stack: tuple[str, ...], struct: str
    ) -> Any:
        if spec.python is bool:
            if isinstance(value, bool):
                return value
        elif spec.python is int:
            if isinstance(value, int) and not isinstance(value, bool):
                if -(1 << 63) <= value < (1 << 63):
                    return value
                raise self._mismatch(value, spec.go_type, path, stack, struct, number=True)
            if isinstance(value, float):
                raise self._mismatch(value, spec.go_type, path, stack, struct, number=True)
        elif isinstance(value, str):
            return value
        raise self._mismatch(value, spec.go_type, path, stack, struct)

    def _struct(
        self, value: dict[str, Any], spec: _Struct, path: str, stack: tuple[str, ...]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        keys = sorted(value) if self.sort_keys else list(value)
        for key in keys:
            child_path = f"{path}.{key}" if path else key
            field_spec = spec.fields.get(key)
            if field_spec is None:
                self.unknown.append((child_path, key, _where_it_belongs(key, spec)))
                continue
            out[key] = self.decode(value[key], field_spec, child_path, (*stack, key), spec.name)
        return out

    def _mismatch(
        self,
        value: Any,
        go_type: str,
        path: str,
        stack: tuple[str, ...],
        struct: str,
        *,
        number: bool = False,
    ) -> _TypeMismatch:
        described = _json_type(value)
        if number:
            described = f"number {_go_number_text(value)}"
        where = f"Go struct field {struct}.{'.'.join(stack)}" if stack else "Go value"
        return _TypeMismatch(
            f"json: cannot unmarshal {described} into {where} of type {go_type}", path
        )


def _all_strings(values: list[Any], item_spec: Any) -> bool:
    """`values` are strings (or null) for a list of Go strings: each decodes as itself."""
    if type(item_spec) is not _Scalar or item_spec.python is not str:
        return False
    return {*map(type, values)} <= _STRING_OR_NULL


def _conforms(value: Any, spec: Any) -> bool:
    """Whether `_Decoder.decode` would meet no unknown key and no wrong type in `value`.

    Then decoding changes nothing (known keys are kept, scalars copied as they are), so
    the value itself is the decoded data. This check builds no paths and sorts no keys;
    when it says no, the careful decoder runs and finds what to report, in Go's order.
    It may say no more often than needed (a str subclass, say), never less.
    """
    if value is None:
        return True
    kind = type(spec)
    if kind is _Struct:
        return type(value) is dict and _struct_conforms(value, spec)
    if kind is _List:
        if type(value) is not list:
            return False
        item_spec = spec.item
        if _all_strings(value, item_spec):
            return True
        for item in value:  # noqa: SIM110 - a loop: no generator in the hot path
            if not _conforms(item, item_spec):
                return False
        return True
    if kind is _Map:
        if type(value) is not dict:
            return False
        for item in value.values():  # noqa: SIM110
            if not _conforms(item, spec.value):
                return False
        return True
    if kind is _Scalar:
        if spec.python is str:
            return type(value) is str
        if spec.python is bool:
            return type(value) is bool
        return type(value) is int and -(1 << 63) <= value < (1 << 63)
    if kind is _Time:
        return type(value) is str and _RFC3339.fullmatch(value) is not None
    return True  # _Any


def _struct_conforms(value: dict[str, Any], spec: _Struct) -> bool:
    fields = spec.fields
    for key, item in value.items():
        field_spec = fields.get(key)
        if field_spec is None or not _conforms(item, field_spec):
            return False
    return True


def _where_it_belongs(key: str, spec: _Struct) -> str:
    """A hint for an unknown key: the field it was probably meant to be, or where it goes."""
    for name in spec.fields:
        if name.lower() == key.lower():
            return f'did you mean "{name}"? field names are case-sensitive'
    for owner, label in (
        (_POLICY, "the policy's top level"),
        (_POLICY_RULE, "a rule"),
        (_GROUP_RESOURCES, "a resources entry"),
    ):
        if owner is spec:
            continue
        for name in owner.fields:
            if name.lower() == key.lower():
                return f'"{name}" belongs to {label}, not here'
    close = difflib.get_close_matches(key, list(spec.fields), n=1, cutoff=0.75)
    if close:
        return f'did you mean "{close[0]}"?'
    return "not a field of " + {
        "Policy": "the policy",
        "PolicyRule": "a rule",
        "GroupResources": "a resources entry",
    }.get(spec.name, spec.go_type)


# --- reading the document ------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    data: Any
    lines: Mapping[str, int]
    duplicates: tuple[DuplicateKey, ...]
    is_json: bool


class _DecodeFailure(Exception):
    def __init__(self, message: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.field = field


def _read_document(text: str, source: str) -> _Document:
    if text.lstrip()[:1] == "{":
        return _read_json(text, source)
    try:
        parsed = parse_document(text, source=source, go_yaml=True, max_bytes=len(text) * 4 + 16)
    except YamlBudgetError as error:
        raise _DecodeFailure(
            f"error converting YAML to JSON: {_strip_source(error.message, source)}", error.line
        ) from None
    except YamlSyntaxError as error:
        where = f"line {error.line}: " if error.line else ""
        raise _DecodeFailure(
            f"error converting YAML to JSON: yaml: {where}{error.problem}", error.line
        ) from None
    if _SPECIAL_FLOAT.search(text):  # the only spellings of NaN and infinities
        _reject_non_finite(parsed.data)
    return _Document(parsed.data, parsed.lines, parsed.duplicates, is_json=False)


def _strip_source(message: str, source: str) -> str:
    """`p.yaml:3: problem` -> `problem` (the Finding carries the line)."""
    prefix = f"{source}:"
    if not message.startswith(prefix):
        return message
    line, sep, problem = message[len(prefix) :].partition(": ")
    return problem if sep and line.isdigit() else message


def _reject_non_finite(data: Any) -> None:
    """sigs.k8s.io/yaml cannot write NaN or infinities into JSON: the conversion fails."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise _DecodeFailure(f"error converting YAML to JSON: json: unsupported value: {shown}")
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _read_json(text: str, source: str) -> _Document:
    json_duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                json_duplicates.append(key)
            out[key] = value
        return out

    def no_constants(name: str) -> Any:
        raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constants)
    except json.JSONDecodeError as error:
        raise _DecodeFailure(
            f"couldn't get version/kind; json parse error: {error.msg} "
            f"(line {error.lineno} column {error.colno})",
            error.lineno,
        ) from None
    except (ValueError, RecursionError) as error:
        raise _DecodeFailure(f"couldn't get version/kind; json parse error: {error}") from None
    # JSON is YAML: reading it again with the YAML reader gives lines and duplicate paths.
    try:
        parsed: ParsedDocument | None = parse_document(
            text, source=source, go_yaml=True, max_bytes=len(text) * 4 + 16
        )
    except InputError:
        parsed = None
    if parsed is not None and parsed.data == data:
        return _Document(data, parsed.lines, parsed.duplicates, is_json=True)
    duplicates = tuple(DuplicateKey(key, key, 0, 0) for key in json_duplicates)
    return _Document(data, MappingProxyType({}), duplicates, is_json=True)


# --- apiVersion / kind -----------------------------------------------------------------------


@dataclass(frozen=True)
class _GVK:
    group: str
    version: str
    kind: str

    def __str__(self) -> str:
        group_version = f"{self.group}/{self.version}" if self.group else self.version
        return f"{group_version}, Kind={self.kind}"

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _type_meta(document: _Document) -> tuple[str, str]:
    """apiVersion and kind as the meta factory reads them: keys matched case-insensitively."""
    data = document.data
    if data is None:
        return "", ""
    if not isinstance(data, dict):
        raise _DecodeFailure(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(data)} into Go value of type {_TYPEMETA_STRUCT}"
        )
    found = {"apiversion": "", "kind": ""}
    keys = list(data) if document.is_json else sorted(data)
    for key in keys:
        name = key.lower()
        if name not in found:
            continue
        value = data[key]
        if value is None:
            continue
        if not isinstance(value, str):
            field = "apiVersion" if name == "apiversion" else "kind"
            raise _DecodeFailure(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_type(value)} into Go struct field .{field} of type string",
                document.lines.get(key),
                key,
            )
        found[name] = value
    return found["apiversion"], found["kind"]


def _type_meta_key(data: dict[str, Any], name: str) -> str | None:
    """The key that spells `apiVersion` (or `kind`), whatever its case."""
    return next((key for key in data if key.lower() == name), None)


def _resolve_gvk(api_version: str, kind: str, text: str) -> _GVK:
    """The group/version/kind the decoder settles on (into = the internal Policy)."""
    if api_version in ("", "/"):
        group, version = "", ""
    elif api_version.count("/") == 0:
        group, version = "", api_version
    elif api_version.count("/") == 1:
        group, version = api_version.split("/")
    else:
        raise _DecodeFailure(f"unexpected GroupVersion string: {api_version}")
    kind = kind or "Policy"
    if not version and not group:
        group, version = GROUP, INTERNAL_VERSION
    if not version and group == GROUP:
        version = INTERNAL_VERSION
    if not version:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise _DecodeFailure(f"Object 'apiVersion' is missing in '{shown}'")
    gvk = _GVK(group, version, kind)
    if group == GROUP and version in (VERSION, INTERNAL_VERSION):
        if kind == "Policy":
            return gvk
        known = _OTHER_V1_KINDS if version == VERSION else _INTERNAL_KINDS
        if kind in known:
            package = "v1" if version == VERSION else "audit"
            raise _DecodeFailure(
                f"converting ({package}.{kind}) to (audit.Policy): unknown conversion"
            )
        if version == INTERNAL_VERSION:
            raise _DecodeFailure(
                f'no kind "{kind}" is registered for the internal version of group '
                f'"{group}" in scheme "{SCHEME_NAME}"'
            )
    raise _DecodeFailure(
        f'no kind "{kind}" is registered for version "{gvk.group_version}" '
        f'in scheme "{SCHEME_NAME}"'
    )


# --- building the model ---------------------------------------------------------------------
#
# The model is built from decoded data, or, quickly, straight from the document when it has
# nothing for the decoder to report: then decoding would only copy it (known keys are kept,
# values as they are). The converters below check the JSON types as they go and raise
# _Irregular at the first unknown key or wrong type, for the careful decoder to report it
# with Go's path and in Go's order; on decoded data they never raise.


class _Irregular(Exception):
    """An unknown key or a wrong type: only the careful decoder can say which and where."""


_STRING_OR_NULL = frozenset({str, type(None)})


def _strings(values: Any) -> tuple[str, ...]:
    if type(values) is not list:
        raise _Irregular
    try:
        "".join(values)  # the usual case, all strings, checked in C
    except TypeError:
        if not all(value is None or isinstance(value, str) for value in values):
            raise _Irregular from None
        return tuple("" if value is None else value for value in values)  # null is ""
    return tuple(values)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Irregular
    return value


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise _Irregular
    return value


def _entries(values: Any) -> tuple[GroupResources, ...]:
    if type(values) is not list:
        raise _Irregular
    return tuple(map(_group_resources, values))


# Each JSON key of a rule or entry: the model field it fills and how. A key that is absent
# or null leaves the field's default, as decoding does.
_ENTRY_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "group": ("group", _text),
    "resources": ("resources", _strings),
    "resourceNames": ("resource_names", _strings),
}
_ENTRY_DEFAULTS: dict[str, Any] = {"group": "", "resources": (), "resource_names": ()}
_RULE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "level": ("level", _text),
    "users": ("users", _strings),
    "userGroups": ("user_groups", _strings),
    "verbs": ("verbs", _strings),
    "resources": ("resources", _entries),
    "namespaces": ("namespaces", _strings),
    "nonResourceURLs": ("non_resource_urls", _strings),
    "omitStages": ("omit_stages", _strings),
    "omitManagedFields": ("omit_managed_fields", _flag),
}
_RULE_DEFAULTS: dict[str, Any] = {
    "level": "",
    "users": (),
    "user_groups": (),
    "verbs": (),
    "resources": (),
    "namespaces": (),
    "non_resource_urls": (),
    "omit_stages": (),
    "omit_managed_fields": None,
}


def _fields(
    data: Any,
    conversions: dict[str, tuple[str, Callable[[Any], Any]]],
    defaults: dict[str, Any],
) -> dict[str, Any]:
    """The model's field values for the JSON object `data` (null: all defaults)."""
    values = dict(defaults)
    if data is None:
        return values
    if type(data) is not dict:
        raise _Irregular
    for key, value in data.items():
        conversion = conversions.get(key)
        if conversion is None:
            raise _Irregular
        if value is not None:
            name, convert = conversion
            values[name] = convert(value)
    return values


def _group_resources(data: Any) -> GroupResources:
    return assembled(GroupResources, _fields(data, _ENTRY_FIELDS, _ENTRY_DEFAULTS))


def _rule(data: Any, line: int | None) -> PolicyRule:
    values = _fields(data, _RULE_FIELDS, _RULE_DEFAULTS)
    values["line"] = line
    return assembled(PolicyRule, values)


def _policy(data: dict[str, Any], lines: Mapping[str, int]) -> Policy:
    rules = data.get("rules")
    if rules is not None and type(rules) is not list:
        raise _Irregular
    omit_stages = data.get("omitStages")
    return Policy(
        rules=tuple(
            _rule(item, lines.get(f"rules[{index}]")) for index, item in enumerate(rules or ())
        ),
        omit_stages=_strings(omit_stages) if omit_stages is not None else (),
        omit_managed_fields=bool(data.get("omitManagedFields")),
        lines=lines,
    )


def _decoded_policy(decoder: _Decoder, body: dict[str, Any], lines: Mapping[str, int]) -> Policy:
    """The policy in `body`, decoded as Go does; raises _TypeMismatch as Go would.

    Quickly, straight from `body`, when it holds nothing to report; else through the
    careful decoder, which also leaves unknown keys in `decoder.unknown`.
    """
    try:
        fields = _POLICY.fields
        for key, value in body.items():
            spec = fields.get(key)
            if spec is None or (key != "rules" and not _conforms(value, spec)):
                raise _Irregular
        return _policy(body, lines)
    except _Irregular:
        return _policy(decoder.decode(body, _POLICY, "", (), ""), lines)


# --- the steps ------------------------------------------------------------------------------


def _warnings(
    unknown: list[tuple[str, str, str]], duplicates: tuple[DuplicateKey, ...], lines: Callable
) -> list[Finding]:
    found: list[Finding] = []
    for path, _key, advice in unknown:
        found.append(
            Finding(
                UNKNOWN_FIELD,
                f'unknown field "{path}" ({advice}); kube-apiserver ignores it',
                path,
                lines(path),
            )
        )
    for duplicate in duplicates:
        where = f" (first at line {duplicate.first_line})" if duplicate.first_line else ""
        found.append(
            Finding(
                DUPLICATE_FIELD,
                f'duplicate field "{duplicate.path}"{where}; kube-apiserver uses the last value',
                duplicate.path,
                duplicate.line or None,
            )
        )
    found.sort(key=lambda finding: (finding.line is None, finding.line or 0))
    return found


def load_policy(
    data: bytes | str, *, source: str = "<policy>", max_bytes: int = DEFAULT_MAX_BYTES
) -> LoadResult:
    """Load `data` the way kube-apiserver loads `--audit-policy-file` (spec §3.1).

    Never raises for bad content: every problem is a Finding. `source` only names the
    input in messages about unreadable bytes.
    """
    try:
        text = read_text(data, source=source, max_bytes=max_bytes)
    except InputError as error:
        return _failed(DECODE_ERROR, f"failed decoding: {error.message}")
    try:
        document = _read_document(text, source)
    except _DecodeFailure as failure:
        return _failed(DECODE_ERROR, f"failed decoding: {failure.message}", failure.line)

    try:
        api_version, kind = _type_meta(document)
        gvk = _resolve_gvk(api_version, kind, text)
    except _DecodeFailure as failure:
        if failure.field is None and isinstance(document.data, dict):
            failure.field = _type_meta_key(document.data, "apiversion")
            failure.line = document.lines.get(failure.field or "")
        return _failed(
            DECODE_ERROR, f"failed decoding: {failure.message}", failure.line, failure.field
        )

    decoder = _Decoder(sort_keys=not document.is_json, lines=document.lines, unknown=[])
    lines = _read_only(document.lines)

    def line_of(path: str | None) -> int | None:
        return Policy(lines=lines).line_of(path)

    body = document.data if isinstance(document.data, dict) else {}
    try:
        policy = _decoded_policy(decoder, body, lines)
    except _TypeMismatch as mismatch:
        return _failed(
            DECODE_ERROR,
            f"failed decoding: {mismatch.message}",
            line_of(mismatch.path),
            mismatch.path or None,
        )
    warnings = tuple(_warnings(decoder.unknown, document.duplicates, line_of))

    if gvk.group != GROUP or gvk.version != VERSION:
        key = _type_meta_key(body, "apiversion") or "apiVersion"
        error = Finding(
            GROUP_VERSION_ERROR,
            f"unknown group version field {gvk} in policy",
            key,
            document.lines.get(key),
        )
        return LoadResult(None, (error,), warnings)

    errors = validate_policy(policy)
    if errors:
        return LoadResult(None, errors, warnings)
    if not policy.rules:
        error = Finding(
            NO_RULES_ERROR, "loaded illegal policy with 0 rules", "rules", line_of("rules")
        )
        return LoadResult(None, (error,), warnings)
    return LoadResult(policy, (), warnings)


def _read_only(lines: Mapping[str, int]) -> Mapping[str, int]:
    """`lines` as the Policy keeps it: a read-only view that nobody else can change.

    The YAML reader already hands over such a view of a dict only it held; anything else
    is copied.
    """
    return lines if isinstance(lines, MappingProxyType) else MappingProxyType(dict(lines))


def _failed(
    kind: str, message: str, line: int | None = None, field: str | None = None
) -> LoadResult:
    return LoadResult(None, (Finding(kind, message, field, line),), ())


__all__ = [
    "DECODE_ERROR",
    "DUPLICATE_FIELD",
    "GROUP_VERSION_ERROR",
    "NO_RULES_ERROR",
    "UNKNOWN_FIELD",
    "LoadResult",
    "load_policy",
]
