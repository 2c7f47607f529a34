# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the Secrets the apply engine builds: what is kept, what is made, and that no
value ever reaches a report or an error message."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import sys
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _cookie_secret as cookie
from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_secrets as ks

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

# ansible-test runs module_utils tests in a venv with only its own requirements plus
# tests/unit/requirements.txt: without cryptography listed there, these tests show as skipped.
needs_cryptography = pytest.mark.skipif(
    not HAS_CRYPTOGRAPHY, reason="cryptography is not installed (list it in tests/unit/requirements.txt)"
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOST = "colors.example.com"
CLIENT_SECRET = "client-secret-value-Zq81xVw"  # noqa: S105 (a test value)
VALID_COOKIE = "A" * 43  # base64url of 32 bytes
TEN_BYTES = base64.urlsafe_b64encode(b"0123456789").decode().rstrip("=")  # 14 chars: neither rule holds

Spec = dict[str, t.Any]


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def unb64(value: str) -> bytes:
    return base64.b64decode(value)


def api_secret(namespace: str, name: str, data: dict[str, str | bytes]) -> dict[str, t.Any]:
    """A Secret as the API returns it (metadata the engine does not care about included)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "42", "uid": "u-1"},
        "type": "Opaque",
        "data": {key: b64(value) for key, value in data.items()},
    }


def data_spec(**extra: t.Any) -> Spec:
    return {
        "namespace": "oauth2-proxy",
        "name": "client",
        "data": {"client-secret": {"value_from": "client_secret"}, "client-id": {"value": "zerotrust-aks"}},
        **extra,
    }


def cookie_spec(**generate: t.Any) -> Spec:
    return {
        "namespace": "oauth2-proxy",
        "name": "cookie-secret",
        "generate": {"type": "cookie_secret", "key": "cookie-secret", **generate},
    }


def tls_spec(namespace: str = "oauth2-proxy", **generate: t.Any) -> Spec:
    return {
        "namespace": namespace,
        "name": "zerotrust-aks-tls",
        "type": "kubernetes.io/tls",
        "generate": {"type": "tls_selfsigned", "host": HOST, "valid_days": 365, "renew_before_days": 30, **generate},
    }


def build_one(
    spec: Spec, stored: dict[str, t.Any] | None = None, values: dict[str, str] | None = None, now: dt.datetime = NOW
) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    current = {(spec["namespace"], spec["name"]): stored} if "generate" in spec else {}
    objects, report = ks.build_secrets([spec], values or {}, current, now=now)
    assert len(objects) == len(report) == 1
    return objects[0], report[0]


def assert_hidden(text: str, *secrets: str | bytes) -> None:
    """None of the secrets appears in text, neither as is nor base64-encoded."""
    for secret in secrets:
        raw = secret.decode(errors="backslashreplace") if isinstance(secret, bytes) else secret
        assert raw not in text
        assert b64(secret) not in text


# --- Secrets from values and literals -------------------------------------------------------


def test_data_secret_is_an_applyable_object_with_base64_data() -> None:
    spec = data_spec(labels={"app.kubernetes.io/part-of": "zerotrust-aks"}, annotations={"note": "x"})
    obj, entry = build_one(spec, values={"client_secret": CLIENT_SECRET})
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "client",
            "namespace": "oauth2-proxy",
            "labels": {"app.kubernetes.io/part-of": "zerotrust-aks"},
            "annotations": {"note": "x"},
        },
        "type": "Opaque",
        "data": {"client-id": b64("zerotrust-aks"), "client-secret": b64(CLIENT_SECRET)},
    }
    assert entry == {
        "namespace": "oauth2-proxy",
        "name": "client",
        "keys": ["client-id", "client-secret"],
        "fingerprint": ks.fingerprint(obj["data"]),
        "reason": "built from the spec",
        "generated": False,
    }
    assert entry["fingerprint"].startswith("sha256:") and len(entry["fingerprint"]) == len("sha256:") + 12
    assert_hidden(json.dumps(entry), CLIENT_SECRET)


def test_data_secret_without_labels_has_no_empty_metadata_maps() -> None:
    obj = build_one(data_spec(type="Opaque"), values={"client_secret": CLIENT_SECRET})[0]
    assert obj["metadata"] == {"name": "client", "namespace": "oauth2-proxy"}


@pytest.mark.parametrize(
    "values", [{}, {"client_secret": ""}, {"other": CLIENT_SECRET}], ids=["absent", "empty", "other"]
)
def test_a_missing_value_names_the_values_key_and_the_secret(values: dict[str, str]) -> None:
    with pytest.raises(ks.SecretSpecError) as exc:
        build_one(data_spec(), values=values)
    assert "values['client_secret']: missing, empty or not a string" in str(exc.value)
    assert "oauth2-proxy/client" in str(exc.value)
    assert "data.client-secret" in str(exc.value)
    assert_hidden(str(exc.value), CLIENT_SECRET)


def test_fingerprint_follows_the_data() -> None:
    first = build_one(data_spec(), values={"client_secret": CLIENT_SECRET})[1]
    same = build_one(data_spec(), values={"client_secret": CLIENT_SECRET})[1]
    other = build_one(data_spec(), values={"client_secret": CLIENT_SECRET + "2"})[1]
    assert first["fingerprint"] == same["fingerprint"] != other["fingerprint"]


# --- cookie secret --------------------------------------------------------------------------


def cookie_of(obj: dict[str, t.Any]) -> str:
    return unb64(obj["data"]["cookie-secret"]).decode()


def stored_cookie(value: str | bytes) -> dict[str, t.Any]:
    return api_secret("oauth2-proxy", "cookie-secret", {"cookie-secret": value})


@pytest.mark.parametrize(
    "stored",
    [None, api_secret("oauth2-proxy", "cookie-secret", {}), {"metadata": {"name": "cookie-secret"}, "data": None}],
    ids=["no Secret", "no key", "data null"],
)
def test_cookie_secret_is_generated_when_none_is_stored(stored: dict[str, t.Any] | None) -> None:
    obj, entry = build_one(cookie_spec(), stored)
    assert cookie.key_length(cookie_of(obj)) == (32, True)
    assert entry["reason"] == "generated: none stored"
    assert entry["generated"] is True
    assert entry["keys"] == ["cookie-secret"]
    assert_hidden(json.dumps(entry), cookie_of(obj))


def test_a_valid_stored_cookie_secret_is_kept() -> None:
    obj, entry = build_one(cookie_spec(), stored_cookie(VALID_COOKIE))
    assert cookie_of(obj) == VALID_COOKIE
    assert (entry["reason"], entry["generated"]) == ("kept the stored value", False)
    assert obj["type"] == "Opaque"
    assert_hidden(json.dumps(entry), VALID_COOKIE)


def test_a_kept_cookie_secret_keeps_its_fingerprint() -> None:
    first = build_one(cookie_spec(), stored_cookie(VALID_COOKIE))[1]
    second = build_one(cookie_spec(), stored_cookie(VALID_COOKIE))[1]
    assert first["fingerprint"] == second["fingerprint"]


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (TEN_BYTES, "generated: the stored value is invalid (as base64url it decodes to 10 bytes"),
        ("not base64 at all!", "generated: the stored value is invalid (it is not unpadded base64url"),
        (b"\xff\xfe" * 8, "generated: the stored value is invalid (it is not base64-encoded UTF-8 text)"),
    ],
    ids=["10 bytes", "not base64url", "not UTF-8"],
)
def test_an_invalid_stored_cookie_secret_is_replaced(stored: str | bytes, reason: str) -> None:
    obj, entry = build_one(cookie_spec(), stored_cookie(stored))
    assert entry["reason"].startswith(reason)
    assert entry["generated"] is True
    assert cookie.is_valid(cookie_of(obj))
    assert_hidden(json.dumps(entry), stored)


def test_stored_data_that_is_not_base64_is_an_invalid_value() -> None:
    stored = {"data": {"cookie-secret": "%%%not-base64%%%"}}
    obj, entry = build_one(cookie_spec(), stored)
    assert entry["reason"] == "generated: the stored value is invalid (it is not base64-encoded UTF-8 text)"
    assert cookie.is_valid(cookie_of(obj))


def test_rotate_replaces_a_valid_stored_cookie_secret() -> None:
    obj, entry = build_one(cookie_spec(rotate=True), stored_cookie(VALID_COOKIE))
    assert cookie_of(obj) != VALID_COOKIE
    assert cookie.key_length(cookie_of(obj)) == (32, True)
    assert (entry["reason"], entry["generated"]) == ("rotated on request", True)


def test_each_generated_cookie_secret_is_new() -> None:
    first = build_one(cookie_spec(), None)[0]
    second = build_one(cookie_spec(), None)[0]
    assert cookie_of(first) != cookie_of(second)


GIVEN = "B" * 32  # raw 32 bytes (and base64url of 24): valid


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (None, "set to the given value"),
        (stored_cookie(VALID_COOKIE), "set to the given value, replacing the stored one"),
        (stored_cookie(TEN_BYTES), "set to the given value, replacing the stored one"),
        (stored_cookie(GIVEN), "kept: the given value is the stored one"),
    ],
    ids=["none stored", "another stored", "invalid stored", "same stored"],
)
def test_a_given_cookie_secret_wins_over_the_stored_one(stored: dict[str, t.Any] | None, reason: str) -> None:
    obj, entry = build_one(cookie_spec(value_from="cookie_secret"), stored, values={"cookie_secret": GIVEN})
    assert cookie_of(obj) == GIVEN
    assert (entry["reason"], entry["generated"]) == (reason, False)
    assert_hidden(json.dumps(entry), GIVEN, VALID_COOKIE)


def test_an_empty_or_absent_given_cookie_secret_falls_back_to_the_stored_one() -> None:
    for values in ({"cookie_secret": ""}, {}):
        obj, entry = build_one(cookie_spec(value_from="cookie_secret"), stored_cookie(VALID_COOKIE), values=values)
        assert cookie_of(obj) == VALID_COOKIE
        assert entry["reason"] == "kept the stored value"


def test_an_invalid_given_cookie_secret_is_refused_with_lengths_only() -> None:
    given = "given-but-too-short"
    with pytest.raises(ks.SecretSpecError) as exc:
        build_one(cookie_spec(value_from="cookie_secret"), None, values={"cookie_secret": given})
    message = str(exc.value)
    assert "oauth2-proxy/cookie-secret" in message
    assert "values['cookie_secret'] is not a valid cookie secret" in message
    assert "raw length is 19 bytes" in message
    assert_hidden(message, given)


def test_rotate_and_a_given_cookie_secret_exclude_each_other() -> None:
    with pytest.raises(ks.SecretSpecError, match="rotate is true and values\\['cookie_secret'\\] gives a value") as exc:
        build_one(cookie_spec(value_from="cookie_secret", rotate=True), None, values={"cookie_secret": GIVEN})
    assert_hidden(str(exc.value), GIVEN)


def test_a_generated_secret_the_engine_did_not_read_is_an_error_not_a_new_value() -> None:
    with pytest.raises(ValueError, match=r"current has no entry for \('oauth2-proxy', 'cookie-secret'\)"):
        ks.build_secrets([cookie_spec()], {}, {}, now=NOW)


# --- self-signed TLS ------------------------------------------------------------------------


def tls_parts(obj: dict[str, t.Any]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(unb64(obj["data"]["tls.crt"]))
    key = serialization.load_pem_private_key(unb64(obj["data"]["tls.key"]), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def as_stored(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    """What the API returns after the object was applied."""
    stored = copy.deepcopy(obj)
    stored["metadata"]["resourceVersion"] = "7"
    return stored


def spki(key: t.Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def self_signed(key: t.Any, host: str, not_before: dt.datetime, not_after: dt.datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def pem(key: t.Any, traditional: bool = False) -> bytes:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    text: bytes = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    return text


def stored_tls(key_pem: bytes | str | None, cert_pem: bytes | str | None) -> dict[str, t.Any]:
    data: dict[str, str | bytes] = {}
    if key_pem is not None:
        data["tls.key"] = key_pem
    if cert_pem is not None:
        data["tls.crt"] = cert_pem
    return api_secret("oauth2-proxy", "zerotrust-aks-tls", data)


@needs_cryptography
def test_tls_secret_is_generated_when_none_is_stored() -> None:
    obj, entry = build_one(tls_spec(), None)
    cert, key = tls_parts(obj)
    assert obj["type"] == "kubernetes.io/tls"
    assert isinstance(key.curve, ec.SECP256R1)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == HOST
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc <= NOW
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    cert.verify_directly_issued_by(cert)
    assert entry["keys"] == ["tls.crt", "tls.key"]
    assert (entry["reason"], entry["generated"]) == ("generated: none stored", True)
    assert_hidden(json.dumps(entry), unb64(obj["data"]["tls.key"]))


@needs_cryptography
def test_a_good_stored_certificate_is_kept_byte_for_byte() -> None:
    made = build_one(tls_spec(), None, now=NOW - dt.timedelta(days=100))[0]
    obj, entry = build_one(tls_spec(), as_stored(made))
    assert obj["data"] == made["data"]
    assert entry["reason"] == "kept the stored certificate (valid until 2027-02-21T12:00:00Z)"
    assert entry["generated"] is False


@needs_cryptography
def test_a_stored_traditional_ec_key_is_kept_as_stored() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = pem(key, traditional=True)
    cert_pem = self_signed(key, HOST, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300))
    obj, entry = build_one(tls_spec(), stored_tls(key_pem, cert_pem))
    assert unb64(obj["data"]["tls.key"]) == key_pem
    assert unb64(obj["data"]["tls.crt"]) == cert_pem
    assert entry["generated"] is False


@needs_cryptography
@pytest.mark.parametrize(
    ("made_days_ago", "reason"),
    [
        (336, "renewed: expires within 30 days"),
        (365, "renewed: expired on 2026-06-01T12:00:00Z"),
        (500, "renewed: expired on 2026-01-17T12:00:00Z"),
    ],
    ids=["within the renew window", "expiring now", "long expired"],
)
def test_an_expiring_certificate_is_renewed_with_the_same_key(made_days_ago: int, reason: str) -> None:
    made = build_one(tls_spec(), None, now=NOW - dt.timedelta(days=made_days_ago))[0]
    obj, entry = build_one(tls_spec(), as_stored(made))
    assert obj["data"]["tls.key"] == made["data"]["tls.key"]
    assert obj["data"]["tls.crt"] != made["data"]["tls.crt"]
    cert, key = tls_parts(obj)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert (entry["reason"], entry["generated"]) == (reason, True)


@needs_cryptography
def test_a_certificate_just_outside_the_renew_window_is_kept() -> None:
    made = build_one(tls_spec(), None, now=NOW - dt.timedelta(days=334))[0]
    entry = build_one(tls_spec(), as_stored(made))[1]
    assert entry["reason"].startswith("kept the stored certificate")


@needs_cryptography
def test_a_certificate_for_another_host_is_renewed_with_the_same_key() -> None:
    made = build_one(tls_spec(host="old.example.com"), None)[0]
    obj, entry = build_one(tls_spec(), as_stored(made))
    cert = tls_parts(obj)[0]
    assert obj["data"]["tls.key"] == made["data"]["tls.key"]
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [HOST]
    assert (entry["reason"], entry["generated"]) == ("renewed: made for another host", True)


@needs_cryptography
def test_a_certificate_with_the_right_san_but_another_common_name_is_renewed() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other.example.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=300))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    entry = build_one(tls_spec(), stored_tls(pem(key), cert.public_bytes(serialization.Encoding.PEM)))[1]
    assert entry["reason"] == "renewed: made for another host"


@needs_cryptography
def test_a_certificate_not_valid_yet_is_renewed() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = self_signed(key, HOST, NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=300))
    entry = build_one(tls_spec(), stored_tls(pem(key), cert_pem))[1]
    assert entry["reason"] == "renewed: not valid before 2026-06-02T12:00:00Z"


@needs_cryptography
def test_a_certificate_of_another_key_is_renewed_with_the_stored_key() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    cert_pem = self_signed(other, HOST, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300))
    obj, entry = build_one(tls_spec(), stored_tls(pem(key), cert_pem))
    cert, kept = tls_parts(obj)
    assert spki(kept.public_key()) == spki(key.public_key()) == spki(cert.public_key())
    assert entry["reason"] == "renewed: the stored certificate does not match the stored key"


@needs_cryptography
@pytest.mark.parametrize(
    ("cert_pem", "reason"),
    [
        (None, "renewed: no certificate stored"),
        (
            b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
            "renewed: the stored certificate is unreadable",
        ),
        (b"\x00\x01 binary junk", "renewed: the stored certificate is unreadable"),
    ],
    ids=["absent", "garbage PEM", "binary"],
)
def test_a_missing_or_garbage_certificate_is_renewed_with_the_stored_key(cert_pem: bytes | None, reason: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    obj, entry = build_one(tls_spec(), stored_tls(pem(key), cert_pem))
    cert, kept = tls_parts(obj)
    assert spki(kept.public_key()) == spki(key.public_key()) == spki(cert.public_key())
    assert (entry["reason"], entry["generated"]) == (reason, True)


@needs_cryptography
def test_certificate_data_that_is_not_base64_counts_as_unreadable() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    stored = {"data": {"tls.key": b64(pem(key)), "tls.crt": "!!not base64!!"}}
    obj, entry = build_one(tls_spec(), stored)
    assert entry["reason"] == "renewed: the stored certificate is unreadable"
    assert spki(tls_parts(obj)[1].public_key()) == spki(key.public_key())


GARBAGE_KEY = b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
BAD_KEYS: dict[str, t.Callable[[], bytes]] = {
    "RSA": lambda: pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "P-384": lambda: pem(ec.generate_private_key(ec.SECP384R1())),
}


@needs_cryptography
@pytest.mark.parametrize(
    ("key_pem", "reason"),
    [
        (GARBAGE_KEY, "generated: the stored key is unreadable"),
        ("!!not base64!!", "generated: the stored key is unreadable"),
        (None, "generated: no key stored"),
        ("RSA", "generated: the stored key is not an EC P-256 key"),
        ("P-384", "generated: the stored key is not an EC P-256 key"),
    ],
    ids=["garbage PEM", "not base64", "absent", "RSA", "P-384"],
)
def test_a_bad_stored_key_is_replaced_along_with_its_certificate(key_pem: bytes | str | None, reason: str) -> None:
    if isinstance(key_pem, str) and key_pem in BAD_KEYS:
        key_pem = BAD_KEYS[key_pem]()
    old_key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = self_signed(old_key, HOST, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300))
    stored = stored_tls(key_pem if isinstance(key_pem, bytes) else None, cert_pem)
    if isinstance(key_pem, str):
        stored["data"]["tls.key"] = key_pem  # raw, not base64
    obj, entry = build_one(tls_spec(), stored)
    cert, key = tls_parts(obj)
    assert isinstance(key.curve, ec.SECP256R1)
    assert spki(cert.public_key()) == spki(key.public_key()) != spki(old_key.public_key())
    assert (entry["reason"], entry["generated"]) == (reason, True)
    if isinstance(key_pem, bytes):
        assert_hidden(json.dumps(entry), key_pem)


@needs_cryptography
def test_members_of_a_group_share_key_and_certificate_read_from_the_first_only() -> None:
    specs = [tls_spec("oauth2-proxy", group="site"), tls_spec("colors-web", group="site")]
    assert ks.secrets_to_read(specs) == [("oauth2-proxy", "zerotrust-aks-tls")]
    made = build_one(specs[0], None, now=NOW - dt.timedelta(days=10))[0]
    objects, report = ks.build_secrets(specs, {}, {("oauth2-proxy", "zerotrust-aks-tls"): as_stored(made)}, now=NOW)
    assert [o["metadata"]["namespace"] for o in objects] == ["oauth2-proxy", "colors-web"]
    assert objects[0]["data"] == objects[1]["data"] == made["data"]
    assert report[0]["fingerprint"] == report[1]["fingerprint"]
    assert [e["reason"].startswith("kept the stored certificate") for e in report] == [True, True]


@needs_cryptography
def test_new_group_members_get_the_same_new_certificate() -> None:
    specs = [tls_spec("oauth2-proxy", group="site"), tls_spec("colors-web", group="site")]
    objects, report = ks.build_secrets(specs, {}, {("oauth2-proxy", "zerotrust-aks-tls"): None}, now=NOW)
    assert objects[0]["data"] == objects[1]["data"]
    assert [(e["reason"], e["generated"]) for e in report] == [("generated: none stored", True)] * 2


@needs_cryptography
def test_ungrouped_tls_secrets_each_get_their_own_key() -> None:
    specs = [tls_spec("oauth2-proxy"), tls_spec("colors-web")]
    refs = ks.secrets_to_read(specs)
    assert refs == [("oauth2-proxy", "zerotrust-aks-tls"), ("colors-web", "zerotrust-aks-tls")]
    objects = ks.build_secrets(specs, {}, dict.fromkeys(refs), now=NOW)[0]
    assert objects[0]["data"]["tls.key"] != objects[1]["data"]["tls.key"]


def test_a_missing_cryptography_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(ks.MissingLibraryError, match="the Python library cryptography is needed") as exc:
        build_one(tls_spec(), None)
    assert exc.value.library == "cryptography"
    # Secrets without TLS need no cryptography.
    obj = build_one(cookie_spec(), None)[0]
    assert cookie.is_valid(cookie_of(obj))


# --- which Secrets to read ------------------------------------------------------------------


def test_secrets_to_read_lists_generated_secrets_in_order() -> None:
    specs = [
        data_spec(),
        tls_spec("oauth2-proxy", group="site"),
        cookie_spec(),
        tls_spec("colors-web", group="site"),
        {**tls_spec("other"), "name": "api-tls"},
    ]
    assert ks.secrets_to_read(specs) == [
        ("oauth2-proxy", "zerotrust-aks-tls"),
        ("oauth2-proxy", "cookie-secret"),
        ("other", "api-tls"),
    ]


def test_secrets_to_read_validates_the_specs() -> None:
    with pytest.raises(ks.SecretSpecError, match=r"secrets\[0\] \(oauth2-proxy/client\): give exactly one"):
        ks.secrets_to_read([data_spec(generate={"type": "cookie_secret", "key": "k"})])


# --- spec validation ------------------------------------------------------------------------


def with_generate(spec: Spec, **changes: t.Any) -> Spec:
    spec = copy.deepcopy(spec)
    spec["generate"].update(changes)
    return {**spec, "generate": {k: v for k, v in spec["generate"].items() if v is not None}}


SPEC_ERRORS = [
    pytest.param("not a list", "secrets must be a list of Secret specs, got str", id="not a list"),
    pytest.param(["x"], "secrets[0]: each entry must be a mapping", id="entry not a mapping"),
    pytest.param([{**data_spec(), "namespace": "Bad_NS"}], "secrets[0]: namespace must be", id="namespace"),
    pytest.param([{**data_spec(), "name": None}], "secrets[0]: name must be a Kubernetes object name", id="name"),
    pytest.param([data_spec(stringData={})], "(oauth2-proxy/client): unknown field(s) stringData", id="unknown field"),
    pytest.param(
        [{"namespace": "a", "name": "b"}], "secrets[0] (a/b): give exactly one of data or generate", id="none"
    ),
    pytest.param([data_spec(type="")], "(oauth2-proxy/client): type must be a non-empty string", id="empty type"),
    pytest.param([data_spec(labels={"a": 1})], "(oauth2-proxy/client): labels must be a mapping", id="labels"),
    pytest.param([data_spec(data={})], "(oauth2-proxy/client): data must be a non-empty mapping", id="empty data"),
    pytest.param([data_spec(data={"..x": {"value": "v"}})], "a key of data must be a Secret data key", id="data key"),
    pytest.param(
        [data_spec(data={"k": {"value": "v", "value_from": "w"}})],
        "(oauth2-proxy/client): data.k must be a mapping with exactly one of value or value_from",
        id="value and value_from",
    ),
    pytest.param([data_spec(data={"k": "v"})], "data.k must be a mapping with exactly one", id="bare value"),
    pytest.param([data_spec(data={"k": {"value_from": ""}})], "data.k.value_from must be a non-empty", id="value_from"),
    pytest.param(
        [data_spec(data={"k": {"value": 918273645}})], "data.k.value must be a string, got int", id="value not a string"
    ),
    pytest.param([cookie_spec(type="random")], "generate.type must be one of cookie_secret, tls_selfsigned", id="gen"),
    pytest.param([cookie_spec(key=None)], "(oauth2-proxy/cookie-secret): generate.key must be a Secret data", id="key"),
    pytest.param([with_generate(cookie_spec(), key=None)], "generate.key (the data key", id="no key"),
    pytest.param([cookie_spec(rotate="yes")], "generate.rotate must be true or false", id="rotate"),
    pytest.param([cookie_spec(value_from=3)], "generate.value_from must be a non-empty string", id="cookie value_from"),
    pytest.param([cookie_spec(host=HOST)], "unknown field(s) generate.host", id="cookie with host"),
    pytest.param([{**tls_spec(), "type": "Opaque"}], "type must be kubernetes.io/tls", id="tls type"),
    pytest.param([tls_spec(host="https://x.example.com")], "generate.host must be a DNS name", id="host"),
    pytest.param([with_generate(tls_spec(), host=None)], "generate.host must be a DNS name", id="no host"),
    pytest.param([tls_spec(valid_days=0)], "generate.valid_days must be an integer of at least 1", id="valid_days"),
    pytest.param([tls_spec(valid_days=True)], "generate.valid_days must be an integer", id="valid_days bool"),
    pytest.param(
        [tls_spec(valid_days=30, renew_before_days=30)],
        "generate.renew_before_days (30) must be less than generate.valid_days (30)",
        id="renew window",
    ),
    pytest.param([tls_spec(group="")], "generate.group must be a non-empty string", id="group"),
    pytest.param([tls_spec(key="k")], "unknown field(s) generate.key", id="tls with key"),
    pytest.param(
        [tls_spec("oauth2-proxy", group="site"), tls_spec("colors-web", group="site", host="other.example.com")],
        "secrets[1] (colors-web/zerotrust-aks-tls): generate.host differs from secrets[0] "
        "(oauth2-proxy/zerotrust-aks-tls), the first member of group 'site'",
        id="group host",
    ),
    pytest.param(
        [tls_spec("oauth2-proxy", group="site"), tls_spec("colors-web", group="site", valid_days=90)],
        "generate.valid_days differs",
        id="group valid_days",
    ),
    pytest.param(
        [cookie_spec(), data_spec(name="cookie-secret")],
        "secrets[1] (oauth2-proxy/cookie-secret): the same Secret is already given as secrets[0]",
        id="duplicate",
    ),
]


@pytest.mark.parametrize(("specs", "message"), SPEC_ERRORS)
def test_spec_errors_name_the_entry_and_the_field(specs: t.Any, message: str) -> None:
    with pytest.raises(ks.SecretSpecError) as exc:
        ks.build_secrets(specs, {"client_secret": CLIENT_SECRET}, {}, now=NOW)
    assert message in str(exc.value)
    assert_hidden(str(exc.value), CLIENT_SECRET, "918273645")


def test_spec_errors_come_before_any_generation() -> None:
    with pytest.raises(ks.SecretSpecError, match=r"secrets\[1\]"):
        ks.build_secrets([cookie_spec(), {"namespace": "a"}], {}, {("oauth2-proxy", "cookie-secret"): None})


@needs_cryptography
def test_build_does_not_change_its_inputs() -> None:
    specs = [data_spec(), cookie_spec(), tls_spec()]
    stored = {
        ("oauth2-proxy", "cookie-secret"): stored_cookie(VALID_COOKIE),
        ("oauth2-proxy", "zerotrust-aks-tls"): None,
    }
    before = copy.deepcopy((specs, stored))
    ks.build_secrets(specs, {"client_secret": CLIENT_SECRET}, stored, now=NOW)
    assert (specs, stored) == before


# --- rollout checksums ----------------------------------------------------------------------


def workload(pod_spec: dict[str, t.Any], kind: str = "Deployment", checksum: str = "auto") -> dict[str, t.Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "oauth2-proxy", "namespace": "oauth2-proxy"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}, "annotations": {ks.CHECKSUM_ANNOTATION: checksum, "other": "y"}},
                "spec": pod_spec,
            },
        },
    }


def report_entry(name: str, fingerprint: str, namespace: str = "oauth2-proxy") -> dict[str, t.Any]:
    return {
        "namespace": namespace,
        "name": name,
        "keys": ["k"],
        "fingerprint": fingerprint,
        "reason": "",
        "generated": False,
    }


def checksum(obj: dict[str, t.Any], report: list[dict[str, t.Any]]) -> str:
    (filled,) = ks.fill_checksums([obj], report)
    value: str = filled["spec"]["template"]["metadata"]["annotations"][ks.CHECKSUM_ANNOTATION]
    return value


REFERENCES: dict[str, dict[str, t.Any]] = {
    "env": {
        "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]
    },
    "envFrom": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}]},
    "volume": {"containers": [{"name": "c"}], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]},
    "projected": {
        "containers": [{"name": "c"}],
        "volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}],
    },
    "init env": {
        "initContainers": [
            {"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
        ],
        "containers": [{"name": "c"}],
    },
    "init envFrom": {"initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s"}}]}], "containers": []},
}


@pytest.mark.parametrize("pod_spec", REFERENCES.values(), ids=REFERENCES.keys())
@pytest.mark.parametrize("kind", ks.WORKLOAD_KINDS)
def test_checksum_changes_when_a_referenced_secret_changes(pod_spec: dict[str, t.Any], kind: str) -> None:
    obj = workload(pod_spec, kind)
    before = checksum(obj, [report_entry("s", "sha256:aaaaaaaaaaaa")])
    assert len(before) == 64 and int(before, 16) >= 0
    assert checksum(obj, [report_entry("s", "sha256:aaaaaaaaaaaa")]) == before
    assert checksum(obj, [report_entry("s", "sha256:bbbbbbbbbbbb")]) != before


def test_checksum_ignores_unreferenced_secrets_and_other_namespaces() -> None:
    obj = workload(REFERENCES["env"])
    base = [report_entry("s", "sha256:aaaaaaaaaaaa")]
    before = checksum(obj, base)
    assert checksum(obj, [*base, report_entry("unused", "sha256:111111111111")]) == before
    assert checksum(obj, [*base, report_entry("s", "sha256:222222222222", namespace="colors-web")]) == before
    elsewhere = checksum(obj, [report_entry("s", "sha256:333333333333", namespace="colors-web")])
    assert (
        elsewhere
        == checksum(obj, [report_entry("s", "sha256:444444444444", namespace="colors-web")])
        == checksum(obj, [])
    )
    # A Secret the pods read but that is not in the report (CSI-synced, say) does not count either.
    assert checksum(obj, []) == checksum(workload(REFERENCES["volume"]), [report_entry("t", "sha256:aaaaaaaaaaaa")])


def test_checksum_does_not_depend_on_report_order() -> None:
    pod_spec = {
        "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "a"}}, {"secretRef": {"name": "b"}}]}],
    }
    report = [report_entry("a", "sha256:aaaaaaaaaaaa"), report_entry("b", "sha256:bbbbbbbbbbbb")]
    assert checksum(workload(pod_spec), report) == checksum(workload(pod_spec), report[::-1])
    assert checksum(workload(pod_spec), report) != checksum(workload(pod_spec), report[:1])


def test_objects_without_auto_are_returned_as_they_are_and_inputs_stay_unchanged() -> None:
    literal = workload(REFERENCES["env"], checksum="0123")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "oauth2-proxy"}}
    no_annotations = workload(REFERENCES["env"])
    del no_annotations["spec"]["template"]["metadata"]["annotations"]
    job = workload(REFERENCES["env"], kind="Job")
    auto = workload(REFERENCES["env"])
    objects = [literal, service, no_annotations, job, auto]
    before = copy.deepcopy(objects)
    result = ks.fill_checksums(objects, [report_entry("s", "sha256:aaaaaaaaaaaa")])
    assert objects == before
    assert all(a is b for a, b in zip(result[:4], objects[:4], strict=True))
    assert result[4] is not auto
    annotations = result[4]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["other"] == "y" and annotations[ks.CHECKSUM_ANNOTATION] != "auto"


def test_auto_without_a_namespace_is_an_error() -> None:
    obj = workload(REFERENCES["env"])
    del obj["metadata"]["namespace"]
    with pytest.raises(ValueError, match=r"Deployment .oauth2-proxy. asks for zerotrust\.aks/secrets-checksum"):
        ks.fill_checksums([obj], [])


def test_a_rotated_cookie_secret_rolls_the_deployment_and_a_kept_one_does_not() -> None:
    pod_spec = {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "cookie-secret"}}]}]}
    current = {("oauth2-proxy", "cookie-secret"): stored_cookie(VALID_COOKIE)}
    kept = ks.build_secrets([cookie_spec()], {}, current)[1]
    kept_again = ks.build_secrets([cookie_spec()], {}, current)[1]
    rotated = ks.build_secrets([cookie_spec(rotate=True)], {}, current)[1]
    assert checksum(workload(pod_spec), kept) == checksum(workload(pod_spec), kept_again)
    assert checksum(workload(pod_spec), kept) != checksum(workload(pod_spec), rotated)
