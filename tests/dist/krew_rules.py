"""krew's own manifest rules, written from field-notes §5.1-§5.3 (kubernetes-sigs/krew
`internal/index/validation/validate.go` and `cmd/validate-krew-manifest`), as a function
that returns every violation. Checked against real krew-index manifests (must pass) and
krew's own bad test manifests (must fail) in test_krew_manifest.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {
    "windows": {"386", "amd64", "arm64"},
    "linux": {"386", "amd64", "arm", "arm64", "ppc64le"},
    "darwin": {"386", "amd64", "arm64"},
}
WINDOWS_RESERVED = (
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
SEMVER_V = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
KNOWN = {
    "": {"apiVersion", "kind", "metadata", "spec"},
    "metadata": {"name", "annotations", "labels"},
    "spec": {"version", "homepage", "shortDescription", "description", "caveats", "platforms"},
    "platform": {"selector", "uri", "sha256", "bin", "files"},
    "file": {"from", "to"},
}
LICENSE_NAMES = re.compile(r"^(licen[cs]e(s.*)?|copying)(\.txt|\.md)?$", re.IGNORECASE)


def _unknown(obj: dict[str, Any], known: set[str], where: str) -> list[str]:
    return [f"{where}: unknown field {key!r}" for key in obj if key not in known]


def _selector_pairs(selector: dict[str, Any]) -> set[tuple[str, str]]:
    """Every supported (os, arch) pair the selector matches."""
    labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    pairs = set()
    for os_name, arches in SUPPORTED.items():
        for arch in arches:
            values = {"os": os_name, "arch": arch}
            if any(values.get(k) != v for k, v in labels.items()):
                continue
            ok = True
            for expr in expressions:
                value, operator = values.get(expr.get("key")), expr.get("operator")
                listed = set(expr.get("values") or [])
                if (operator == "In" and value not in listed) or (
                    operator == "NotIn" and value in listed
                ):
                    ok = False
            if ok:
                pairs.add((os_name, arch))
    return pairs


def violations(path: Path) -> list[str]:
    problems: list[str] = []
    if path.suffix != ".yaml":
        problems.append("the manifest file must end in .yaml")
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        return [*problems, "the manifest is not a mapping"]
    problems += _unknown(doc, KNOWN[""], "top level")
    if doc.get("apiVersion") != "krew.googlecontainertools.github.com/v1alpha2":
        problems.append("apiVersion must be krew.googlecontainertools.github.com/v1alpha2")
    if doc.get("kind") != "Plugin":
        problems.append("kind must be Plugin")
    metadata = doc.get("metadata") or {}
    problems += _unknown(metadata, KNOWN["metadata"], "metadata")
    name = str(metadata.get("name") or "")
    if not re.fullmatch(r"[\w-]+", name):
        problems.append(f"plugin name {name!r} must match ^[\\w-]+$")
    if name.upper() in WINDOWS_RESERVED:
        problems.append(f"plugin name {name!r} is a reserved Windows name")
    if name != path.stem:
        problems.append(f"metadata.name {name!r} must equal the file name {path.stem!r}")
    spec = doc.get("spec") or {}
    problems += _unknown(spec, KNOWN["spec"], "spec")
    short = spec.get("shortDescription") or ""
    if not short or "\n" in short or "\r" in short:
        problems.append("spec.shortDescription must be one non-empty line")
    if not SEMVER_V.match(str(spec.get("version") or "")):
        problems.append(f"spec.version {spec.get('version')!r} must be semver with a leading v")
    platforms = spec.get("platforms") or []
    if not platforms:
        problems.append("spec.platforms must not be empty")
    seen: dict[tuple[str, str], int] = {}
    for index, platform in enumerate(platforms):
        where = f"spec.platforms[{index}]"
        problems += _unknown(platform, KNOWN["platform"], where)
        if not platform.get("uri"):
            problems.append(f"{where}.uri must be set")
        elif not str(platform["uri"]).endswith((".tar.gz", ".zip")):
            problems.append(f"{where}.uri must be a .tar.gz or .zip archive")
        if not re.fullmatch(r"[a-f0-9]{64}", str(platform.get("sha256") or "")):
            problems.append(f"{where}.sha256 must be 64 lowercase hex characters")
        if not platform.get("bin"):
            problems.append(f"{where}.bin must be set")
        if "files" in platform:
            files = platform["files"] or []
            if not files:
                problems.append(f"{where}.files, when present, must not be empty")
            for entry in files:
                problems += _unknown(entry, KNOWN["file"], f"{where}.files")
                if not entry.get("from") or not entry.get("to"):
                    problems.append(f"{where}.files entries need from and to")
        selector = platform.get("selector")
        if not selector:
            problems.append(f"{where}.selector must be set and non-empty")
            continue
        for key in ("matchLabels", "matchExpressions"):
            if key in selector and not selector[key]:
                problems.append(f"{where}.selector.{key} is present but empty")
        keys = set((selector.get("matchLabels") or {}).keys()) | {
            e.get("key") for e in selector.get("matchExpressions") or []
        }
        if keys - {"os", "arch"}:
            problems.append(f"{where}.selector may only use the keys os and arch")
        pairs = _selector_pairs(selector)
        if not pairs:
            problems.append(f"{where}.selector matches no supported os/arch")
        for pair in pairs:
            if pair in seen:
                problems.append(
                    f"{where} and spec.platforms[{seen[pair]}] both match {pair[0]}/{pair[1]}"
                )
            seen[pair] = index
    return problems


def bot_tips(path: Path) -> list[str]:
    """What krew-index reviewers' bot asks for (§5.3): short description length, wrapping."""
    spec = (yaml.safe_load(path.read_text()) or {}).get("spec") or {}
    tips = []
    if len(spec.get("shortDescription") or "") > 50:
        tips.append("shortDescription is longer than 50 characters")
    for line in (spec.get("description") or "").splitlines():
        if len(line) > 80:
            tips.append(f"description line longer than 80 columns: {line!r}")
        if line.lstrip().startswith(("$ ", "kubectl ")):
            tips.append(f"description contains a usage example: {line!r}")
    return tips
