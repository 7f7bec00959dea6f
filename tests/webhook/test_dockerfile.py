"""The image recipe, checked statically (no container runtime on the test machines)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "webhook" / "Dockerfile").read_text()


def test_base_image_is_pinned_to_an_exact_tag_or_digest() -> None:
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)


def test_runs_as_a_numeric_non_root_user() -> None:
    users = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert users == [("65532", "65532")]
    assert DOCKERFILE.rstrip().splitlines()[-1].startswith("ENTRYPOINT")


def test_copied_paths_exist_and_the_runtime_is_pinned() -> None:
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
    requirements = (ROOT / "webhook" / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line.strip() and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", p) for p in pins)
    names = {p.split("==")[0].lower() for p in pins}
    assert {"flask", "gunicorn", "prometheus-client", "pyyaml", "orjson"} <= names
