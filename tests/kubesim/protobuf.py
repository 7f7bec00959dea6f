"""Decoding the `application/vnd.kubernetes.protobuf` bodies kubectl sends.

kubectl's typed clients (`kubectl create configmap`, `kubectl create namespace`,
`kubectl auth can-i`, `kubectl auth whoami`) send protobuf, and the real apiserver accepts
it. We decode just those kinds, from the field numbers in k8s.io/api's generated.proto files
and apimachinery's runtime.Unknown envelope (`k8s\\x00` magic, then typeMeta=1, raw=2,
contentEncoding=3, contentType=4). Anything else is refused with the apiserver's 415 text,
which tells the caller to use JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """A body we cannot decode."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; length-delimited values stay bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode("utf-8")


def _map_entry(value: int | bytes) -> tuple[str, bytes]:
    entry = dict(_fields(value if isinstance(value, bytes) else b""))
    key = entry.get(1, b"")
    val = entry.get(2, b"")
    return _text(key), val if isinstance(val, bytes) else b""


def _object_meta(buf: bytes) -> dict:
    meta: dict = {}
    simple = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
    for number, value in _fields(buf):
        if number in simple:
            text = _text(value)
            if text:  # gogo-protobuf writes empty strings too; JSON omits them
                meta[simple[number]] = text
        elif number in (11, 12):
            key, val = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = val.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _configmap(buf: bytes) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2:
            key, val = _map_entry(value)
            obj.setdefault("data", {})[key] = val.decode("utf-8")
        elif number == 3:
            key, val = _map_entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(val).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _namespace(buf: bytes) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
    for number, value in _fields(buf):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in _fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _strings(buf: bytes, names: dict[int, str]) -> dict:
    return {names[n]: _text(v) for n, v in _fields(buf) if n in names and _text(v)}


_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}


def _access_review(buf: bytes) -> dict:
    """SelfSubjectAccessReview (what `kubectl auth can-i` sends)."""
    spec: dict = {}
    for number, value in _fields(buf):
        if number != 2 or not isinstance(value, bytes):
            continue
        for part, attrs in _fields(value):
            if part == 1 and isinstance(attrs, bytes):
                spec["resourceAttributes"] = _strings(attrs, _RESOURCE_ATTRIBUTES)
            elif part == 2 and isinstance(attrs, bytes):
                spec["nonResourceAttributes"] = _strings(attrs, {1: "path", 2: "verb"})
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": spec,
    }


def _self_review(buf: bytes) -> dict:
    """SelfSubjectReview (`kubectl auth whoami`): the request carries nothing but metadata."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}


_DECODERS: dict[str, Callable[[bytes], dict]] = {
    "ConfigMap": _configmap,
    "Namespace": _namespace,
    "SelfSubjectAccessReview": _access_review,
    "SelfSubjectReview": _self_review,
}


def decode(body: bytes) -> dict:
    """The JSON-shaped object of a protobuf-encoded request body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = envelope.get(1, b"")
    type_fields = dict(_fields(type_meta if isinstance(type_meta, bytes) else b""))
    kind = _text(type_fields.get(2, b""))
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtobufError(f"protobuf decoding of kind {kind!r} is not modelled")
    raw = envelope.get(2, b"")
    return decoder(raw if isinstance(raw, bytes) else b"")
