"""The memmem-based finder answers exactly like bytes.find."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_audit.logs.fastfind import finder, uses_memmem

ALPHABET = st.sampled_from([b'"', b"a", b"b", b":", b"\n", b"\x00", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(ALPHABET, max_size=200).map(b"".join),
    needle=st.lists(ALPHABET, min_size=1, max_size=6).map(b"".join),
    start=st.integers(-210, 210),
    stop=st.integers(-210, 210),
)
def test_finder_agrees_with_bytes_find(data: bytes, needle: bytes, start: int, stop: int) -> None:
    assert finder(data)(needle, start, stop) == data.find(needle, start, stop)


def test_memmem_is_used_on_linux() -> None:
    assert uses_memmem()
