# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Self-signed certificates for several hosts (generate.alt_names): one certificate covers every
host of the protected apps, and a change of the host list renews it with the same key."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_secrets as ks

try:
    from cryptography import x509
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

needs_cryptography = pytest.mark.skipif(not HAS_CRYPTOGRAPHY, reason="cryptography is not installed")

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOST = "colors.example.com"


def tls_spec(namespace: str = "oauth2-proxy", **generate: t.Any) -> dict[str, t.Any]:
    return {
        "namespace": namespace,
        "name": "zerotrust-aks-tls",
        "type": "kubernetes.io/tls",
        "generate": {"type": "tls_selfsigned", "group": "site", "host": HOST, "valid_days": 365, **generate},
    }


def build(
    specs: list[dict[str, t.Any]], stored: dict[str, t.Any] | None = None
) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    current: dict[tuple[str, str], t.Any] = {(s["namespace"], s["name"]): None for s in specs}
    if stored is not None:
        current[(specs[0]["namespace"], specs[0]["name"])] = stored
    objects, report = ks.build_secrets(specs, {}, current, now=NOW)
    return objects, report


def dns_names(obj: dict[str, t.Any]) -> list[str]:
    cert = x509.load_pem_x509_certificate(base64.b64decode(obj["data"]["tls.crt"]))
    names: list[str] = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    return names


@needs_cryptography
def test_the_certificate_names_every_host_and_every_namespace_gets_the_same_one() -> None:
    alt = ["shop.example.com", "wiki.example.com"]
    objects = build([tls_spec(alt_names=alt), tls_spec("shop", alt_names=alt)])[0]
    assert dns_names(objects[0]) == [HOST, *alt]
    assert objects[0]["data"] == objects[1]["data"]


@needs_cryptography
def test_the_main_host_and_repeated_names_are_named_once() -> None:
    objects = build([tls_spec(alt_names=[HOST, "shop.example.com", "shop.example.com"])])[0]
    assert dns_names(objects[0]) == [HOST, "shop.example.com"]


@needs_cryptography
def test_a_stored_certificate_for_the_same_hosts_is_kept_and_a_new_host_renews_it() -> None:
    made = build([tls_spec(alt_names=["shop.example.com"])])[0][0]
    stored = copy.deepcopy(made)
    report = build([tls_spec(alt_names=["shop.example.com"])], stored)[1]
    assert report[0]["reason"].startswith("kept the stored certificate")
    objects, report = build([tls_spec(alt_names=["shop.example.com", "wiki.example.com"])], stored)
    assert report[0]["reason"] == "renewed: made for other hosts"
    assert objects[0]["data"]["tls.key"] == made["data"]["tls.key"]
    assert dns_names(objects[0]) == [HOST, "shop.example.com", "wiki.example.com"]


@pytest.mark.parametrize("alt_names", ["shop.example.com", ["Not A Host"], [1]])
def test_bad_alt_names_are_refused(alt_names: t.Any) -> None:
    with pytest.raises(ks.SecretSpecError, match=r"generate\.alt_names must be a list of DNS names"):
        build([tls_spec(alt_names=alt_names)])


def test_members_of_one_group_must_agree_on_the_hosts() -> None:
    with pytest.raises(ks.SecretSpecError, match=r"generate\.alt_names differs"):
        build([tls_spec(alt_names=["shop.example.com"]), tls_spec("shop")])
