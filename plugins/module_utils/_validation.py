# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the one home of every value-format rule
the collection checks. The test plugins (plugins/test/formats.py), the format_errors filter, the
stack model and the modules use these; nothing else may carry a copy of a pattern."""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _cookie_secret

# RFC 1123 label: what Kubernetes requires of namespace, Service and most object names.
_K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# RFC 1123 subdomain: Secret, ConfigMap, IngressClass names (at most 253 characters).
_K8S_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A public DNS name with at least two labels, lower case (the site host).
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$")
# A label value: at most 63 characters, alphanumeric at both ends, '-', '_', '.' inside
# (apimachinery IsValidLabelValue; empty is valid there but never meant here).
_LABEL_VALUE = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# A Secret or ConfigMap data key (apimachinery IsConfigMapKey); "." and ".." prefixes refused.
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Go time.ParseDuration, without signs or fractions: what oauth2-proxy's duration flags take.
_GO_DURATION = re.compile(r"^([0-9]+(ns|us|µs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"([0-9]+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# A value of the groups (or roles) claim as oauth2-proxy compares it: Entra group object ids,
# app role values, IdP group names. Commas are refused because the per-Ingress
# ?allowed_groups= query is a comma-separated list; control characters and surrounding
# blanks because they never survive a round trip through an annotation.
_GROUP_VALUE = re.compile(r"^[^,\s\x00-\x1f\x7f](?:[^,\x00-\x1f\x7f]{0,254}[^,\s\x00-\x1f\x7f])?$")
# An Entra app role value: no spaces, at most 120 characters, ASCII letters, digits and the
# symbols Entra accepts (not starting with a dot); commas refused as above.
_APP_ROLE_VALUE = re.compile(
    r"^(?=.{1,120}$)[A-Za-z0-9!#$%&'()*+\-/:;<=>?@\[\]^_`{|}~][A-Za-z0-9!#$%&'()*+\-./:;<=>?@\[\]^_`{|}~]*$"
)
# A JWT claim name for --oidc-groups-claim (oauth2-proxy also takes dotted paths).
_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
# An Ingress path: absolute, no blanks, no regex characters (pathType Prefix).
_HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~!&'+,;=:@%/-]*$")
# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# nginx size: 8k, 16k, 1m, 4096.
_NGINX_SIZE = re.compile(r"^[1-9][0-9]*[kKmM]?$")
_IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Azure Key Vault names: 3-24 characters, letters, digits and dashes, starting with a letter,
# not ending with a dash (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates).
_KEYVAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")
# Key Vault secret names: 1-127 letters, digits and dashes.
_KEYVAULT_SECRET_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
# RFC 6265 cookie-name token characters oauth2-proxy accepts in --cookie-name.
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Azure resource group names: 1-90 letters (Unicode), digits, '_', '(', ')', '-', '.'
# (learn.microsoft.com, "Naming rules and restrictions for Azure resources").
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
# An e-mail address as an ACME account contact: one "@", a local part without blanks, a DNS name.
_EMAIL = re.compile(
    r"^[^@\s]{1,64}@(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)+$"
)
# Namespaces the collection must never take over: Kubernetes' own (kube-system, kube-public,
# kube-node-lease) and "default", where enforcing Pod Security "restricted" and a teardown
# would hit everything else that runs there.
_SYSTEM_NAMESPACE = re.compile(r"^(kube-.*|default)$")


def _matches(pattern: re.Pattern[str], value: t.Any) -> bool:
    return isinstance(value, str) and pattern.match(value) is not None


def is_k8s_name(value: t.Any) -> bool:
    return _matches(_K8S_LABEL, value)


def is_k8s_subdomain(value: t.Any) -> bool:
    return _matches(_K8S_SUBDOMAIN, value)


def is_label_value(value: t.Any) -> bool:
    return _matches(_LABEL_VALUE, value)


def is_data_key(value: t.Any) -> bool:
    return _matches(_DATA_KEY, value) and value not in (".", "..") and not value.startswith("..")


def is_dns_name(value: t.Any) -> bool:
    return _matches(_DNS_NAME, value)


def is_guid(value: t.Any) -> bool:
    return _matches(_GUID, value)


def is_go_duration(value: t.Any) -> bool:
    return _matches(_GO_DURATION, value)


def go_duration_seconds(value: t.Any) -> float | None:
    """Seconds of a Go duration such as "1h30m", or None when it is not one."""
    if not is_go_duration(value):
        return None
    return sum(int(number) * _GO_DURATION_UNIT[unit] for number, unit in _GO_DURATION_PART.findall(value))


def is_positive_go_duration(value: t.Any) -> bool:
    seconds = go_duration_seconds(value)
    return seconds is not None and seconds > 0


def is_group_value(value: t.Any) -> bool:
    return _matches(_GROUP_VALUE, value)


def is_app_role_value(value: t.Any) -> bool:
    return _matches(_APP_ROLE_VALUE, value)


def is_claim_name(value: t.Any) -> bool:
    return _matches(_CLAIM_NAME, value)


def is_email_domain(value: t.Any) -> bool:
    """An --email-domain value: "*" (any) or a DNS name (a "." prefix allows subdomains)."""
    return value == "*" or (isinstance(value, str) and is_dns_name(value[1:] if value.startswith(".") else value))


def is_http_path(value: t.Any) -> bool:
    return _matches(_HTTP_PATH, value) and "//" not in value


def is_header_name(value: t.Any) -> bool:
    return _matches(_HEADER_NAME, value)


def is_port(value: t.Any) -> bool:
    return is_positive_int(value) and value <= 65535


def is_nginx_size(value: t.Any) -> bool:
    return _matches(_NGINX_SIZE, value)


def is_image_digest(value: t.Any) -> bool:
    return _matches(_IMAGE_DIGEST, value)


def is_keyvault_name(value: t.Any) -> bool:
    return _matches(_KEYVAULT_NAME, value)


def is_keyvault_secret_name(value: t.Any) -> bool:
    return _matches(_KEYVAULT_SECRET_NAME, value)


def is_cookie_name(value: t.Any) -> bool:
    return _matches(_COOKIE_NAME, value)


def is_resource_group(value: t.Any) -> bool:
    return _matches(_RESOURCE_GROUP, value)


def is_http_url(value: t.Any) -> bool:
    return _matches(_HTTP_URL, value)


def is_email(value: t.Any) -> bool:
    return _matches(_EMAIL, value)


def is_system_namespace(value: t.Any) -> bool:
    return _matches(_SYSTEM_NAMESPACE, value)


def is_positive_int(value: t.Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# oauth2-proxy v7.15.2 fixed critical authentication bypasses; older releases must not be deployed.
OAUTH2_PROXY_MIN_RELEASE = (7, 15, 2)
_RELEASE_TAG = re.compile(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)$")


def is_oauth2_proxy_release(value: t.Any) -> bool:
    """An oauth2-proxy release tag, vX.Y.Z, of v7.15.2 or later."""
    match = _RELEASE_TAG.match(value) if isinstance(value, str) else None
    return match is not None and tuple(int(part) for part in match.groups()) >= OAUTH2_PROXY_MIN_RELEASE


def is_fixed_image_tag(value: t.Any) -> bool:
    """A tag that names one build: not empty, not "latest"."""
    return isinstance(value, str) and value not in ("", "latest")


def is_ip_or_cidr(value: t.Any) -> bool:
    """An IPv4/IPv6 address or CIDR range (host bits allowed, as oauth2-proxy's --trusted-proxy-ip takes)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def is_valid_cookie_secret(value: t.Any) -> bool:
    """oauth2-proxy's cookie secret rule (16, 24 or 32 bytes, raw or base64url)."""
    return isinstance(value, str) and _cookie_secret.is_valid(value)


# Name -> rule: the Jinja tests (``x is zerotrust.aks.<name>``) and the format_errors filter.
FORMATS: dict[str, t.Callable[[t.Any], bool]] = {
    "k8s_name": is_k8s_name,
    "k8s_subdomain": is_k8s_subdomain,
    "label_value": is_label_value,
    "data_key": is_data_key,
    "dns_name": is_dns_name,
    "guid": is_guid,
    "go_duration": is_go_duration,
    "positive_go_duration": is_positive_go_duration,
    "group_value": is_group_value,
    "app_role_value": is_app_role_value,
    "claim_name": is_claim_name,
    "email_domain": is_email_domain,
    "http_path": is_http_path,
    "header_name": is_header_name,
    "port": is_port,
    "nginx_size": is_nginx_size,
    "image_digest": is_image_digest,
    "keyvault_name": is_keyvault_name,
    "keyvault_secret_name": is_keyvault_secret_name,
    "resource_group": is_resource_group,
    "http_url": is_http_url,
    "email": is_email,
    "system_namespace": is_system_namespace,
    "positive_int": is_positive_int,
    "fixed_image_tag": is_fixed_image_tag,
    "oauth2_proxy_release": is_oauth2_proxy_release,
    "ip_or_cidr": is_ip_or_cidr,
    "cookie_name": is_cookie_name,
    "cookie_secret": is_valid_cookie_secret,
}
