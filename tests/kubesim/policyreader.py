"""The simulated kube-apiserver's own audit-policy reader and level matcher.

Deliberately independent of ``kubectl_audit.policy`` (DESIGN.md §5): a bug in the plugin's
engine must not be hidden by the simulator sharing it. It follows
/work/shared/reference/audit-policy-spec.md §3-§5 (kube-apiserver 1.36), closely enough for
the verdicts the plugin's tests rely on: what loads, what fails with which message, and which
level a request gets. It is small on purpose; it does not try to reproduce every decoder
corner (e.g. Go's exact type-error wording).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
GROUP_VERSION = "audit.k8s.io/v1"
# As a v1.29.1 kube-apiserver prints it (RX-M lab log of `crictl logs`; rke2's vendored
# build printed "k8s.io/apiserver/pkg/audit/scheme.go:30").
_SCHEME = 'in scheme "pkg/audit/scheme.go:30"'
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


class PolicyLoadError(Exception):
    """The policy does not load; str() is the apiserver's error text after 'loading audit
    policy file: '."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    """What the matcher needs to know about one request (spec §5.4)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


# ---------------------------------------------------------------- decoding


class _GoYamlLoader(yaml.SafeLoader):
    """YAML 1.1 like go-yaml v2 for untyped decoding: timestamps stay strings."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


_GoYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
# go-yaml v2 also resolves the single letters y/Y/n/N as booleans (spec §3.2).
_GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
)
_BOOL_TEXT = {"y": True, "Y": True, "n": False, "N": False}


def _bool_with_letters(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    text = str(loader.construct_scalar(node))
    if text in _BOOL_TEXT:
        return _BOOL_TEXT[text]
    return bool(yaml.SafeLoader.construct_yaml_bool(loader, node))


_GoYamlLoader.add_constructor("tag:yaml.org,2002:bool", _bool_with_letters)


def _first_document(text: str) -> object:
    """Only the first YAML document counts (spec §3.2); later ones are never parsed."""
    loader = _GoYamlLoader(text)
    try:
        if not loader.check_node():
            return None
        node = loader.get_node()
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _decode(data: bytes) -> object:
    text = data.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise PolicyLoadError(f"failed decoding: {exc}") from exc
    try:
        return _first_document(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PolicyLoadError(
            f"failed decoding: error converting YAML to JSON: yaml: {where}{problem}"
        ) from exc


def _go_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: object, field: str, want: str) -> PolicyLoadError:
    return PolicyLoadError(
        f"failed decoding: json: cannot unmarshal {_go_type(value)} into Go struct field "
        f"{field} of type {want}"
    )


def _strings(raw: dict, key: str, field: str, unknown: list[str]) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _type_error(value, field, "[]string")
    for item in value:
        if item is not None and not isinstance(item, str):
            raise _type_error(item, field, "string")
    return tuple("" if item is None else item for item in value)


def _check_keys(raw: dict, allowed: Sequence[str], where: str, unknown: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            unknown.append(f'unknown field "{where}{key}"')


def _group_resources(raw: object, i: int, unknown: list[str]) -> GroupResources:
    field = "PolicyRule.rules.resources"
    if raw is None:
        return GroupResources()
    if not isinstance(raw, dict):
        raise _type_error(raw, field, "v1.GroupResources")
    _check_keys(raw, ("group", "resources", "resourceNames"), f"rules[{i}].resources[].", unknown)
    group = raw.get("group")
    if group is not None and not isinstance(group, str):
        raise _type_error(group, f"{field}.group", "string")
    return GroupResources(
        group=group or "",
        resources=_strings(raw, "resources", f"{field}.resources", unknown),
        resource_names=_strings(raw, "resourceNames", f"{field}.resourceNames", unknown),
    )


_RULE_KEYS = (
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
)


def _rule(raw: object, i: int, unknown: list[str]) -> tuple[Rule, tuple[str, ...]]:
    """Returns the rule and its omitStages as written (validation needs the raw strings)."""
    if raw is None:
        return Rule(level=""), ()
    if not isinstance(raw, dict):
        raise _type_error(raw, "Policy.rules", "v1.PolicyRule")
    _check_keys(raw, _RULE_KEYS, f"rules[{i}].", unknown)
    level = raw.get("level")
    if level is not None and not isinstance(level, str):
        raise _type_error(level, "PolicyRule.rules.level", "v1.Level")
    managed = raw.get("omitManagedFields")
    if managed is not None and not isinstance(managed, bool):
        raise _type_error(managed, "PolicyRule.rules.omitManagedFields", "bool")
    resources = raw.get("resources")
    if resources is not None and not isinstance(resources, list):
        raise _type_error(resources, "PolicyRule.rules.resources", "[]v1.GroupResources")
    stages = _strings(raw, "omitStages", "PolicyRule.rules.omitStages", unknown)
    rule = Rule(
        level=level or "",
        users=_strings(raw, "users", "PolicyRule.rules.users", unknown),
        user_groups=_strings(raw, "userGroups", "PolicyRule.rules.userGroups", unknown),
        verbs=_strings(raw, "verbs", "PolicyRule.rules.verbs", unknown),
        resources=tuple(_group_resources(r, i, unknown) for r in resources or ()),
        namespaces=_strings(raw, "namespaces", "PolicyRule.rules.namespaces", unknown),
        non_resource_urls=_strings(
            raw, "nonResourceURLs", "PolicyRule.rules.nonResourceURLs", unknown
        ),
        omit_stages=frozenset(stages),
    )
    return rule, stages


def _group_version_kind(doc: dict) -> tuple[str, str]:
    """apiVersion/kind are found case-insensitively (spec §3.3); the body is case-sensitive."""
    api_version = kind = None
    for key, value in doc.items():
        if isinstance(key, str) and key.lower() == "apiversion" and api_version is None:
            api_version = value
        if isinstance(key, str) and key.lower() == "kind" and kind is None:
            kind = value
    if api_version is not None and not isinstance(api_version, str):
        raise PolicyLoadError("failed decoding: couldn't get version/kind; json parse error")
    if kind is not None and not isinstance(kind, str):
        raise PolicyLoadError("failed decoding: couldn't get version/kind; json parse error")
    return api_version or "", kind or ""


def _check_group_version(api_version: str, kind: str) -> None:
    if api_version in ("", "/", "audit.k8s.io/__internal"):
        raise PolicyLoadError(
            "unknown group version field audit.k8s.io/__internal, Kind=Policy in policy"
        )
    if api_version.count("/") > 1:
        raise PolicyLoadError(f"failed decoding: unexpected GroupVersion string: {api_version}")
    shown_kind = kind or "Policy"
    if api_version != GROUP_VERSION:
        raise PolicyLoadError(
            f'failed decoding: no kind "{shown_kind}" is registered for version "{api_version}" '
            f"{_SCHEME}"
        )
    if kind and kind != "Policy":
        raise PolicyLoadError(
            f'failed decoding: no kind "{kind}" is registered for version "{api_version}" {_SCHEME}'
        )


# ---------------------------------------------------------------- validation


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _compact(values: Sequence[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)


def _stage_errors(stages: Sequence[str], path: str) -> list[str]:
    return [
        f"{path}[{j}]: Invalid value: {_q(s)}: allowed stages are "
        "RequestReceived,ResponseStarted,ResponseComplete,Panic"
        for j, s in enumerate(stages)
        if s not in STAGES
    ]


def _rule_errors(i: int, rule: Rule, stages: Sequence[str]) -> list[str]:
    errors: list[str] = []
    path = f"rules[{i}]"
    if rule.level == "":
        errors.append(f"{path}.level: Required value")
    elif rule.level not in LEVELS:
        errors.append(
            f"{path}.level: Unsupported value: {_q(rule.level)}: supported values: "
            '"None", "Metadata", "Request", "RequestResponse"'
        )
    for k, url in enumerate(rule.non_resource_urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errors.append(
                f"{path}.nonResourceURLs[{k}]: Invalid value: {_q(url)}: non-resource URL rules "
                "must begin with a '/' character"
            )
        if url and "*" in url[:-1]:
            errors.append(
                f"{path}.nonResourceURLs[{k}]: Invalid value: {_q(url)}: non-resource URL "
                "wildcards '*' must be the final character of the rule"
            )
    for gr in rule.resources:
        if gr.group and gr.group != "*":
            msgs = []
            if len(gr.group) > 253:
                msgs.append("must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.fullmatch(gr.group):
                msgs.append(_DNS_MSG)
            if msgs:
                errors.append(
                    f"{path}.resources.group: Invalid value: {_q(gr.group)}: {','.join(msgs)}"
                )
        if gr.resource_names and not gr.resources:
            errors.append(
                f"{path}.resources.resourceNames: Invalid value: {_compact(gr.resource_names)}: "
                "using resourceNames requires at least one resource"
            )
    errors.extend(_stage_errors(stages, f"{path}.omitStages"))
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        errors.append(
            f"{path}.nonResourceURLs: Invalid value: {_compact(rule.non_resource_urls)}: rules "
            "cannot apply to both regular resources and non-resource URLs"
        )
    return errors


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---------------------------------------------------------------- loading


def parse_policy(data: bytes) -> Policy:
    """Decode + validate like kube-apiserver's reader (spec §3.1 steps 2-7)."""
    doc = _decode(data)
    if doc is None:
        _check_group_version("", "")
    if not isinstance(doc, dict):
        raise PolicyLoadError(
            "failed decoding: couldn't get version/kind; json parse error: json: cannot "
            f"unmarshal {_go_type(doc)} into Go value of type struct "
            '{ APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
            '"json:\\"kind,omitempty\\"" }'
        )
    api_version, kind = _group_version_kind(doc)
    _check_group_version(api_version, kind)
    unknown: list[str] = []
    _check_keys(
        doc,
        ("apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"),
        "",
        unknown,
    )
    rules_raw = doc.get("rules")
    if rules_raw is not None and not isinstance(rules_raw, list):
        raise _type_error(rules_raw, "Policy.rules", "[]v1.PolicyRule")
    managed = doc.get("omitManagedFields")
    if managed is not None and not isinstance(managed, bool):
        raise _type_error(managed, "Policy.omitManagedFields", "bool")
    policy_stages = _strings(doc, "omitStages", "Policy.omitStages", unknown)
    parsed = [_rule(raw, i, unknown) for i, raw in enumerate(rules_raw or ())]
    errors = _stage_errors(policy_stages, "omitStages")
    for i, (rule, stages) in enumerate(parsed):
        errors.extend(_rule_errors(i, rule, stages))
    if errors:
        raise PolicyLoadError(_aggregate(errors))
    if not parsed:
        raise PolicyLoadError("loaded illegal policy with 0 rules")
    base = frozenset(policy_stages)
    rules = tuple(
        Rule(
            level=r.level,
            users=r.users,
            user_groups=r.user_groups,
            verbs=r.verbs,
            resources=r.resources,
            namespaces=r.namespaces,
            non_resource_urls=r.non_resource_urls,
            omit_stages=r.omit_stages | base,
        )
        for r, _ in parsed
    )
    warnings = ()
    if unknown:
        warnings = (
            "Audit policy contains errors, falling back to lenient decoding: " + ", ".join(unknown),
        )
    return Policy(rules=rules, omit_stages=base, warnings=warnings)


def load_policy_file(data: bytes | None, path: str, read_error: str | None = None) -> Policy:
    """``data`` is the file content, or None with ``read_error`` (the OS error text)."""
    if not path:
        raise PolicyLoadError("file path not specified")
    if data is None:
        raise PolicyLoadError(f'failed to read file path "{path}": {read_error}')
    try:
        return parse_policy(data)
    except PolicyLoadError as exc:
        raise PolicyLoadError(f"{exc}: from file {path}") from None


# ---------------------------------------------------------------- matching (spec §5)


def _resource_matches(rule: Rule, req: Request) -> bool:
    if not req.resource_request:
        return False
    if rule.namespaces and req.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    combined = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    for gr in rule.resources:
        if gr.group not in (req.api_group, "*"):
            continue
        if not gr.resources:
            return True
        for res in gr.resources:
            if gr.resource_names and req.name not in gr.resource_names:
                continue
            if res in (combined, "*"):
                return True
            if req.subresource and res == "*/" + req.subresource:
                return True
            if res.endswith("/*") and res[:-2] == req.resource:
                return True
    return False


def _url_matches(rule: Rule, req: Request) -> bool:
    if req.resource_request:
        return False
    for spec in rule.non_resource_urls:
        if spec == "*" or spec == req.path:
            return True
        if spec.endswith("*") and req.path.startswith(spec.rstrip("*")):
            return True
    return False


def rule_matches(rule: Rule, req: Request) -> bool:
    if rule.users and req.user not in rule.users:
        return False
    if rule.user_groups and not set(req.groups) & set(rule.user_groups):
        return False
    if rule.verbs and req.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _resource_matches(rule, req)
    if rule.non_resource_urls:
        return _url_matches(rule, req)
    return True


def decide(policy: Policy, req: Request) -> tuple[str, frozenset[str]]:
    """(level, omitStages): the first matching rule wins; nothing matched -> None."""
    for rule in policy.rules:
        if rule_matches(rule, req):
            return rule.level, rule.omit_stages
    return "None", policy.omit_stages
