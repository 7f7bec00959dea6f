"""Finding the policies in a file: a plain Policy, ConfigMap(s), a List of ConfigMaps."""

from __future__ import annotations

import pytest

from kubectl_audit.errors import InputError
from kubectl_audit.policy.documents import find_policies, is_policy_key

POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"


def configmap(name: str = "audit", namespace: str | None = "kube-system", **data: str) -> str:
    meta = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    body = "".join(
        f"  {key}: |\n" + "".join(f"    {line}\n" for line in value.splitlines())
        for key, value in data.items()
    )
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n{meta}data:\n{body}"


def test_plain_policy_file_is_checked_whole() -> None:
    contents = find_policies(POLICY, source="p.yaml")
    (source,) = contents.policies
    assert source.location is None
    assert source.data == POLICY
    assert source.file_line(3) == 3
    assert contents.configmaps == 0


@pytest.mark.parametrize(
    "text",
    [
        "rules: [\n",
        "",
        "- a\n",
        "kind: Namespace\n",
        POLICY + "---\n" + configmap(**{"policy.yaml": POLICY}),
    ],
    ids=["syntax-error", "empty", "list", "other-kind", "policy-first-then-configmap"],
)
def test_anything_not_a_configmap_file_goes_to_the_loader_whole(text: str) -> None:
    (source,) = find_policies(text, source="p.yaml").policies
    assert source.location is None and source.data == text


def test_single_configmap_with_lines_mapped_into_the_file() -> None:
    text = configmap(**{"policy.yaml": POLICY})
    (source,) = find_policies(text, source="cm.yaml").policies
    assert source.location == "ConfigMap kube-system/audit key policy.yaml"
    assert source.data == POLICY
    assert source.key_line == 7
    assert source.file_line(1) == 8  # `apiVersion: audit.k8s.io/v1` inside the block
    assert text.splitlines()[source.file_line(4) - 1].strip() == "- level: Metadata"


def test_multi_document_configmaps_and_a_list() -> None:
    first = configmap("one", **{"policy.yaml": POLICY})
    second = configmap("two", None, **{"audit-policy.yaml": POLICY, "other.txt": "x"})
    listed = (
        "apiVersion: v1\nkind: List\nitems:\n"
        + "\n".join(
            "- " + line if i == 0 else "  " + line
            for i, line in enumerate(configmap("three", **{"extra.yml": POLICY}).splitlines())
        )
        + "\n"
    )
    text = "kind: Namespace\napiVersion: v1\nmetadata: {name: kube-system}\n---\n"
    text += first + "---\n" + second + "---\n" + listed
    contents = find_policies(text, source="all.yaml")
    assert [s.location for s in contents.policies] == [
        "ConfigMap kube-system/one key policy.yaml",
        "ConfigMap two key audit-policy.yaml",
        "ConfigMap kube-system/three key extra.yml",
    ]
    assert contents.configmaps == 3
    lines = text.splitlines()
    for source in contents.policies:
        assert lines[source.file_line(1) - 1].strip() == "apiVersion: audit.k8s.io/v1"


def test_quoted_value_points_at_its_key() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n"
        '  policy.yaml: "apiVersion: audit.k8s.io/v1\\nrules: []\\n"\n'
    )
    (source,) = find_policies(text, source="cm.yaml").policies
    assert source.line_offset is None
    assert source.file_line(2) == 5


def test_non_string_value_is_a_problem() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  policy.yaml: 12\n"
    contents = find_policies(text, source="cm.yaml")
    assert contents.policies == ()
    (problem,) = contents.problems
    assert (problem.location, problem.line) == ("ConfigMap a key policy.yaml", 5)


def test_configmap_without_policies() -> None:
    contents = find_policies(configmap(**{"game.properties": "x=1"}), source="cm.yaml")
    assert contents.policies == () and contents.configmaps == 1


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("policy.yaml", "anything, even broken: [", True),
        ("audit-policy.yaml", "", True),
        ("default.yaml", POLICY, True),
        ("default.json", '{"apiVersion": "audit.k8s.io/v1"}', True),
        ("x.yml", "kind: Policy\n", True),
        ("x.yaml", "    APIVERSION: audit.k8s.io/v1\n", True),
        ("x.yaml", "apiVersion: v1\nkind: ConfigMap\n", False),
        ("x.txt", POLICY, False),
        ("x.yaml", "# kind: Policy is mentioned in a comment only\n", False),
    ],
)
def test_which_keys_carry_policies(key: str, value: str, expected: bool) -> None:
    assert is_policy_key(key, value) is expected


def test_unreadable_bytes_raise_input_error() -> None:
    with pytest.raises(InputError):
        find_policies(b"\xff\xfe", source="x")
    with pytest.raises(InputError):
        find_policies("a: 1\n" * 100, source="x", max_bytes=10)
