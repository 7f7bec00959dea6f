"""`kubectl audit validate` through click's runner and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubectl_audit.cli import cli
from kubectl_audit.cli.validate import _escape_data, _escape_property
from kubectl_audit.errors import InputError
from tests.conftest import ROOT, TESTDATA

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
GOOD = HEAD + "rules:\n- level: Metadata\n"  # no lint advice either
BAD = HEAD + "rules:\n- level: None\n- level: metadata\n"
WARNS = HEAD + "rules:\n- level: Metadata\n  Verbs: [get]\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in (("good.yaml", GOOD), ("bad.yaml", BAD), ("warns.yaml", WARNS)):
        path = tmp_path / name
        path.write_text(text)
        out[name] = path
    return out


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_exits_0(files: dict[str, Path]) -> None:
    code, out, _ = run(str(files["good.yaml"]))
    assert code == 0
    assert out.splitlines()[0] == f"{files['good.yaml']}: valid"


def test_invalid_file_exits_1_with_file_line_message(files: dict[str, Path]) -> None:
    code, out, _ = run(str(files["bad.yaml"]))
    assert code == 1
    assert f"{files['bad.yaml']}: INVALID (1 error" in out
    assert (
        f'{files["bad.yaml"]}:6: rules[1].level: Unsupported value: "metadata": supported '
        'values: "None", "Metadata", "Request", "RequestResponse"'
    ) in out
    assert out.splitlines()[-1].startswith("1 policy checked: 0 valid, 1 invalid")


def test_warnings_fail_only_with_strict(files: dict[str, Path]) -> None:
    code, out, _ = run(str(files["warns.yaml"]))
    assert code == 0
    assert f'{files["warns.yaml"]}:6: warning: unknown field "rules[0].Verbs"' in out
    assert run(str(files["warns.yaml"]), "--strict")[0] == 1
    assert run(str(files["good.yaml"]), "--strict")[0] == 0


def test_json_output_shape(files: dict[str, Path]) -> None:
    code, out, _ = run(str(files["good.yaml"]), str(files["bad.yaml"]), "-o", "json")
    assert code == 1
    document = json.loads(out)
    assert list(document) == ["results"]
    good, bad = document["results"]
    assert set(good) == {"file", "location", "valid", "errors", "warnings"}
    assert (good["file"], good["location"], good["valid"], good["errors"]) == (
        str(files["good.yaml"]),
        None,
        True,
        [],
    )
    assert bad["valid"] is False
    assert bad["errors"] == [
        {
            "field": "rules[1].level",
            "type": "NotSupported",
            "message": 'rules[1].level: Unsupported value: "metadata": supported values: '
            '"None", "Metadata", "Request", "RequestResponse"',
            "line": 6,
        }
    ]


def test_github_annotations_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "a,b:c.yaml"
    path.write_text(
        "apiVersion: audit.k8s.io/v1\nrules:\n- level: None\n  nonResourceURLs: ['50%\\n']\n"
    )
    code, out, _ = run(str(path), "-o", "github")
    assert code == 1
    first = out.splitlines()[0]
    escaped = str(path).replace(":", "%3A").replace(",", "%2C")
    assert first.startswith(f"::error file={escaped},line=4,title=audit policy Invalid::")
    assert 'Invalid value: "50%25\\\\n"' in first  # % escaped; backslash Go-quoted


def test_github_escaping_of_newlines() -> None:
    assert _escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert _escape_property("x:y,z") == "x%3Ay%2Cz"


def test_stdin(files: dict[str, Path]) -> None:
    code, out, _ = run("-", "-o", "json", input=BAD)
    assert code == 1
    assert json.loads(out)["results"][0]["file"] == "<stdin>"


def test_configmap_file_reports_each_policy_with_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    body = "".join(f"    {line}\n" for line in BAD.splitlines())
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: audit\n  namespace: kube-system\n"
        f"data:\n  policy.yaml: |\n{body}"
    )
    code, out, _ = run(str(path), "-o", "json")
    assert code == 1
    (result,) = json.loads(out)["results"]
    assert result["location"] == "ConfigMap kube-system/audit key policy.yaml"
    assert result["errors"][0]["line"] == 13
    assert path.read_text().splitlines()[12].strip() == "- level: metadata"


def test_configmap_without_a_policy_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    code, out, _ = run(str(path))
    assert code == 1
    assert "no audit policy found in 1 ConfigMap(s)" in out


def test_every_testdata_policy_through_the_cli() -> None:
    paths = sorted(str(p) for p in (TESTDATA / "policies").rglob("*.yaml"))
    code, out, _ = run(*paths, "-o", "json")
    results = json.loads(out)["results"]
    invalid = [r["file"] for r in results if not r["valid"]]
    assert invalid == [
        str(TESTDATA / "policies/openshift-logging-osd-example-policy-nonstandard.yaml")
    ]
    assert code == 1
    assert len(results) == len(paths) + 2  # the ConfigMap holds three policies


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "give at least one FILE"),
        (("-o", "xml", "x"), "Invalid value for '-o'"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], needle: str) -> None:
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exit_code == 2
    assert needle in result.stderr


def test_unreadable_file_is_an_input_error_exit_2() -> None:
    # Through click's runner our InputError surfaces as the exception the root
    # `main()` turns into `error: ...` and exit status 2 (checked by subprocess below).
    result = CliRunner().invoke(cli, ["validate", "/no/such/file.yaml"])
    assert isinstance(result.exception, InputError)
    assert result.exception.exit_code == 2
    assert result.exception.message == "cannot read /no/such/file.yaml: No such file or directory"


def _subprocess(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kubectl_audit", "validate", *args],
        input=input,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_subprocess_exit_codes_and_messages(files: dict[str, Path], tmp_path: Path) -> None:
    assert _subprocess(str(files["good.yaml"])).returncode == 0
    bad = _subprocess(str(files["bad.yaml"]), "-o", "json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["results"][0]["errors"][0]["line"] == 6
    strict = _subprocess("--strict", "-", input=WARNS.encode())
    assert strict.returncode == 1
    missing = _subprocess(str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith(f"error: cannot read {tmp_path / 'missing.yaml'}")
    assert b"Traceback" not in missing.stderr
    github = _subprocess(str(files["bad.yaml"]), "-o", "github")
    assert github.returncode == 1
    assert github.stdout.decode().startswith(f"::error file={files['bad.yaml']},line=6,")


def test_subprocess_refuses_a_yaml_bomb_without_a_traceback(tmp_path: Path) -> None:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = _subprocess(str(path))
    assert result.returncode == 1
    assert "expands to more than" in result.stdout.decode()
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (
            "apiVersion: audit.k8s.io/v1beta1\nrules: []\n",
            "v1alpha1/v1beta1 were removed in Kubernetes 1.24",
        ),
        ("rules:\n- level: Metadata\n", "start the policy with `apiVersion: audit.k8s.io/v1`"),
        (HEAD + "rules:\n- level: None\n  namespaces: [no]\n", "quote the value"),
        (
            HEAD + "rules:\n- level: None\n  resources: [{group: apps/v1}]\n",
            "give the API group alone",
        ),
        (HEAD + "rules: []\n", "add at least one rule"),
    ],
)
def test_text_output_says_how_to_fix(text: str, hint: str) -> None:
    code, out, _ = run("-", input=text)
    assert code == 1
    assert f"    hint: {hint}" in out
