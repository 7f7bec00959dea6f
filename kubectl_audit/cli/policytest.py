"""`kubectl audit test`: policy unit tests for CI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from kubectl_audit.cli.options import output_option, verbosity_option
from kubectl_audit.errors import InputError, UsageError
from kubectl_audit.policy.presets import list_presets
from kubectl_audit.policy.testsuite import TestResult


@dataclass(frozen=True)
class FileResults:
    source: str
    results: tuple[TestResult, ...]


def _read_tests(path: str) -> tuple[str, bytes]:
    try:
        with open(path, "rb") as handle:
            return path, handle.read()
    except OSError as error:
        raise InputError(f"cannot read test file {path}: {error.strerror or error}") from None


def _report_json(policy_source: str, files: list[FileResults]) -> dict[str, Any]:
    results = [
        {"file": file.source, **result.to_dict()} for file in files for result in file.results
    ]
    passed = sum(1 for result in results if result["passed"])
    return {
        "policy": policy_source,
        "passed": passed,
        "failed": len(results) - passed,
        "results": results,
    }


def _report_text(files: list[FileResults]) -> str:
    from kubectl_audit.policy.testsuite import describe_failure

    lines = []
    passed = failed = 0
    for file in files:
        for result in file.results:
            where = f"{file.source}:{result.test.line}" if result.test.line else file.source
            if result.passed:
                passed += 1
                lines.append(f"PASS  {result.test.name}")
            else:
                failed += 1
                lines.append(f"FAIL  {result.test.name} ({where})")
                lines.append(f"      {describe_failure(result)}")
    lines.append(f"{passed} passed, {failed} failed")
    return "\n".join(lines)


@click.command(
    "test",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Test file format:
  tests:
  - name: secrets are never logged with bodies
    request:
      user: alice            # omitted or null: no user information
      groups: [dev]
      verb: get
      namespace: default     # "" or omitted: cluster-scoped or non-resource
      apiGroup: ""           # "" = core group
      resource: secrets
      subresource: ""
      name: db-password
      path: /api/v1/...      # the URL path; what non-resource rules match on
      resourceRequest: true  # optional; default: true when resource is set
    expect:
      level: Metadata                 # required
      omitStages: [RequestReceived]   # optional, compared as a set
      omitManagedFields: false        # optional
      rule: 0                         # optional; first matching rule's index, or null

\b
-o json prints:
  {"policy": SOURCE, "passed": N, "failed": N,
   "results": [{"file", "name", "line", "passed", "mismatches": [FIELD...],
                "expected": {FIELD: VALUE...}, "actual": {"level", "omitStages",
                "omitManagedFields", "rule"}}]}

\b
Exit status: 0 all tests pass, 1 a test fails or the policy does not load,
2 usage error or an unreadable or malformed test file.""",
)
@click.argument("paths", nargs=-1, metavar="POLICY TESTFILE...")
@click.option(
    "--preset",
    metavar="NAME",
    help=f"Test a shipped preset ({', '.join(list_presets())}); then every argument is a "
    "test file (default: the preset's own tests).",
)
@output_option("text", "json", default="text")
@verbosity_option
@click.pass_context
def test(ctx: click.Context, paths: tuple[str, ...], preset: str | None, output: str) -> None:
    """Run policy unit tests: each request must get the expected level (and stages, rule).

    Unknown or repeated keys in a test file are errors, so a typo cannot pass silently.
    """
    from kubectl_audit.cli.explain import load_cli_policy
    from kubectl_audit.policy.presets import preset_source, read_preset_tests
    from kubectl_audit.policy.testsuite import load_tests, run_tests

    if preset is not None:
        test_files = list(paths)
        policy_path = None
    else:
        if len(paths) < 2:
            raise UsageError(
                "usage: kubectl audit test POLICY TESTFILE... (or --preset NAME [TESTFILE...])"
            )
        policy_path, test_files = paths[0], list(paths[1:])
    sources = [_read_tests(path) for path in test_files]
    if preset is not None and not sources:
        sources = [(f"{preset_source(preset)}.tests", read_preset_tests(preset).encode())]
    suites = [(source, load_tests(data, source=source)) for source, data in sources]
    loaded = load_cli_policy(policy_path, preset)
    files = [FileResults(source, run_tests(loaded.policy, tests)) for source, tests in suites]
    if output == "json":
        from kubectl_audit.render import to_json

        report = _report_json(loaded.source, files)
        click.echo(to_json(report))
        failed = report["failed"]
    else:
        click.echo(_report_text(files))
        failed = sum(1 for file in files for result in file.results if not result.passed)
    ctx.exit(1 if failed else 0)


__all__ = ["test"]
