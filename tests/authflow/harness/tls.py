"""TLS material for nginx: a throw-away PKI, or the files of a ``kubernetes.io/tls`` Secret."""

from __future__ import annotations

import base64
import datetime
import typing as t
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_test_pki(directory: Path, hosts: Sequence[str]) -> dict[str, Path]:
    """A throw-away CA and one serving certificate per name in ``hosts`` (plus a default one).

    Returns paths: ``ca``, and ``<host>.crt`` / ``<host>.key`` for every host and for "default".
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerotrust-aks authflow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.crt"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # "default" mirrors ingress-nginx's fake certificate for its default server.
    for host in [*hosts, "default"]:
        key = ec.generate_private_key(ec.SECP256R1())
        dns = host if host != "default" else "ingress.local"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{host}.crt"] = directory / f"{host}.crt"
        paths[f"{host}.key"] = directory / f"{host}.key"
        paths[f"{host}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{host}.key"].write_bytes(key_pem(key))
        paths[f"{host}.key"].chmod(0o600)
    return paths


def write_tls_secret_files(secret: Mapping[str, t.Any], directory: Path, name: str) -> tuple[Path, Path]:
    """Certificate and key files from a ``kubernetes.io/tls`` Secret (as read from the API)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
    key.chmod(0o600)
    return cert, key
