"""playbooks/azure.yml against the fake Azure (see fake_azure/), run as a user would.

The tests share one fake per module and run in order: bad input, check mode on an empty
subscription, first run, re-runs, rotation, recovery of a soft-deleted secret.
"""

from __future__ import annotations

import json
import re
import typing as t

import pytest
from fake_azure import FakeAzure
from fake_subscription import CLUSTER_ID, DEPLOYER_SECRET, KEYVAULT
from observations import cluster_puts, fingerprints, role_assignments, vault_values, writes
from support.playbook import Playbook, PlaybookRun

SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
outputs: list[str] = []


def play(
    playbook: Playbook, fake: FakeAzure, *args: str, must_succeed: bool = True
) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """Run the playbook; return the run and the requests it sent."""
    start = len(fake.log)
    run = playbook(*args, must_succeed=must_succeed)
    outputs.append(run.output)
    return run, fake.log[start:]


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"zerotrust_aks_tenant_id": "not-a-guid"}, "keyvault_tenant_id"),
        ({"zerotrust_aks_subscription_id": "1234"}, "aks_keyvault_addon_subscription_id"),
        ({"zerotrust_aks_keyvault_name": "1-bad--vault-name"}, "keyvault_name"),
        ({"zerotrust_aks_keyvault_name": "kv-"}, "keyvault_name"),
        ({"zerotrust_aks_keyvault_name": "a" * 25}, "keyvault_name"),
        ({"zerotrust_aks_hosts": ["https://colors.example.com"]}, "entra_app_hosts"),
        ({"zerotrust_aks_hosts": ["colors_example"]}, "entra_app_hosts"),
        ({"zerotrust_aks_client_secret_expiry_days": 731}, "entra_app_secret_expiry_days"),
        ({"zerotrust_aks_client_secret_expiry_days": 0}, "entra_app_secret_expiry_days"),
        ({"zerotrust_aks_identity_mode": "pod-identity"}, "zerotrust_aks_identity_mode"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_bad_input_fails_in_preflight_before_any_request(
    azure_playbook: Playbook, fake: FakeAzure, extra: dict[str, t.Any], variable: str
) -> None:
    run, requests = play(azure_playbook, fake, "-e", json.dumps(extra), must_succeed=False)
    assert run.failed == 1
    assert variable in run.output
    # Not one request reached the fake, so certainly no write.
    assert requests == []
    assert fake.resources == {k: v for k, v in fake.resources.items() if "managedclusters" in k}


def test_check_mode_on_an_empty_subscription_writes_nothing(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake, "--check", "--diff")
    assert run.failed == 0
    assert run.changed > 0
    assert writes(requests) == []
    assert fake.applications == {}
    assert fake.vaults == {}


def test_first_run_creates_everything(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fake.resource(CLUSTER_ID)
    assert before is not None
    run, requests = play(azure_playbook, fake, "-vvv")
    assert run.failed == 0

    assert len(fake.applications) == 1
    app = next(iter(fake.applications.values()))
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["groupMembershipClaims"] == "SecurityGroup"
    assert sorted(app["web"]["redirectUris"]) == [
        "https://colors.example.com/oauth2/callback",
        "https://www.colors.example.com/oauth2/callback",
    ]
    assert [p["appId"] for p in fake.service_principals.values()] == [app["appId"]]
    assert len(app["passwordCredentials"]) == 1
    assert app["passwordCredentials"][0]["displayName"].startswith("zerotrust-aks ")

    vault = fake.vaults[KEYVAULT]
    assert sorted(vault.secrets) == [
        "oauth2-proxy-client-id",
        "oauth2-proxy-client-secret",
        "oauth2-proxy-cookie-secret",
    ]
    assert vault.secrets["oauth2-proxy-client-id"][-1]["value"] == app["appId"]
    assert (
        vault.secrets["oauth2-proxy-client-secret"][-1]["tags"]["zerotrust-aks-key-id"]
        == (app["passwordCredentials"][0]["keyId"])
    )
    vault_props = fake.resource(
        f"{CLUSTER_ID.split('/providers/', maxsplit=1)[0]}/providers/Microsoft.KeyVault/vaults/{KEYVAULT}"
    )
    assert vault_props is not None
    assert vault_props["properties"]["enableRbacAuthorization"] is True
    assert vault_props["properties"]["enableSoftDelete"] is True

    cluster = fake.resource(CLUSTER_ID)
    assert cluster is not None
    addon = cluster["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert addon["enabled"] is True
    assert addon["config"] == {"enableSecretRotation": "true", "rotationPollInterval": "2m"}
    # Nothing else about the cluster changed.
    for name in ("agentPoolProfiles", "networkProfile", "kubernetesVersion", "enableRBAC", "dnsPrefix"):
        assert cluster["properties"][name] == before["properties"][name], name
    assert cluster["properties"]["addonProfiles"]["azurepolicy"] == before["properties"]["addonProfiles"]["azurepolicy"]
    assert cluster["tags"] == before["tags"]
    assert cluster["identity"] == before["identity"]
    assert len(cluster_puts(requests)) == 1

    assignments = role_assignments(fake)
    assert len(assignments) == 1
    assert assignments[0]["properties"]["roleDefinitionId"].endswith(SECRETS_USER_ROLE)
    assert assignments[0]["properties"]["principalId"] == addon["identity"]["objectId"]
    assert assignments[0]["properties"]["scope"].lower() == vault_props["id"].lower()

    assert f"identity_client_id: {addon['identity']['clientId']}" in run.output
    assert f"client_id: {app['appId']}" in run.output


def test_second_run_changes_nothing_and_sends_no_cluster_put(azure_playbook: Playbook, fake: FakeAzure) -> None:
    first = fingerprints(outputs[-1])
    run, requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert cluster_puts(requests) == []
    assert writes(requests) == []
    assert fingerprints(run.output) == first


def test_check_mode_after_converging_reports_nothing_to_do(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake, "--check")
    assert run.changed == 0
    assert writes(requests) == []


def test_third_run_makes_no_duplicates(azure_playbook: Playbook, fake: FakeAzure) -> None:
    run, requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert len(fake.applications) == 1
    assert len(fake.service_principals) == 1
    assert len(role_assignments(fake)) == 1
    assert len(next(iter(fake.applications.values()))["passwordCredentials"]) == 1
    assert writes(requests) == []


def test_cookie_rotation_changes_only_the_cookie_fingerprint(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    run, _requests = play(azure_playbook, fake, "-vvv", "-e", "zerotrust_aks_rotate_cookie_secret=true")
    after = fingerprints(run.output)
    assert after["cookie_secret"] != before["cookie_secret"]
    assert after["client_secret"] == before["client_secret"]
    # The new value is kept afterwards.
    run, _requests = play(azure_playbook, fake)
    assert run.changed == 0
    assert fingerprints(run.output) == after


def test_client_secret_rotation_adds_a_secret_and_stores_it(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    run, requests = play(azure_playbook, fake, "-vvv", "-e", "zerotrust_aks_rotate_client_secret=true")
    after = fingerprints(run.output)
    assert after["client_secret"] != before["client_secret"]
    assert after["cookie_secret"] == before["cookie_secret"]
    app = next(iter(fake.applications.values()))
    assert len(app["passwordCredentials"]) == 2
    stored = fake.vaults[KEYVAULT].secrets["oauth2-proxy-client-secret"][-1]
    assert stored["tags"]["zerotrust-aks-key-id"] == app["passwordCredentials"][-1]["keyId"]
    assert cluster_puts(requests) == []


def test_soft_deleted_cookie_secret_is_recovered_not_replaced(azure_playbook: Playbook, fake: FakeAzure) -> None:
    before = fingerprints(outputs[-1])
    vault = fake.vaults[KEYVAULT]
    with fake.lock:
        vault.deleted["oauth2-proxy-cookie-secret"] = vault.secrets.pop("oauth2-proxy-cookie-secret")
    run, requests = play(azure_playbook, fake)
    assert run.failed == 0
    assert "POST /deletedsecrets/oauth2-proxy-cookie-secret/recover" in writes(requests)
    assert "PUT /secrets/oauth2-proxy-cookie-secret" not in writes(requests)
    assert fingerprints(run.output) == before


def test_no_secret_value_in_any_output(fake: FakeAzure) -> None:
    assert outputs, "the runs above did not happen"
    assert any("-vvv" in o or "<127.0.0.1>" in o or "ESTABLISH LOCAL CONNECTION" in o for o in outputs)
    values = [*vault_values(fake), DEPLOYER_SECRET]
    values = [v for v in values if len(v) >= 8 and not re.fullmatch(r"[0-9a-f-]{36}", v)]
    assert values
    for output in outputs:
        for value in values:
            assert value not in output
