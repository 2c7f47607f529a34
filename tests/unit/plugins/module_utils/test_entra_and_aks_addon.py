# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the decisions entra_application and aks_keyvault_addon make without the network."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _aks_addon as aks
from ansible_collections.zerotrust.aks.plugins.module_utils import _entra as entra

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


# --- entra_application --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("colors.example.com", True),
        ("a-b.example.co.uk", True),
        ("localhost", False),
        ("https://colors.example.com", False),
        ("colors.example.com:443", False),
        ("*.example.com", False),
        ("-bad.example.com", False),
        ("bad-.example.com", False),
        ("a" * 64 + ".example.com", False),
    ],
)
def test_is_dns_name(host: str, valid: bool) -> None:
    assert entra.is_dns_name(host) is valid


def test_redirect_uris_are_oauth2_proxy_callbacks_without_duplicates() -> None:
    assert entra.redirect_uris(["A.example.com", "a.example.com", "b.example.com"]) == [
        "https://a.example.com/oauth2/callback",
        "https://b.example.com/oauth2/callback",
    ]


def test_odata_quote_doubles_single_quotes() -> None:
    assert entra.odata_quote("it's") == "'it''s'"


def test_application_changes_keeps_other_web_settings() -> None:
    existing = {
        "web": {"redirectUris": ["https://old.example.com/oauth2/callback"], "logoutUrl": "https://x.example.com/out"},
        "groupMembershipClaims": None,
    }
    patch = entra.application_changes(
        existing, uris=["https://new.example.com/oauth2/callback"], group_membership_claims="SecurityGroup"
    )
    assert patch == {
        "web": {"redirectUris": ["https://new.example.com/oauth2/callback"], "logoutUrl": "https://x.example.com/out"},
        "groupMembershipClaims": "SecurityGroup",
    }


def test_application_changes_empty_when_equal_in_any_order() -> None:
    existing = {"web": {"redirectUris": ["https://b/oauth2/callback", "https://a/oauth2/callback"]}}
    assert (
        entra.application_changes(
            existing, uris=["https://a/oauth2/callback", "https://b/oauth2/callback"], group_membership_claims=None
        )
        == {}
    )


def test_parse_time_accepts_graph_precision() -> None:
    assert entra.parse_time("2026-01-02T03:04:05.1234567Z") == dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


# --- aks_keyvault_addon -------------------------------------------------------------------

WANTED = dict(secret_rotation=True, rotation_poll_interval="2m", workload_identity=False)


def cluster(addon: dict[str, t.Any] | None) -> dict[str, t.Any]:
    profiles: dict[str, t.Any] = {"azurepolicy": {"enabled": True, "identity": {"clientId": "p"}}}
    if addon is not None:
        profiles["azureKeyvaultSecretsProvider"] = addon
    return {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
        "location": "westeurope",
        "tags": {"owner": "team"},
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "fqdn": "c.hcp.azmk8s.io",
            "kubernetesVersion": "1.33.2",
            "agentPoolProfiles": [{"name": "system", "count": 3}],
            "addonProfiles": profiles,
        },
    }


@pytest.mark.parametrize(
    ("addon", "expected"),
    [
        (
            None,
            [
                "enable the azureKeyvaultSecretsProvider add-on",
                "set enableSecretRotation to true",
                "set rotationPollInterval to 2m (was unset)",
            ],
        ),
        ({"enabled": False, "config": None}, ["enable the", "set enableSecretRotation", "set rotationPollInterval"]),
        (
            {"enabled": True, "config": {"enableSecretRotation": "false"}},
            ["set enableSecretRotation to true", "set rotationPollInterval to 2m"],
        ),
        (
            {"enabled": True, "config": {"enableSecretRotation": "true", "rotationPollInterval": "5m"}},
            ["set rotationPollInterval to 2m (was 5m)"],
        ),
        ({"enabled": True, "config": {"enableSecretRotation": "True", "rotationPollInterval": "2m"}}, []),
    ],
)
def test_wanted_changes(addon: dict[str, t.Any] | None, expected: list[str]) -> None:
    changes = aks.wanted_changes(cluster(addon), **WANTED)
    assert len(changes) == len(expected)
    for change, start in zip(changes, expected, strict=True):
        assert change.startswith(start)


def test_addon_key_is_matched_without_case() -> None:
    body = cluster(None)
    body["properties"]["addonProfiles"]["azurekeyvaultsecretsprovider"] = {
        "enabled": True,
        "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"},
    }
    assert aks.wanted_changes(body, **WANTED) == []


def test_put_body_changes_only_the_addon() -> None:
    before = cluster({"enabled": False, "config": {"other": "x"}, "identity": {"clientId": "old"}})
    body = aks.put_body(before, **WANTED)
    addon = body["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert addon == {
        "enabled": True,
        "config": {"other": "x", "enableSecretRotation": "true", "rotationPollInterval": "2m"},
    }
    assert body["properties"]["addonProfiles"]["azurepolicy"] == {"enabled": True}
    assert body["properties"]["agentPoolProfiles"] == before["properties"]["agentPoolProfiles"]
    assert body["tags"] == before["tags"]
    for read_only in ("provisioningState", "powerState", "fqdn"):
        assert read_only not in body["properties"]
    # The input is not modified.
    assert before["properties"]["provisioningState"] == "Succeeded"


def test_put_body_enables_workload_identity_when_asked() -> None:
    body = aks.put_body(cluster(None), secret_rotation=False, rotation_poll_interval="2m", workload_identity=True)
    assert body["properties"]["oidcIssuerProfile"] == {"enabled": True}
    assert body["properties"]["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    assert body["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]["config"] == {
        "enableSecretRotation": "false"
    }


def test_outputs_read_the_addon_identity() -> None:
    result = aks.outputs(cluster({"enabled": True, "identity": {"clientId": "c", "objectId": "o", "resourceId": "r"}}))
    assert (result["identity_client_id"], result["identity_object_id"], result["identity_resource_id"]) == (
        "c",
        "o",
        "r",
    )
    assert result["oidc_issuer_url"] == ""


@pytest.mark.parametrize(
    ("value", "valid"), [("2m", True), ("120s", True), ("1h", True), ("0m", False), ("2", False), ("2d", False)]
)
def test_poll_interval(value: str, valid: bool) -> None:
    assert bool(aks.POLL_INTERVAL.match(value)) is valid
