# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of the entra_application module that need no network, kept apart for unit tests.

This module is private to the collection: its names may change in any release.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation

# RFC 1123 host names, at least two labels; no wildcard (Entra rejects wildcard redirect URIs
# for web apps that use the authorization code flow).

GROUP_CLAIMS = ("None", "SecurityGroup", "DirectoryRole", "ApplicationGroup", "All")
SECRET_EXPIRY_DAYS = (1, 730)
# datetime.UTC needs Python 3.11; modules may run on older targets.
UTC = dt.timezone.utc  # noqa: UP017


def is_dns_name(value: str) -> bool:
    """Entra redirect hosts compare case-insensitively, so any case is accepted."""
    return bool(_validation.is_dns_name(value.lower()))


def odata_quote(value: str) -> str:
    """Quote a string literal for an OData ``$filter`` (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def redirect_uris(hosts: t.Iterable[str], path: str = "/oauth2/callback") -> list[str]:
    """oauth2-proxy's callback on each host, in the order given, without duplicates."""
    uris: list[str] = []
    for host in hosts:
        uri = f"https://{host.lower()}{path}"
        if uri not in uris:
            uris.append(uri)
    return uris


def parse_time(value: str | None) -> dt.datetime | None:
    """Parse Graph's ISO 8601 timestamps (``2026-01-02T03:04:05.1234567Z``)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python before 3.11 rejects 7 fractional digits; Graph sends up to 7.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def format_time(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def application_changes(
    existing: dict[str, t.Any], *, uris: list[str], group_membership_claims: str | None
) -> dict[str, t.Any]:
    """The PATCH body that brings ``existing`` to the wanted state; empty when nothing differs.

    ``web`` is a complex property that Graph replaces as a whole, so the patch
    carries the existing ``web`` with only ``redirectUris`` replaced.
    """
    patch: dict[str, t.Any] = {}
    web = dict(existing.get("web") or {})
    if sorted(web.get("redirectUris") or []) != sorted(uris):
        web["redirectUris"] = uris
        web.pop("redirectUriSettings", None)
        patch["web"] = web
    if group_membership_claims is not None:
        current = existing.get("groupMembershipClaims") or "None"
        if current != group_membership_claims:
            patch["groupMembershipClaims"] = None if group_membership_claims == "None" else group_membership_claims
    return patch


def new_application_body(
    display_name: str, *, uris: list[str], group_membership_claims: str | None, sign_in_audience: str
) -> dict[str, t.Any]:
    body: dict[str, t.Any] = {
        "displayName": display_name,
        "signInAudience": sign_in_audience,
        "web": {"redirectUris": uris},
    }
    if group_membership_claims and group_membership_claims != "None":
        body["groupMembershipClaims"] = group_membership_claims
    return body
