"""How fast the policy engine decides and validates, against baselines measured in the same run.

Matcher: every request recorded in the real audit logs of shared/testdata/audit-logs
(converted with `attributes.from_event`) is evaluated against the GKE policy
(`gke-gce-configure-helper-audit-policy.yaml`, 17 rules). Baselines:
  * `json.loads` of the same events' JSON text - what reading a log costs anyway, so the
    ratio says how much evaluating the policy adds per event;
  * the one-off `decide(policy, attrs)`, which prepares the rules for each request - what
    a caller that does not keep a PolicyChecker pays.
Validation: `check_policy` (load as kube-apiserver would + lint) and the same without lint,
against a bare bounded-free `yaml.load` (CSafeLoader when present) of the same bytes.
YAML reading: `parse_document` (which takes the line-oriented blockyaml reader for plain
block-style policies) against the full libyaml-event reader (`parse_documents`, which never
takes the fast path) and bare `yaml.load`, on the 51-rule policy bench/webhook_bench.sh
sends and on every testdata policy the fast reader accepts.
Policy engine: on that 51-rule policy, `load_policy` and its YAML reading alone (the
difference is decoding, validation and building the model) and `lint_policy`.

Each candidate is measured in turns with the others and keeps its best round.
Run: python3 bench/policy_bench.py [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_audit.policy.attributes import from_event  # noqa: E402
from kubectl_audit.policy.checker import PolicyChecker, decide  # noqa: E402
from kubectl_audit.policy.model import RequestAttributes  # noqa: E402
from kubectl_audit.policy.yamlsafe import parse_document, parse_documents  # noqa: E402
from tests.conftest import TESTDATA  # noqa: E402

POLICY = TESTDATA / "policies" / "gke-gce-configure-helper-audit-policy.yaml"
LOGS = TESTDATA / "audit-logs"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def event_texts() -> list[str]:
    """The JSON text of every audit event in the JSON-lines logs (one event per line)."""
    texts = []
    files = sorted(LOGS.rglob("*.log")) + sorted(LOGS.rglob("*.jsonl"))
    files += sorted((LOGS / "falco-k8s-audit").glob("*.json"))
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith("{"):
                texts.append(line)
    return texts


def requests_of(texts: list[str]) -> list[RequestAttributes]:
    events = (json.loads(text) for text in texts)
    return [from_event(event) for event in events if isinstance(event.get("verb"), str)]


def rates(works: dict[str, Callable[[], int]], seconds: float, rounds: int = 5) -> dict[str, float]:
    """Items per second of each `work` (which returns how many items it did).

    The candidates take turns, `rounds` times, and each keeps its best round: on a shared
    machine the others' load then hits every candidate alike and the ratios hold.
    """
    best = dict.fromkeys(works, 0.0)
    slice_ = seconds / rounds
    for work in works.values():
        work()  # warm up
    for _ in range(rounds):
        for name, work in works.items():
            done = 0
            start = time.perf_counter()
            elapsed = 0.0
            while elapsed < slice_:
                done += work()
                elapsed = time.perf_counter() - start
            best[name] = max(best[name], done / elapsed)
    return best


def webhook_policy() -> str:
    """The valid 51-rule policy bench/webhook_bench.sh sends (it imports this)."""
    groups = ["", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "policy"]
    resources = ["pods", "deployments", "jobs", "roles", "ingresses", "poddisruptionbudgets"]
    rules = []
    for i in range(49):
        g, r = groups[i % 6], resources[i % 6]
        if i % 7 == 0:
            rules.append(f'- level: None\n  nonResourceURLs: ["/healthz{i}*", "/version"]\n')
        elif i % 5 == 0:
            rules.append(
                f'- level: Metadata\n  users: ["system:serviceaccount:ns{i}:sa"]\n'
                f'  verbs: ["get", "list", "watch"]\n'
            )
        else:
            rules.append(
                f"- level: {'Request' if i % 2 else 'RequestResponse'}\n"
                f'  verbs: ["create", "update", "patch", "delete"]\n'
                f'  namespaces: ["team-{i}"]\n'
                f'  resources:\n  - group: "{g}"\n    resources: ["{r}", "{r}/status"]\n'
            )
    rules.append('- level: Metadata\n  omitStages: ["RequestReceived"]\n')
    return "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n" + "".join(rules)


def reading_rates(texts: list[str], seconds: float) -> dict[str, float]:
    """Documents per second read by parse_document (fast path), the full reader, yaml.load."""

    def reader(read: Callable[[str], object]) -> Callable[[], int]:
        def work() -> int:
            for text in texts:
                read(text)
            return len(texts)

        return work

    return rates(
        {
            "fast": reader(lambda text: parse_document(text, go_yaml=True)),
            "full": reader(lambda text: parse_documents(text, go_yaml=True)),
            "yaml": reader(lambda text: yaml.load(text, Loader=_Loader)),
        },
        seconds,
    )


def engine_rates(text: str, seconds: float) -> dict[str, float]:
    """Milliseconds per call on `text`: load_policy, its YAML reading alone, lint_policy."""
    from kubectl_audit.policy.lint import lint_policy
    from kubectl_audit.policy.loader import load_policy

    loaded = load_policy(text)
    if loaded.policy is None:
        raise SystemExit("error: the webhook policy does not load")
    policy, warnings = loaded.policy, loaded.warnings
    budget = len(text) * 4 + 16  # what load_policy gives the reader
    found = rates(
        {
            "load": lambda: load_policy(text).ok and 1,
            "parse": lambda: parse_document(text, go_yaml=True, max_bytes=budget) and 1,
            "lint": lambda: len(lint_policy(policy, load_warnings=warnings)) and 1,
        },
        seconds,
    )
    return {name: 1e3 / rate for name, rate in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate")
    args = parser.parse_args(argv)

    from kubectl_audit.policy.loader import load_policy
    from kubectl_audit.policy.report import check_policy

    data = POLICY.read_bytes()
    policy = load_policy(data).policy
    if policy is None:
        print(f"error: {POLICY.name} does not load", file=sys.stderr)
        return 1
    texts = event_texts()
    requests = requests_of(texts)
    checker = PolicyChecker(policy)

    def match_all() -> int:
        for attrs in requests:
            checker.decide(attrs)
        return len(requests)

    def match_one_off() -> int:
        for attrs in requests:
            decide(policy, attrs)
        return len(requests)

    def parse_all() -> int:
        for text in texts:
            json.loads(text)
        return len(texts)

    matching = rates(
        {"matcher": match_all, "one-off": match_one_off, "json": parse_all}, args.seconds
    )
    matcher, one_off, parsing = matching["matcher"], matching["one-off"], matching["json"]
    levels: dict[str, int] = {}
    for attrs in requests:
        level = checker.decide(attrs).level
        levels[level] = levels.get(level, 0) + 1

    validating = rates(
        {
            "check": lambda: check_policy(data, file=POLICY.name).valid and 1,
            "load": lambda: check_policy(data, file=POLICY.name, lint=False).valid and 1,
            "yaml": lambda: yaml.load(data, Loader=_Loader) is not None and 1,
        },
        args.seconds,
    )
    validate, load_only, yaml_only = validating["check"], validating["load"], validating["yaml"]

    print(f"policy: {POLICY.name} ({len(policy.rules)} rules)")
    print(f"events: {len(requests)} requests from {len(texts)} log lines in {LOGS.name}/")
    print("levels: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())))
    print(f"matcher (PolicyChecker.decide):     {matcher:12,.0f} requests/s")
    print(f"baseline json.loads of the events:  {parsing:12,.0f} events/s")
    print(f"baseline one-off decide():          {one_off:12,.0f} requests/s")
    print(f"ratio matcher / json.loads:         {matcher / parsing:12.2f}x")
    print(f"ratio matcher / one-off decide():   {matcher / one_off:12.2f}x")
    print(f"check_policy (load + lint):         {validate:12,.0f} calls/s")
    print(f"check_policy (load only):           {load_only:12,.0f} calls/s")
    print(f"baseline yaml.load of the policy:   {yaml_only:12,.0f} calls/s")
    print(f"ratio check_policy / yaml.load:     {validate / yaml_only:12.2f}x")
    print(f"ratio load only / yaml.load:        {load_only / yaml_only:12.2f}x")

    from kubectl_audit.policy.blockyaml import parse_block_document
    from kubectl_audit.policy.yamlsafe import DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES

    accepted = []
    for path in sorted((TESTDATA / "policies").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        budgets = {"max_nodes": DEFAULT_MAX_NODES, "max_depth": DEFAULT_MAX_DEPTH}
        if parse_block_document(text, **budgets) is not None:
            accepted.append(text)
    for label, texts in (
        ("51-rule webhook policy", [webhook_policy()]),
        (f"{len(accepted)} testdata policies", accepted),
    ):
        reading = reading_rates(texts, args.seconds)
        per_doc = {name: 1e3 / rate for name, rate in reading.items()}  # ms per document
        print(f"YAML reading, {label} (ms per document):")
        print(f"  parse_document (blockyaml):       {per_doc['fast']:12.3f} ms")
        print(f"  full reader (libyaml events):     {per_doc['full']:12.3f} ms")
        print(f"  baseline yaml.load (CSafeLoader): {per_doc['yaml']:12.3f} ms")
        print(f"  ratio fast / full reader:         {per_doc['fast'] / per_doc['full']:12.2f}x")
        print(f"  ratio fast / yaml.load:           {per_doc['fast'] / per_doc['yaml']:12.2f}x")

    engine = engine_rates(webhook_policy(), args.seconds)
    print("Policy engine, 51-rule webhook policy (ms per call):")
    print(f"  load_policy:                      {engine['load']:12.3f} ms")
    print(f"  of which YAML reading:            {engine['parse']:12.3f} ms")
    print(f"  decode + validate + model:        {engine['load'] - engine['parse']:12.3f} ms")
    print(f"  lint_policy:                      {engine['lint']:12.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
