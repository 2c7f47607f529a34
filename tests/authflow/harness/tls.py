"""TLS material for nginx: a throw-away PKI, or the files of a ``kubernetes.io/tls`` Secret."""

from __future__ import annotations

import base64
import datetime
import typing as t
from collections.abc import Mapping, Sequence
from pathlib import Path

from testkit.pki import CertificateAuthority, write_private


def write_test_pki(directory: Path, hosts: Sequence[str]) -> dict[str, Path]:
    """A throw-away CA and one serving certificate per name in ``hosts`` (plus a default one).

    Returns paths: ``ca``, ``<host>.crt`` / ``<host>.key`` for every host and for "default", and
    ``site.crt`` / ``site.key`` naming all ``hosts`` (for a TLS entry that lists several).
    """
    ca = CertificateAuthority("zerotrust-aks authflow test CA", valid_for=datetime.timedelta(days=1))
    paths = {"ca": ca.write(directory / "ca.crt")}
    # "default" mirrors ingress-nginx's fake certificate for its default server.
    for host in [*hosts, "default"]:
        dns = host if host != "default" else "ingress.local"
        cert, key = ca.issue_server(dns, dns=[dns]).write(directory / f"{host}.crt", directory / f"{host}.key")
        paths[f"{host}.crt"], paths[f"{host}.key"] = cert, key
    if hosts:
        site = ca.issue_server(hosts[0], dns=hosts).write(directory / "site.crt", directory / "site.key")
        paths["site.crt"], paths["site.key"] = site
    return paths


def write_tls_secret_files(secret: Mapping[str, t.Any], directory: Path, name: str) -> tuple[Path, Path]:
    """Certificate and key files from a ``kubernetes.io/tls`` Secret (as read from the API)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / f"{name}.crt"
    cert.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
    key = write_private(directory / f"{name}.key", base64.b64decode(secret["data"]["tls.key"]))
    return cert, key
