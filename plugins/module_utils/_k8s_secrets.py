# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the Secrets the apply engine applies.

Pure functions, no API calls. The engine GETs the Secrets ``secrets_to_read`` names, passes
them to ``build_secrets`` and applies the objects it returns; ``fill_checksums`` then puts a
checksum of the Secrets each pod template uses into that template, so a changed Secret rolls
its Deployment.

Nothing here ever puts a secret value into a report entry or an exception message: reports
carry data keys and a short fingerprint, errors name the Secret, the field and at most lengths.

Generation follows what the roles did with Ansible tasks before: the cookie secret is made
once and kept while oauth2-proxy accepts it (``_cookie_secret``); a self-signed certificate
(EC P-256, like community.crypto's ``type: ECC, curve: secp256r1``) is kept while it matches
its key and host and stays valid beyond the renew window, and re-made with the same key when
that key is still a valid P-256 key. ``cryptography`` (>= 42, for ``not_valid_after_utc``)
is imported only when a ``tls_selfsigned`` Secret is built.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _cookie_secret as cookie
from ansible_collections.zerotrust.aks.plugins.module_utils import _validation

if t.TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

# The pod template annotation fill_checksums fills in when its value is AUTO.
CHECKSUM_ANNOTATION = "zerotrust.aks/secrets-checksum"
AUTO = "auto"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")

TLS_TYPE = "kubernetes.io/tls"
TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"
COOKIE_SECRET_SIZE = 32
# A new certificate starts a little in the past: clients whose clock runs behind would
# otherwise reject it as "not yet valid" for its first minutes.
CLOCK_SKEW = dt.timedelta(minutes=5)
# datetime.UTC needs Python 3.11; modules may run on older targets.
UTC = dt.timezone.utc  # noqa: UP017


_ENTRY_FIELDS = frozenset({"namespace", "name", "type", "labels", "annotations", "data", "generate"})
_GENERATE_FIELDS = {
    "cookie_secret": frozenset({"type", "key", "rotate", "value_from"}),
    "tls_selfsigned": frozenset({"type", "group", "host", "alt_names", "valid_days", "renew_before_days"}),
}


class SecretSpecError(ValueError):
    """A Secret spec that cannot be built. Messages name the Secret and field, never a value."""


class MissingLibraryError(RuntimeError):
    """A Python library needed for this spec is not installed (``library`` names it)."""

    def __init__(self, library: str, purpose: str) -> None:
        super().__init__(f"the Python library {library} is needed {purpose}")
        self.library = library


@dataclasses.dataclass(frozen=True)
class _Cookie:
    key: str
    rotate: bool
    value_from: str | None


@dataclasses.dataclass(frozen=True)
class _Tls:
    group: tuple[str, ...]
    host: str
    valid_days: int
    renew_before_days: int
    # More DNS names the certificate is for (subject alternative names after ``host``).
    alt_names: tuple[str, ...] = ()

    @property
    def dns_names(self) -> list[str]:
        return [self.host, *self.alt_names]


@dataclasses.dataclass(frozen=True)
class _Spec:
    where: str  # "secrets[2] (oauth2-proxy/cookie-secret)", for messages
    namespace: str
    name: str
    type: str
    labels: dict[str, str]
    annotations: dict[str, str]
    data: dict[str, tuple[str, str]]  # data key -> ("value", literal) or ("value_from", key of values)
    generate: _Cookie | _Tls | None

    @property
    def ref(self) -> tuple[str, str]:
        return self.namespace, self.name


# --- spec validation ------------------------------------------------------------------------


def _fail(where: str, message: str) -> t.NoReturn:
    raise SecretSpecError(f"{where}: {message}")


def _string_map(where: str, field: str, value: t.Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, t.Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        _fail(where, f"{field} must be a mapping of strings to strings")
    return dict(value)


def _unknown(where: str, prefix: str, given: t.Iterable[t.Any], allowed: frozenset[str]) -> None:
    extra = sorted(str(k) for k in given if k not in allowed)
    if extra:
        _fail(where, f"unknown field(s) {', '.join(prefix + k for k in extra)}; allowed: {', '.join(sorted(allowed))}")


def _data_key(where: str, field: str, key: t.Any) -> str:
    if not isinstance(key, str) or not _validation.is_data_key(key):
        _fail(where, f"{field} must be a Secret data key (letters, digits, '-', '_', '.'), got {key!r}")
    return key


def _int(where: str, field: str, value: t.Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(where, f"{field} must be an integer of at least {minimum}, got {value!r}")
    return value


def _parse_data(where: str, raw: t.Any) -> dict[str, tuple[str, str]]:
    if not isinstance(raw, t.Mapping) or not raw:
        _fail(where, "data must be a non-empty mapping of data keys to {value: ...} or {value_from: ...}")
    data: dict[str, tuple[str, str]] = {}
    for key, source in raw.items():
        field = f"data.{_data_key(where, 'a key of data', key)}"
        if not isinstance(source, t.Mapping) or len(source) != 1 or next(iter(source)) not in ("value", "value_from"):
            _fail(where, f"{field} must be a mapping with exactly one of value or value_from")
        kind, text = next(iter(source.items()))
        if not isinstance(text, str) or (kind == "value_from" and not text):
            # The type only: a misplaced secret must not end up in the message.
            what = "a non-empty string (a key of values)" if kind == "value_from" else "a string"
            _fail(where, f"{field}.{kind} must be {what}, got {type(text).__name__}")
        data[key] = (kind, text)
    return data


def _parse_generate(where: str, raw: t.Any, secret_type: str | None, ref: tuple[str, str]) -> _Cookie | _Tls:
    if not isinstance(raw, t.Mapping):
        _fail(where, "generate must be a mapping")
    kind = raw.get("type")
    if kind not in _GENERATE_FIELDS:
        _fail(where, f"generate.type must be one of {', '.join(_GENERATE_FIELDS)}, got {kind!r}")
    _unknown(where, "generate.", raw, _GENERATE_FIELDS[kind])
    if kind == "cookie_secret":
        if "key" not in raw:
            _fail(where, "generate.key (the data key of the cookie secret) is required")
        rotate = raw.get("rotate", False)
        if not isinstance(rotate, bool):
            _fail(where, f"generate.rotate must be true or false, got {rotate!r}")
        value_from = raw.get("value_from")
        if value_from is not None and (not isinstance(value_from, str) or not value_from):
            _fail(where, "generate.value_from must be a non-empty string (a key of values)")
        return _Cookie(_data_key(where, "generate.key", raw["key"]), rotate, value_from)
    if secret_type not in (None, TLS_TYPE):
        _fail(where, f"type must be {TLS_TYPE} for generate.type tls_selfsigned, got {secret_type!r}")
    host = raw.get("host")
    if not isinstance(host, str) or not _validation.is_dns_name(host):
        _fail(where, f"generate.host must be a DNS name such as colors.example.com, got {host!r}")
    alt_raw = raw.get("alt_names", [])
    if not isinstance(alt_raw, list) or not all(isinstance(n, str) and _validation.is_dns_name(n) for n in alt_raw):
        _fail(where, f"generate.alt_names must be a list of DNS names such as shop.example.com, got {alt_raw!r}")
    alt_names = tuple(dict.fromkeys(n.lower() for n in alt_raw if n.lower() != host.lower()))
    group = raw.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        _fail(where, "generate.group must be a non-empty string")
    valid_days = _int(where, "generate.valid_days", raw.get("valid_days", 365), 1)
    renew = _int(where, "generate.renew_before_days", raw.get("renew_before_days", 30), 0)
    if renew >= valid_days:
        # Otherwise every run would renew the certificate it made the run before.
        _fail(where, f"generate.renew_before_days ({renew}) must be less than generate.valid_days ({valid_days})")
    return _Tls(("group", group) if group else ("secret", *ref), host.lower(), valid_days, renew, alt_names)


def _parse_entry(index: int, raw: t.Any) -> _Spec:
    where = f"secrets[{index}]"
    if not isinstance(raw, t.Mapping):
        _fail(where, "each entry must be a mapping")
    namespace, name = raw.get("namespace"), raw.get("name")
    if not isinstance(namespace, str) or not _validation.is_k8s_name(namespace):
        _fail(where, f"namespace must be a Kubernetes namespace name, got {namespace!r}")
    if not isinstance(name, str) or not _validation.is_k8s_subdomain(name):
        _fail(where, f"name must be a Kubernetes object name, got {name!r}")
    where = f"{where} ({namespace}/{name})"
    _unknown(where, "", raw, _ENTRY_FIELDS)
    secret_type = raw.get("type")
    if secret_type is not None and (not isinstance(secret_type, str) or not secret_type):
        _fail(where, "type must be a non-empty string")
    if ("data" in raw) == ("generate" in raw):
        _fail(where, "give exactly one of data or generate")
    generate = _parse_generate(where, raw["generate"], secret_type, (namespace, name)) if "generate" in raw else None
    default_type = TLS_TYPE if isinstance(generate, _Tls) else "Opaque"
    return _Spec(
        where=where,
        namespace=namespace,
        name=name,
        type=secret_type or default_type,
        labels=_string_map(where, "labels", raw.get("labels")),
        annotations=_string_map(where, "annotations", raw.get("annotations")),
        data=_parse_data(where, raw["data"]) if "data" in raw else {},
        generate=generate,
    )


def _parse(specs: t.Any) -> list[_Spec]:
    if not isinstance(specs, list):
        raise SecretSpecError(f"secrets must be a list of Secret specs, got {type(specs).__name__}")
    parsed: list[_Spec] = []
    seen: dict[tuple[str, str], str] = {}
    first_of_group: dict[tuple[str, ...], _Spec] = {}
    for index, raw in enumerate(specs):
        spec = _parse_entry(index, raw)
        if spec.ref in seen:
            _fail(spec.where, f"the same Secret is already given as {seen[spec.ref]}")
        seen[spec.ref] = spec.where
        if isinstance(spec.generate, _Tls):
            first = first_of_group.setdefault(spec.generate.group, spec)
            for field in ("host", "alt_names", "valid_days", "renew_before_days"):
                if getattr(spec.generate, field) != getattr(first.generate, field):
                    _fail(
                        spec.where,
                        f"generate.{field} differs from {first.where}, the first member of group "
                        f"{spec.generate.group[1]!r}: members share one certificate",
                    )
        parsed.append(spec)
    return parsed


# --- building -------------------------------------------------------------------------------


def secrets_to_read(specs: list[dict[str, t.Any]]) -> list[tuple[str, str]]:
    """(namespace, name) of the Secrets to GET before ``build_secrets``: every generated Secret,
    and of a TLS group only its first member (the others receive the same content)."""
    refs: list[tuple[str, str]] = []
    groups: set[tuple[str, ...]] = set()
    for spec in _parse(specs):
        if isinstance(spec.generate, _Tls):
            if spec.generate.group in groups:
                continue
            groups.add(spec.generate.group)
        if spec.generate is not None:
            refs.append(spec.ref)
    return refs


def fingerprint(data: t.Mapping[str, str]) -> str:
    """A short, non-reversible tag of a Secret's (base64) data: shows whether it changed."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _b64(value: str | bytes) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def _stored(current: t.Mapping[str, t.Any] | None, key: str) -> bytes | None:
    """The decoded bytes of ``data[key]`` of a Secret as the API returned it; None when absent.
    Raises ValueError (without any of the data) when it is not base64."""
    data = (current or {}).get("data") or {}
    if not isinstance(data, t.Mapping) or not isinstance(data.get(key), str):
        return None
    try:
        return base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def _cookie_value(
    spec: _Spec, gen: _Cookie, given: str, stored_secret: t.Mapping[str, t.Any] | None
) -> tuple[str, str, bool]:
    """(value, reason, generated) of a cookie secret."""
    try:
        raw = _stored(stored_secret, gen.key)
        stored: str | None = None if raw is None else raw.decode("utf-8")
        stored_problem = ""
    except ValueError:  # also UnicodeDecodeError
        stored, stored_problem = None, "it is not base64-encoded UTF-8 text"
    if given:
        if gen.rotate:
            _fail(spec.where, f"generate.rotate is true and values[{gen.value_from!r}] gives a value: choose one")
        if not cookie.is_valid(given):
            _fail(
                spec.where, f"values[{gen.value_from!r}] is not a valid cookie secret: {cookie.invalid_reason(given)}"
            )
        if given == stored:
            return given, "kept: the given value is the stored one", False
        return (
            given,
            "set to the given value" + (", replacing the stored one" if stored or stored_problem else ""),
            False,
        )
    new = cookie.generate(COOKIE_SECRET_SIZE, "base64url")
    if gen.rotate:
        return new, "rotated on request", True
    if stored is not None and cookie.is_valid(stored):
        return stored, "kept the stored value", False
    if stored is None and not stored_problem:
        return new, "generated: none stored", True
    problem = stored_problem or cookie.invalid_reason(t.cast(str, stored))
    return new, f"generated: the stored value is invalid ({problem})", True


def _current(current: t.Mapping[tuple[str, str], t.Mapping[str, t.Any] | None], spec: _Spec) -> t.Any:
    if spec.ref not in current:
        # Treating "not read" as "absent" would silently replace a stored secret every run.
        raise ValueError(
            f"{spec.where}: current has no entry for {spec.ref!r}; GET every Secret secrets_to_read "
            "names and pass None for those that do not exist"
        )
    return current[spec.ref]


def build_secrets(
    specs: list[dict[str, t.Any]],
    values: t.Mapping[str, str],
    current: t.Mapping[tuple[str, str], t.Mapping[str, t.Any] | None],
    *,
    now: dt.datetime | None = None,
) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(Secret objects to server-side apply, one report entry per Secret), in spec order.

    ``current`` maps (namespace, name) of every Secret ``secrets_to_read`` named to the object
    the API returned, or None when it does not exist. ``now`` (aware) is for tests.
    """
    parsed = _parse(specs)
    if not isinstance(values, t.Mapping):
        raise SecretSpecError(f"values must be a mapping, got {type(values).__name__}")
    now = now or dt.datetime.now(UTC)
    tls_groups: dict[tuple[str, ...], tuple[dict[str, str], str, bool]] = {}
    objects: list[dict[str, t.Any]] = []
    report: list[dict[str, t.Any]] = []
    for spec in parsed:
        data: dict[str, str] = {}
        if isinstance(spec.generate, _Cookie):
            gen = spec.generate
            given = values.get(gen.value_from, "") if gen.value_from else ""
            if not isinstance(given, str):
                _fail(spec.where, f"values[{gen.value_from!r}] must be a string, got {type(given).__name__}")
            value, reason, generated = _cookie_value(spec, gen, given, _current(current, spec))
            data[gen.key] = _b64(value)
        elif isinstance(spec.generate, _Tls):
            if spec.generate.group not in tls_groups:
                tls_groups[spec.generate.group] = _tls_data(spec.generate, _current(current, spec), now)
            data, reason, generated = tls_groups[spec.generate.group]
            data = dict(data)
        else:
            for key, (kind, text) in spec.data.items():
                if kind == "value_from":
                    text = values.get(text, "")
                    if not isinstance(text, str) or not text:
                        _fail(
                            spec.where,
                            f"data.{key} needs values[{spec.data[key][1]!r}]: missing, empty or not a string",
                        )
                data[key] = _b64(text)
            reason, generated = "built from the spec", False
        metadata: dict[str, t.Any] = {"name": spec.name, "namespace": spec.namespace}
        if spec.labels:
            metadata["labels"] = dict(spec.labels)
        if spec.annotations:
            metadata["annotations"] = dict(spec.annotations)
        data = dict(sorted(data.items()))
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": spec.type, "data": data})
        report.append(
            {
                "namespace": spec.namespace,
                "name": spec.name,
                "keys": sorted(data),
                "fingerprint": fingerprint(data),
                "reason": reason,
                "generated": generated,
            }
        )
    return objects, report


# --- self-signed TLS ------------------------------------------------------------------------


def _tls_data(
    gen: _Tls, stored_secret: t.Mapping[str, t.Any] | None, now: dt.datetime
) -> tuple[dict[str, str], str, bool]:
    """(data, reason, generated) of a self-signed TLS Secret: the stored key and certificate
    kept where still good, the rest made anew."""
    try:
        from cryptography import x509
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise MissingLibraryError(
            "cryptography", "to make self-signed certificates (generate.type tls_selfsigned)"
        ) from None

    def stored(key: str) -> tuple[bytes | None, bool]:
        try:
            return _stored(stored_secret, key), True
        except ValueError:
            return None, False

    key_pem, key_readable = stored(TLS_KEY_KEY)
    cert_pem, cert_readable = stored(TLS_CERT_KEY)
    key: EllipticCurvePrivateKey | None = None
    problem = ""
    if key_pem is None and key_readable:
        problem = "generated: none stored" if cert_pem is None and cert_readable else "generated: no key stored"
    else:
        try:
            loaded = serialization.load_pem_private_key(key_pem or b"", password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            problem = "generated: the stored key is unreadable"
        else:
            if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp256r1":
                key = loaded
            else:
                problem = "generated: the stored key is not an EC P-256 key"
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        keep, problem = _certificate_verdict(key, cert_pem, cert_readable, gen, now)
        if keep:
            return (
                {TLS_CERT_KEY: _b64(t.cast(bytes, cert_pem)), TLS_KEY_KEY: _b64(t.cast(bytes, key_pem))},
                problem,
                False,
            )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gen.host)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=gen.valid_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in gen.dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    return {TLS_CERT_KEY: _b64(cert_pem), TLS_KEY_KEY: _b64(t.cast(bytes, key_pem))}, problem, True


def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _certificate_verdict(
    key: EllipticCurvePrivateKey, cert_pem: bytes | None, readable: bool, gen: _Tls, now: dt.datetime
) -> tuple[bool, str]:
    """(keep, reason): whether the stored certificate can stay with ``key``, and why (not)."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    if cert_pem is None and readable:
        return False, "renewed: no certificate stored"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        cert = x509.load_pem_x509_certificate(cert_pem or b"")
        # Extensions and the public key are parsed on first use: a damaged one fails here.
        cert_spki = cert.public_key().public_bytes(*spki)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns_names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        except x509.ExtensionNotFound:
            dns_names = []
    except (ValueError, UnsupportedAlgorithm):
        return False, "renewed: the stored certificate is unreadable"
    if cert_spki != key.public_key().public_bytes(*spki):
        return False, "renewed: the stored certificate does not match the stored key"
    common_names = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if dns_names != gen.dns_names or common_names != [gen.host]:
        return False, "renewed: made for other hosts" if gen.alt_names else "renewed: made for another host"
    if cert.not_valid_before_utc > now:
        return False, f"renewed: not valid before {_utc_text(cert.not_valid_before_utc)}"
    if cert.not_valid_after_utc <= now:
        return False, f"renewed: expired on {_utc_text(cert.not_valid_after_utc)}"
    if cert.not_valid_after_utc < now + dt.timedelta(days=gen.renew_before_days):
        return False, f"renewed: expires within {gen.renew_before_days} days"
    return True, f"kept the stored certificate (valid until {_utc_text(cert.not_valid_after_utc)})"


# --- rollout checksums ----------------------------------------------------------------------


def _referenced_secrets(pod_spec: t.Mapping[str, t.Any]) -> set[str]:
    """Names of the Secrets a pod spec reads: env, envFrom and (projected) secret volumes."""
    names: set[str] = set()
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    for container in containers:
        for env in container.get("env") or []:
            names.add(((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name", ""))
        for env_from in container.get("envFrom") or []:
            names.add((env_from.get("secretRef") or {}).get("name", ""))
    for volume in pod_spec.get("volumes") or []:
        names.add((volume.get("secret") or {}).get("secretName", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            names.add((source.get("secret") or {}).get("name", ""))
    names.discard("")
    return names


def fill_checksums(objects: list[dict[str, t.Any]], report: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The objects, where a workload's pod template annotation CHECKSUM_ANNOTATION is AUTO
    replaced by a sha256 over (namespace, name, fingerprint) of the reported Secrets its pods
    read; so a changed Secret changes the template and rolls the workload. Secrets not in
    ``report`` (synced by the CSI driver, made by cert-manager, ...) do not count. Objects
    without AUTO are returned as they are; the others are copies."""
    fingerprints = {(entry["namespace"], entry["name"]): entry["fingerprint"] for entry in report}
    result: list[dict[str, t.Any]] = []
    for obj in objects:
        template = (obj.get("spec") or {}).get("template") or {} if obj.get("kind") in WORKLOAD_KINDS else {}
        if ((template.get("metadata") or {}).get("annotations") or {}).get(CHECKSUM_ANNOTATION) != AUTO:
            result.append(obj)
            continue
        namespace = (obj.get("metadata") or {}).get("namespace")
        if not namespace:
            raise ValueError(
                f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')!r} asks for {CHECKSUM_ANNOTATION}: "
                f"{AUTO} but has no metadata.namespace to find its Secrets in"
            )
        used = sorted(
            [namespace, name, fingerprints[(namespace, name)]]
            for name in _referenced_secrets(template.get("spec") or {})
            if (namespace, name) in fingerprints
        )
        filled = copy.deepcopy(obj)
        annotations = filled["spec"]["template"]["metadata"]["annotations"]
        annotations[CHECKSUM_ANNOTATION] = hashlib.sha256(json.dumps(used).encode("utf-8")).hexdigest()
        result.append(filled)
    return result
