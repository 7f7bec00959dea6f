"""Certificates and kubeconfig files for the simulated API endpoint.

A kubeadm cluster has a CA, an apiserver serving certificate for its addresses and an
admin client certificate; we make the same three. EC P-256 keys keep generation to a few
milliseconds, and the set is made once per process (a test session starts many clusters).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters",)
CONTEXT = "kubesim"


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Credentials:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair


_lock = threading.Lock()
_cached: Credentials | None = None


def credentials() -> Credentials:
    """The process-wide CA, serving and admin certificates (made on first use)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = _make_credentials()
        return _cached


def _make_credentials() -> Credentials:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving = _leaf(
        ca_cert,
        ca_key,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        ExtendedKeyUsageOID.SERVER_AUTH,
        san=x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]
        ),
    )
    admin = client_cert(ca_cert, ca_key, ADMIN_USER, ADMIN_GROUPS)
    return Credentials(ca=_pair(ca_cert, ca_key), serving=serving, admin=admin)


def client_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, user: str, groups: tuple
) -> KeyPair:
    """A client certificate: CN is the user name, each O a group (as kube-apiserver reads it)."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    return _leaf(ca_cert, ca_key, subject, ExtendedKeyUsageOID.CLIENT_AUTH, san=None)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    *,
    san: x509.SubjectAlternativeName | None,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return _pair(builder.sign(ca_key, hashes.SHA256()), key)


def _pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    return KeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def server_ssl_context(creds: Credentials, directory: Path) -> ssl.SSLContext:
    """TLS for the API endpoint: client certificates optional (tokens work too) but, when
    presented, verified against the cluster CA."""
    cert_file = _write_private(directory / "apiserver.crt", creds.serving.cert_pem)
    key_file = _write_private(directory / "apiserver.key", creds.serving.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(cadata=creds.ca.cert_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def write_kubeconfig(
    path: Path,
    server: str,
    creds: Credentials,
    *,
    user: str = ADMIN_USER,
    token: str | None = None,
    client: KeyPair | None = None,
) -> Path:
    """A kubeconfig with everything embedded (base64 `*-data`), usable unchanged by kubectl
    and the kubernetes Python client. Token users get a `token`, others a client cert."""
    if token is not None:
        user_entry: dict = {"token": token}
    else:
        pair = client or creds.admin
        user_entry = {
            "client-certificate-data": _b64(pair.cert_pem),
            "client-key-data": _b64(pair.key_pem),
        }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": _b64(creds.ca.cert_pem),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_private(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path
