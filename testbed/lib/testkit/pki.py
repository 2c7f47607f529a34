"""Throw-away X.509: a CA that issues server and client certificates, and signing key pairs.

EC P-256 by default (fast to make; Go, OpenSSL and Python's ssl all accept it). Every CA has a
Subject Key Identifier and every leaf an Authority Key Identifier: OpenSSL's strict verification
(Python 3.13's default ``VERIFY_X509_STRICT``) refuses leaves without one.

    ca = CertificateAuthority("zerotrust-aks test CA", valid_for=timedelta(days=1))
    ca_file = ca.write(tmp / "ca.crt")
    server = ca.issue_server("api", dns=["localhost"])             # SAN: DNS + IP 127.0.0.1
    crt, key = server.write(tmp / "api.crt", tmp / "api.key")       # key file mode 0600
    admin = ca.issue_client("admin", organizations=["system:masters"])
    write_key_pair(tmp / "sa.key", tmp / "sa.pub", algorithm="rsa")
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyAlgorithm = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
LOOPBACK = ("127.0.0.1",)
# Clocks of the programs that check the certificates may lag a little behind ours.
BACKDATE = datetime.timedelta(minutes=5)


def new_key(algorithm: KeyAlgorithm = "ec") -> PrivateKey:
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private(path: Path, data: bytes) -> Path:
    """Write DATA to PATH readable by its owner only (created so: never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.touch(0o600)
    path.write_bytes(data)
    return path


def write_key_pair(private: Path, public: Path, algorithm: KeyAlgorithm = "ec") -> tuple[Path, Path]:
    """A signing key pair as PEM files (PKCS#8 private, SubjectPublicKeyInfo public), e.g. the
    ServiceAccount token key of kube-apiserver and kube-controller-manager."""
    key = new_key(algorithm)
    write_private(private, key_pem(key))
    public.parent.mkdir(parents=True, exist_ok=True)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name(attributes)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def write(self, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
        """Write both as PEM (the key with mode 0600); return (cert_path, key_path)."""
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.cert_pem)
        write_private(key_path, self.key_pem)
        return cert_path, key_path


class CertificateAuthority:
    """A self-signed CA, valid from a few minutes ago for VALID_FOR; what it issues is valid as long."""

    def __init__(self, common_name: str, *, valid_for: datetime.timedelta = datetime.timedelta(days=1)) -> None:
        self.not_before = datetime.datetime.now(datetime.UTC) - BACKDATE
        self.not_after = self.not_before + BACKDATE + valid_for
        key = new_key("ec")
        subject = name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            # No intermediates: everything is issued by this CA directly.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.ca = Issued(cert, key)

    @property
    def cert(self) -> x509.Certificate:
        return self.ca.cert

    @property
    def cert_pem(self) -> bytes:
        return self.ca.cert_pem

    def write(self, cert_path: Path, key_path: Path | None = None) -> Path:
        """Write the CA certificate (and its key when KEY_PATH is given); return CERT_PATH."""
        if key_path is None:
            cert_path.parent.mkdir(parents=True, exist_ok=True)
            cert_path.write_bytes(self.cert_pem)
        else:
            self.ca.write(cert_path, key_path)
        return cert_path

    def issue(
        self,
        common_name: str,
        *,
        organizations: Iterable[str] = (),
        server: bool = False,
        client: bool = False,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        algorithm: KeyAlgorithm = "ec",
    ) -> Issued:
        """A leaf certificate with the extended key usages asked for and SANs DNS + IPS."""
        key = new_key(algorithm)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if not usages:
            raise ValueError("a certificate for neither server nor client use")
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name, organizations))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # RSA key exchange (TLS 1.2 without ECDHE) encrypts with the leaf's key.
                    key_encipherment=algorithm == "rsa",
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return Issued(builder.sign(self.ca.key, hashes.SHA256()), key)

    def issue_server(
        self, common_name: str, *, dns: Iterable[str] = (), ips: Iterable[str] = LOOPBACK, client: bool = False
    ) -> Issued:
        """A serving certificate: SANs DNS and IPS (127.0.0.1 unless told otherwise)."""
        return self.issue(common_name, server=True, client=client, dns=dns, ips=ips)

    def issue_client(self, common_name: str, *, organizations: Iterable[str] = ()) -> Issued:
        """A client certificate; Kubernetes reads CN as the user and each O as a group."""
        return self.issue(common_name, organizations=organizations, client=True)
