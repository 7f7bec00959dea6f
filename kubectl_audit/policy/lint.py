"""Security and hygiene advice on a policy that loads: warnings (type `Lint`), never errors.

Every finding names its rule (`rules[i]`, as `field`) and line, in one short line that also
works as an admission-webhook warning. What is checked:

* sensitive data in bodies: Secrets, ConfigMaps, TokenReviews and TokenRequests whose
  content the rule that matches first would write to the log. For each Request or
  RequestResponse rule that can see such a resource, requests it matches are built to
  dodge the earlier rules (each user, group, namespace and name the rule allows, or one
  no rule names where it allows any); if any request reaches the rule first, one of
  these does, so nothing is missed and nothing is reported that cannot happen. Content
  is in the log at RequestResponse (any verb: get/list/delete return objects, writes
  echo them; watch is included to be safe) or at Request for verbs whose request body
  holds it (create/update/patch of Secrets and ConfigMaps, create of a TokenReview). A
  TokenRequest's request body holds no token, so `serviceaccounts/token` is only flagged
  at RequestResponse; a deletecollection's body is DeleteOptions, so Request for it
  exposes nothing.
* rules that can never match because one earlier rule matches a superset of their
  requests (a sound "covers" check: it only claims coverage it can prove, so a rule
  shadowed only by several earlier rules together is not reported);
* rules that became catch-alls because the lenient decoder dropped an unknown key (found
  through `Policy.lines`, which holds every key of the document, and through the loader's
  UnknownField warnings when passed as `load_warnings`);
* selectors that cannot mean what they say: `*` in users, userGroups, verbs or namespaces
  (a literal there, spec §7 item 9), upper-case verbs, `resources` strings no request can
  match (`*/*`, `pods/log/*`, `Pods`), and built-in resources listed under another
  built-in group (`deployments` in the core group);
* no catch-all rule at all: requests that no rule matches are not logged;
* RequestReceived not omitted: every request would be logged twice.

The two checks that compare rules with each other spend at most DEFAULT_BUDGET units of
work; on a huge policy they report where they stopped rather than run for minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from kubectl_audit.policy.attributes import BUILTIN_RESOURCES
from kubectl_audit.policy.checker import group_resources_match, rule_matches
from kubectl_audit.policy.model import (
    LEVELS,
    Finding,
    GroupResources,
    Policy,
    PolicyRule,
    RequestAttributes,
    UserInfo,
    level_rank,
)

LINT = "Lint"
AUTHENTICATED = "system:authenticated"
PROBE_USER = "kubectl-audit:any-user"  # a user no policy names: "any user"
PROBE_NAME = "kubectl-audit-any-name"
PROBE_NAMESPACE = "kubectl-audit-any-namespace"
# Work units (about one rule comparison each) one lint check may spend, well under a second;
# beyond it the check says where it stopped instead of stalling `validate` or the webhook.
DEFAULT_BUDGET = 1_000_000
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass(frozen=True)
class Sensitive:
    """A resource whose bodies carry secret material, and which verbs put it in a body."""

    label: str
    group: str
    resource: str
    subresource: str
    namespaced: bool
    request_verbs: tuple[str, ...]  # the request body holds the content (level Request)
    response_verbs: tuple[str, ...]  # the request or response body holds it (RequestResponse)


SENSITIVE: tuple[Sensitive, ...] = (
    Sensitive("secrets", "", "secrets", "", True, ("create", "update", "patch"), ALL_VERBS),
    Sensitive("configmaps", "", "configmaps", "", True, ("create", "update", "patch"), ALL_VERBS),
    Sensitive(
        "tokenreviews",
        "authentication.k8s.io",
        "tokenreviews",
        "",
        False,
        ("create",),
        ("create",),
    ),
    Sensitive("serviceaccounts/token", "", "serviceaccounts", "token", True, (), ("create",)),
)


def lint_policy(policy: Policy, *, load_warnings: Sequence[Finding] = ()) -> tuple[Finding, ...]:
    """All lint warnings for `policy`, in rule order within each check."""
    findings: list[Finding] = []
    findings += sensitive_exposure(policy)
    findings += shadowed_rules(policy)
    findings += selector_mistakes(policy)
    findings += dropped_key_catch_alls(policy, load_warnings)
    findings += missing_catch_all(policy)
    findings += request_received_kept(policy)
    return tuple(findings)


def rule_line(policy: Policy, index: int) -> int | None:
    line = policy.rules[index].line
    return line if line is not None else policy.line_of(f"rules[{index}]")


def _finding(policy: Policy, index: int, message: str) -> Finding:
    return Finding(LINT, f"rules[{index}]: {message}", f"rules[{index}]", rule_line(policy, index))


# -- sensitive data ---------------------------------------------------------------------


def _distinct(values: Sequence[str], lists: Sequence[tuple[str, ...]]) -> list[str]:
    """`values`, keeping only the first of those that every list in `lists` treats alike."""
    kept: dict[tuple[bool, ...], str] = {}
    for value in values:
        kept.setdefault(tuple(not entries or value in entries for entries in lists), value)
    return list(kept.values())


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _exposes(sensitive: Sensitive, level: str, verb: str) -> bool:
    if level == "RequestResponse":
        return verb in sensitive.response_verbs
    return level == "Request" and verb in sensitive.request_verbs


def _probe(sensitive: Sensitive, name: str = "") -> RequestAttributes:
    """A request for `sensitive` that only `resources` entries are asked about."""
    return RequestAttributes(
        verb="",
        api_group=sensitive.group,
        resource=sensitive.resource,
        subresource=sensitive.subresource,
        name=name,
    )


# The probe for a name no entry lists, asked of most entries, is made once.
_ANY_NAME_PROBES = tuple((sensitive, _probe(sensitive)) for sensitive in SENSITIVE)


def _selecting_entries(
    rule: PolicyRule, sensitive: Sensitive, any_name: RequestAttributes
) -> list[GroupResources] | None:
    """The `resources` entries of `rule` that can select `sensitive` (any name).

    None when the rule cannot see the resource at all; [] when it sees every resource.
    `any_name` is `_probe(sensitive)`.
    """
    if not rule.is_resource_rule:
        return None if rule.non_resource_urls else []
    if not rule.resources:
        return []
    entries = []
    for entry in rule.resources:
        if entry.group != sensitive.group and entry.group != "*":
            continue  # as group_resources_match would say, without building a probe
        # Ask with a name the entry admits, so resourceNames cannot hide the resource.
        attrs = _probe(sensitive, entry.resource_names[0]) if entry.resource_names else any_name
        if group_resources_match(entry, attrs):
            entries.append(entry)
    return entries or None


_SENSITIVE_GROUPS = frozenset({"*", *(sensitive.group for sensitive in SENSITIVE)})


def _may_see_sensitive(rule: PolicyRule) -> bool:
    """False when `_selecting_entries` is None for every sensitive resource: a cheap no."""
    if not rule.is_resource_rule:
        return not rule.non_resource_urls
    return not rule.resources or not _SENSITIVE_GROUPS.isdisjoint(
        map(attrgetter("group"), rule.resources)
    )


@dataclass
class _Budget:
    """Bounds the work of one lint run: a 1 MiB policy must not stall the webhook."""

    left: int

    def spend(self, amount: int) -> bool:
        self.left -= amount
        return self.left >= 0


def _candidates(
    policy: Policy, index: int, sensitive: Sensitive, entries: list[GroupResources]
) -> Iterator[tuple[str, RequestAttributes]]:
    """Requests for `sensitive` that rules[index] matches, built to dodge earlier rules.

    Where the rule restricts a selector, each value it allows is tried (one group at a
    time, and only one value per class the earlier rules cannot tell apart); where it does
    not, a value no rule names is used, which passes exactly the rules without that
    selector. If any request for the resource reaches the rule first, one of these does:
    swapping a request's values for these passes a subset of the earlier rules.
    """
    rule = policy.rules[index]
    earlier = policy.rules[:index]
    users: list[str] = (
        _distinct(rule.users, [r.users for r in earlier]) if rule.users else [PROBE_USER]
    )
    groups: list[str | None] = (
        list(_distinct(rule.user_groups, [r.user_groups for r in earlier]))
        if rule.user_groups
        else [None]
    )
    if sensitive.namespaced:
        namespaces = (
            _distinct(rule.namespaces, [r.namespaces for r in earlier])
            if rule.namespaces
            else [PROBE_NAMESPACE]
        )
    else:
        namespaces = [""] if not rule.namespaces or "" in rule.namespaces else []
    names: list[str] = []
    if not entries or any(not entry.resource_names for entry in entries):
        names.append(PROBE_NAME)
    earlier_names = [e.resource_names for r in earlier for e in r.resources]
    named = [n for entry in entries for n in entry.resource_names]
    names += _distinct(list(dict.fromkeys(named)), earlier_names)
    verbs = [v for v in (rule.verbs or ALL_VERBS) if _exposes(sensitive, rule.level, v)]
    for verb in dict.fromkeys(verbs):
        for user in users:
            for group in groups:
                who = (
                    f"user {user}"
                    if rule.users
                    else f"group {group}"
                    if group is not None
                    else "any user"
                )
                info = UserInfo(user, () if group is None else (group,))
                for namespace in namespaces:
                    for name in names:
                        yield (
                            f"{verb} by {_short(who)}",
                            RequestAttributes(
                                verb=verb,
                                user=info,
                                namespace=namespace,
                                api_group=sensitive.group,
                                resource=sensitive.resource,
                                subresource=sensitive.subresource,
                                name=name,
                            ),
                        )


def sensitive_exposure(policy: Policy, *, budget: int = DEFAULT_BUDGET) -> list[Finding]:
    """One warning per (rule, resource) whose content the rule, matching first, would log."""
    work = _Budget(budget)
    findings: list[Finding] = []
    for index, rule in enumerate(policy.rules):
        if rule.level not in ("Request", "RequestResponse") or not _may_see_sensitive(rule):
            continue
        for sensitive, any_name in _ANY_NAME_PROBES:
            entries = _selecting_entries(rule, sensitive, any_name)
            if entries is None:
                continue
            # Sorting the rule's values into classes compares each with every earlier rule.
            values = len(rule.users) + len(rule.user_groups) + len(rule.namespaces)
            values += sum(len(entry.resource_names) for entry in entries)
            if not work.spend(values * index):
                return [*findings, _stopped(policy, index, "sensitive-data")]
            for example, attrs in _candidates(policy, index, sensitive, entries):
                if not work.spend(index + 1):
                    return [*findings, _stopped(policy, index, "sensitive-data")]
                if rule_matches(rule, attrs) and not any(
                    rule_matches(other, attrs) for other in policy.rules[:index]
                ):
                    findings.append(
                        _finding(
                            policy,
                            index,
                            f"logs {sensitive.label} at {rule.level} ({example}); "
                            "put a Metadata rule first",
                        )
                    )
                    break
    return findings


def _stopped(policy: Policy, index: int, check: str) -> Finding:
    return Finding(
        LINT,
        f"the {check} check stopped at rules[{index}]: the policy is too large to check in full",
        f"rules[{index}]",
        rule_line(policy, index),
    )


# -- shadowed rules ---------------------------------------------------------------------


def _subset(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    """Every value `inner` admits is admitted by `outer` (empty = no restriction)."""
    if not outer:
        return True
    return bool(inner) and set(inner) <= set(outer)


def _url_covers(outer: str, inner: str) -> bool:
    if outer == "*" or outer == inner:
        return True
    if not outer.endswith("*"):
        return False
    prefix = outer.rstrip("*")
    inner_prefix = "" if inner == "*" else inner.rstrip("*") if inner.endswith("*") else inner
    return inner_prefix.startswith(prefix)


def _resource_string_covers(outer: str, inner: str) -> bool:
    """Every (resource, subresource) `inner` matches is matched by `outer` (§5.3 4d)."""
    if outer == inner or outer == "*":
        return True
    # Strings with more slashes or stars than `resource/sub` can match odd splits of
    # `resource + "/" + subresource`; only the plain shapes are claimed.
    if outer.endswith("/*") and "/" not in outer[:-2] and "*" not in outer[:-2]:
        base = outer[:-2]
        head, slash, sub = inner.partition("/")
        return head == base and (not slash or "/" not in sub)
    if outer.startswith("*/") and "*" not in outer[2:]:
        base, slash, sub = inner.partition("/")
        return bool(slash) and "*" not in base and "/" not in sub and sub == outer[2:]
    return False


def _group_covers(outer: str, inner: str) -> bool:
    return outer == "*" or outer == inner


def _entry_covers_resource(outer: GroupResources, inner: GroupResources, res: str | None) -> bool:
    """Does `outer` match every request `inner` matches for its resource string `res`?

    `res` None stands for "every resource of the group" (an entry without resources).
    """
    if not _group_covers(outer.group, inner.group):
        return False
    if not outer.resources:
        return True
    if res is None:
        return "*" in outer.resources and not outer.resource_names
    if not _subset(inner.resource_names, outer.resource_names):
        return False
    return any(_resource_string_covers(candidate, res) for candidate in outer.resources)


def _resources_cover(outer: tuple[GroupResources, ...], inner: tuple[GroupResources, ...]) -> bool:
    if not outer:
        return True
    entries = inner or (GroupResources(group="*"),)
    for entry in entries:
        strings: tuple[str | None, ...] = entry.resources or (None,)
        for res in strings:
            if not any(_entry_covers_resource(o, entry, res) for o in outer):
                return False
    return True


def covers(outer: PolicyRule, inner: PolicyRule) -> bool:
    """True only if every request `inner` matches is also matched by `outer` (sound)."""
    if not (
        _subset(inner.users, outer.users)
        and _subset(inner.user_groups, outer.user_groups)
        and _subset(inner.verbs, outer.verbs)
    ):
        return False
    if outer.is_resource_rule:
        if not inner.is_resource_rule or not _subset(inner.namespaces, outer.namespaces):
            return False
    elif outer.is_non_resource_rule and not inner.is_non_resource_rule:
        return False
    return _targets_cover(outer, inner)


def _targets_cover(outer: PolicyRule, inner: PolicyRule) -> bool:
    """`covers` once users, groups, verbs, namespaces and the kinds of rule are known to."""
    if outer.namespaces or outer.resources:
        return _resources_cover(outer.resources, inner.resources)
    if outer.non_resource_urls:
        return all(_urls_cover(outer.non_resource_urls, url) for url in inner.non_resource_urls)
    return True


def _urls_cover(outer: tuple[str, ...], inner: str) -> bool:
    # A plain loop: in the hot path of `shadowed_rules`, a generator costs more than this.
    for url in outer:  # noqa: SIM110
        if _url_covers(url, inner):
            return True
    return False


def _size(rule: PolicyRule) -> int:
    size = (
        len(rule.users)
        + len(rule.user_groups)
        + len(rule.verbs)
        + len(rule.namespaces)
        + len(rule.non_resource_urls)
    )
    for entry in rule.resources:
        size += 1 + len(entry.resources) + len(entry.resource_names)
    return size


class _Selector:
    """One selector (users, say) of every rule, as bit masks: bit i stands for rules[i]."""

    def __init__(self, selections: Iterable[tuple[str, ...]]) -> None:
        # Rules repeat selections (the same verbs, say): each distinct one is spread once.
        by_selection: dict[tuple[str, ...], int] = {}
        for index, values in enumerate(selections):
            by_selection[values] = by_selection.get(values, 0) | (1 << index)
        self.unrestricted = by_selection.pop((), 0)
        self.listing: dict[str, int] = {}
        for values, mask in by_selection.items():
            for value in values:
                self.listing[value] = self.listing.get(value, 0) | mask

    def admitting(self, values: tuple[str, ...]) -> int:
        """The rules whose selector admits every value in `values` (see `_subset`)."""
        if not values:
            return self.unrestricted
        listing = self.listing
        mask = -1
        for value in values:
            mask &= listing.get(value, 0)
        return self.unrestricted | mask


class _Selectors:
    """The rules indexed by what `covers` demands before it compares resources or URLs.

    `cover` intersects bit masks into the earlier rules whose users, groups, verbs,
    namespaces and kind of rule pass `covers`; only those few need the full comparison.
    """

    def __init__(self, rules: Sequence[PolicyRule]) -> None:
        self.users = _Selector(map(attrgetter("users"), rules))
        self.user_groups = _Selector(map(attrgetter("user_groups"), rules))
        self.verbs = _Selector(map(attrgetter("verbs"), rules))
        self.namespaces = _Selector(map(attrgetter("namespaces"), rules))
        self.resource = self.non_resource = self.plain = 0  # plain: neither, any request
        for index, rule in enumerate(rules):
            if rule.namespaces or rule.resources:
                self.resource |= 1 << index
            elif rule.non_resource_urls:
                self.non_resource |= 1 << index
            else:
                self.plain |= 1 << index

    def cover(self, rule: PolicyRule, later: int) -> int:
        """The rules before `rule`, rules[later], whose selectors cover its selectors."""
        earlier = (1 << later) - 1
        if rule.namespaces or rule.resources:
            resource = self.resource & self.namespaces.admitting(rule.namespaces)
            mask = earlier & (self.plain | resource)
        elif rule.non_resource_urls:
            mask = earlier & (self.plain | self.non_resource)
        else:
            mask = earlier & self.plain
        # Most rules name no users or groups: those two tests are then a lookup each.
        if mask:
            mask &= self.users.admitting(rule.users)
        if mask:
            mask &= self.user_groups.admitting(rule.user_groups)
        if mask:
            mask &= self.verbs.admitting(rule.verbs)
        return mask


def _set_bits(mask: int) -> Iterator[int]:
    """The indices of the bits set in `mask`, lowest first."""
    bits = bin(mask)[:1:-1]  # least significant first, without the "0b"
    index = bits.find("1")
    while index >= 0:
        yield index
        index = bits.find("1", index + 1)


def _affordable(sizes: Sequence[int], budget: int) -> int:
    """How many rules `shadowed_rules` can compare with their predecessors within `budget`.

    Comparing a rule with the earlier ones costs their sizes and its own each time.
    """
    work = _Budget(budget)
    seen_size = 0
    for later, size in enumerate(sizes):
        if not work.spend(later * (1 + size) + seen_size):
            return later
        seen_size += size
    return len(sizes)


def shadowed_rules(policy: Policy, *, budget: int = DEFAULT_BUDGET) -> list[Finding]:
    """Rules that one earlier rule already covers: the first such rule is named."""
    rules = policy.rules
    checked = _affordable([_size(rule) for rule in rules], budget)
    # Only the rules within the budget are indexed: a huge policy costs no more memory.
    selectors = _Selectors(rules[:checked])
    findings = []
    for later in range(checked):
        rule = rules[later]
        candidates = selectors.cover(rule, later)
        if candidates:
            for earlier in _set_bits(candidates):
                if _targets_cover(rules[earlier], rule):
                    findings.append(_shadowed(policy, later, earlier))
                    break
    if checked < len(rules):
        findings.append(_stopped(policy, checked, "unreachable-rule"))
    return findings


def _shadowed(policy: Policy, later: int, earlier: int) -> Finding:
    where = rule_line(policy, earlier)
    at = f" (line {where})" if where is not None else ""
    return _finding(
        policy,
        later,
        f"never matches: rules[{earlier}]{at} already matches all its requests; "
        "reorder or remove it",
    )


# -- selectors that cannot mean what they say ----------------------------------------------

_BUILTIN_GROUPS = frozenset(rt.group for rt in BUILTIN_RESOURCES)
_GROUPS_OF: dict[str, frozenset[str]] = {}
for _rt in BUILTIN_RESOURCES:
    _GROUPS_OF[_rt.plural] = _GROUPS_OF.get(_rt.plural, frozenset()) | {_rt.group}


def _group_name(group: str) -> str:
    return f"group {group}" if group else "the core group"


def _never_matching(resource: str) -> str | None:
    """Why a `resources` string can match no request (§7 item 8), or None."""
    head, slash, tail = resource.partition("/")
    if resource != resource.lower():
        return "resource names are lower-case"
    if not resource or (slash and (not head or not tail)) or "/" in tail or resource == "*/*":
        return "no request has that shape"
    return None


def _wrong_group(group: str, resource: str) -> str | None:
    """The built-in group `resource` belongs to, if the entry names another built-in group."""
    base = resource.partition("/")[0]
    groups = _GROUPS_OF.get(base)
    if group not in _BUILTIN_GROUPS or not groups or group in groups:
        return None
    return sorted(groups)[0]


_EntryMistakes = list[tuple[str, str | None, str | None]]


def _entry_mistakes(group: str, resources: tuple[str, ...]) -> _EntryMistakes:
    """(resource, why it never matches, the built-in group it is in instead) for each
    resource string of an entry that is wrong one way or the other."""
    mistakes = []
    for resource in resources:
        reason = _never_matching(resource)
        wrong = None if reason else _wrong_group(group, resource)
        if reason or wrong is not None:
            mistakes.append((resource, reason, wrong))
    return mistakes


def _first_literal_star_or_case(field: str, values: tuple[str, ...]) -> str | None:
    """The message for the first value of `field` with a `*` or, in verbs, upper case."""
    for value in values:
        if "*" in value:
            return f"{field} entry '{_short(value, 48)}' is literal: `*` is no wildcard there"
        if field == "verbs" and value != value.lower():
            return f"verb {value!r} never matches: verbs are lower-case"
    return None


def _no_star_or_case(rule: PolicyRule) -> bool:
    """No selector value has a `*` and no verb upper case: the usual case, tested at once.

    Joining keeps each value's characters, and lower() changes some character of the
    whole exactly when it changes one of a value (final sigma is no `Σ` either way).
    """
    verbs = "\n".join(rule.verbs)
    others = "\n".join(rule.users + rule.user_groups + rule.namespaces)
    return "*" not in others and "*" not in verbs and verbs == verbs.lower()


def selector_mistakes(policy: Policy) -> list[Finding]:
    """`*` where it is no wildcard, mis-cased verbs, resources that can never match."""
    findings = []
    # Real policies repeat the same few entries: each is judged once per policy.
    judged: dict[tuple[str, tuple[str, ...]], _EntryMistakes] = {}
    for index, rule in enumerate(policy.rules):
        if not _no_star_or_case(rule):
            for field, values in (
                ("users", rule.users),
                ("userGroups", rule.user_groups),
                ("verbs", rule.verbs),
                ("namespaces", rule.namespaces),
            ):
                message = _first_literal_star_or_case(field, values)
                if message is not None:
                    findings.append(_finding(policy, index, message))
        for position, entry in enumerate(rule.resources):
            key = (entry.group, entry.resources)
            mistakes = judged.get(key)
            if mistakes is None:
                mistakes = judged[key] = _entry_mistakes(*key)
            for resource, reason, wrong in mistakes:
                if reason:
                    message = f"resources[{position}] {resource!r} never matches: {reason}"
                else:
                    message = (
                        f"{resource!r} is in {_group_name(wrong or '')}, not "
                        f"{_group_name(entry.group)}: resources[{position}] misses it"
                    )
                findings.append(_finding(policy, index, message))
    return findings


# -- catch-alls -------------------------------------------------------------------------


def is_catch_all(rule: PolicyRule) -> bool:
    """A rule without selectors matches every request, resource and non-resource."""
    return not (
        rule.users
        or rule.user_groups
        or rule.verbs
        or rule.namespaces
        or rule.resources
        or rule.non_resource_urls
    )


_RULE_PATH = re.compile(r"^rules\[(\d+)\]\.([^.\[]+)$")
_ENTRY_PATH = re.compile(r"^rules\[(\d+)\]\.resources\[(\d+)\]\.([^.\[]+)$")
RULE_FIELDS = frozenset(
    (
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
)
ENTRY_FIELDS = frozenset(("group", "resources", "resourceNames"))


def _dropped_paths(policy: Policy, load_warnings: Sequence[Finding]) -> list[str]:
    """Field paths of keys the decoder dropped or may have dropped.

    From the loader's UnknownField warnings when given, and from `policy.lines`, which
    records where every key of the document started, known to the decoder or not. Paths
    that cannot match `_RULE_PATH` or `_ENTRY_PATH` with an unknown key are left out
    here: list items, rules and entries (a `[` in the last part), and known keys.
    """
    paths = [w.field for w in load_warnings if w.type == "UnknownField" and w.field]
    for path in policy.lines:
        head, _, key = path.rpartition(".")
        # One dot: a rule's key at most (RULE_FIELDS); two or more: an entry's at most.
        if "[" not in key and key not in (ENTRY_FIELDS if "." in head else RULE_FIELDS):
            paths.append(path)
    return paths


def dropped_key_catch_alls(policy: Policy, load_warnings: Sequence[Finding] = ()) -> list[Finding]:
    """Rules and resource entries that match far more because an unknown key was dropped.

    A rule left without selectors matches every request; a `resources` entry left
    without `resources` matches every resource of its group.
    """
    rules: dict[int, str] = {}
    entries: dict[tuple[int, int], str] = {}
    for path in _dropped_paths(policy, load_warnings):
        if (match := _RULE_PATH.match(path)) and match.group(2) not in RULE_FIELDS:
            rules.setdefault(int(match.group(1)), match.group(2))
        elif (match := _ENTRY_PATH.match(path)) and match.group(3) not in ENTRY_FIELDS:
            entries.setdefault((int(match.group(1)), int(match.group(2))), match.group(3))
    findings: dict[tuple[int, int], Finding] = {}
    for index, key in rules.items():
        if index < len(policy.rules) and is_catch_all(policy.rules[index]):
            line = policy.line_of(f"rules[{index}].{key}")
            findings[(index, -1)] = Finding(
                LINT,
                f"rules[{index}]: matches every request because unknown field {key!r} was "
                "dropped; fix its spelling",
                f"rules[{index}]",
                line if line is not None else rule_line(policy, index),
            )
    for (index, position), key in entries.items():
        if index >= len(policy.rules) or position >= len(policy.rules[index].resources):
            continue
        entry = policy.rules[index].resources[position]
        if not entry.resources:
            group = f"group {entry.group}" if entry.group else "the core group"
            line = policy.line_of(f"rules[{index}].resources[{position}].{key}")
            findings[(index, position)] = Finding(
                LINT,
                f"rules[{index}]: resources[{position}] matches all of {group}: unknown field "
                f"{key!r} was dropped",
                f"rules[{index}]",
                line if line is not None else rule_line(policy, index),
            )
    return [findings[key] for key in sorted(findings)]


def missing_catch_all(policy: Policy) -> list[Finding]:
    # A catch-all usually ends the policy: looking from the end finds it at once.
    if not policy.rules or any(is_catch_all(rule) for rule in reversed(policy.rules)):
        return []
    last = len(policy.rules) - 1
    return [
        _finding(
            policy,
            last,
            "no catch-all rule at the end: requests no rule matches are not logged at all; "
            "end with `- level: Metadata`",
        )
    ]


# -- stages -----------------------------------------------------------------------------


_LOGGING_LEVELS = frozenset(level for level in LEVELS if level_rank(level) > 0)


def request_received_kept(policy: Policy) -> list[Finding]:
    if "RequestReceived" in policy.omit_stages:
        return []
    keeping = [
        index
        for index, rule in enumerate(policy.rules)
        if rule.level in _LOGGING_LEVELS and "RequestReceived" not in rule.omit_stages
    ]
    if not keeping:
        return []
    names = ", ".join(f"rules[{i}]" for i in keeping[:2])
    more = f" and {len(keeping) - 2} more" if len(keeping) > 2 else ""
    return [
        Finding(
            LINT,
            f"{names}{more} keep RequestReceived: each request is logged twice; "
            "omit it in the top-level omitStages",
            "omitStages",
            rule_line(policy, keeping[0]),
        )
    ]


__all__ = [
    "LINT",
    "SENSITIVE",
    "Sensitive",
    "covers",
    "dropped_key_catch_alls",
    "is_catch_all",
    "lint_policy",
    "missing_catch_all",
    "request_received_kept",
    "selector_mistakes",
    "sensitive_exposure",
    "shadowed_rules",
]
