"""The fake's Key Vault data plane, vault DNS, fault injection and kill point, checked directly.

Requests go straight to a started fake (no playbook): what the collection meets on Azure must be
what it meets here. A 403 with Key Vault's body when no role or access policy allows the call; a
new vault's name that does not resolve for a while; 429 and 5xx that never change state; a
client killed between two calls.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import pytest
import requests
from fake_azure import KEYVAULT_AUDIENCE, FakeAzure, Vault, rbac
from fake_azure.behaviour import Faults
from fake_subscription import RESOURCE_GROUP, SUBSCRIPTION, TENANT
from graph_client import Client

SHIM = Path(__file__).resolve().parent / "shim"
WORKLOAD = "0b7d3c2a-5e61-4f0a-9c1b-2d3e4f5a6b7c"  # a principal other than the deployer


@pytest.fixture(autouse=True)
def fresh_behaviour(fake: FakeAzure) -> t.Iterator[None]:
    """Each test turns its own knobs; the module's fake gets its behaviour back afterwards."""
    saved = fake.behaviour
    fake.behaviour = dataclasses.replace(saved, faults=Faults(), kill_at_call=None)
    yield
    fake.behaviour = saved


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{name}"


def make_vault(fake: FakeAzure, name: str, *, rbac_mode: bool = True, policies: t.Sequence[t.Any] = ()) -> Vault:
    """A vault as the ARM side makes one: its data-plane server, its hostname, its resource."""
    server = fake.serve("keyvault", name.lower())
    uri = fake.register_vault_host(name, server.server_address[1])
    vault = Vault(name, server, uri)
    fake.vaults[name.lower()] = vault
    fake.resources[vault_id(name).lower()] = {
        "id": vault_id(name),
        "name": name,
        "type": "Microsoft.KeyVault/vaults",
        "location": "westeurope",
        "properties": {
            "tenantId": TENANT,
            "enableRbacAuthorization": rbac_mode,
            "accessPolicies": list(policies),
            "vaultUri": uri,
        },
    }
    return vault


def kv(
    fake: FakeAzure, vault: Vault, method: str, path: str, body: t.Any = None, *, oid: str | None = None, **params: str
) -> requests.Response:
    """A data-plane request as ``oid`` (the deployer by default), at the vault's port on 127.0.0.1."""
    params.setdefault("api-version", "7.4")
    return requests.request(
        method,
        f"https://127.0.0.1:{vault.server.server_address[1]}/{path}",
        json=body,
        params=params,
        headers={"Authorization": f"Bearer {fake.issue_token(KEYVAULT_AUDIENCE, oid)}"},
        verify=str(fake.ca_file),
        timeout=10,
    )


def error(answer: requests.Response) -> dict[str, t.Any]:
    return dict(answer.json()["error"])


# --- authorization --------------------------------------------------------------------------------


def test_rbac_vault_refuses_without_a_data_role_as_key_vault_words_it(fake: FakeAzure) -> None:
    vault = make_vault(fake, "kv-rbac-none")
    answer = kv(fake, vault, "PUT", "secrets/one", {"value": "v"})
    assert answer.status_code == 403
    body = error(answer)
    assert body["code"] == "Forbidden"
    assert body["innererror"] == {"code": "ForbiddenByRbac"}
    assert f"oid={fake.deployer_object_id}" in body["message"]
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'" in body["message"]
    assert f"Resource: '{vault_id('kv-rbac-none').lower()}/secrets/one'" in body["message"]
    assert "Vault: kv-rbac-none;location=westeurope" in body["message"]
    # Refused before anything is looked up or stored.
    assert vault.secrets == {}
    assert kv(fake, vault, "GET", "secrets/missing").status_code == 403


def test_rbac_roles_read_write_and_scope(fake: FakeAzure) -> None:
    vault = make_vault(fake, "kv-rbac-roles")
    officer = rbac.grant(fake, fake.deployer_object_id, "Key Vault Secrets Officer", vault_id("kv-rbac-roles"))
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "1"}).status_code == 200
    assert kv(fake, vault, "PUT", "secrets/two", {"value": "2"}).status_code == 200
    del fake.resources[officer.lower()]
    # Secrets User on one secret only: reads it, not the other one, and writes nothing.
    rbac.grant(fake, WORKLOAD, "Key Vault Secrets User", vault_id("kv-rbac-roles") + "/secrets/one")
    assert kv(fake, vault, "GET", "secrets/one", oid=WORKLOAD).json()["value"] == "1"
    refused = kv(fake, vault, "GET", "secrets/two", oid=WORKLOAD)
    assert refused.status_code == 403
    assert "getSecret/action" in error(refused)["message"]
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "x"}, oid=WORKLOAD).status_code == 403
    assert kv(fake, vault, "GET", "secrets", oid=WORKLOAD).status_code == 403  # listing needs the vault scope
    assert [v["value"] for v in vault.secrets["one"]] == ["1"]


def test_a_new_role_assignment_takes_effect_after_propagation(fake: FakeAzure) -> None:
    fake.behaviour.rbac_propagation = 1.0
    vault = make_vault(fake, "kv-rbac-late")
    assignment = rbac.grant(fake, fake.deployer_object_id, "Key Vault Secrets Officer", vault_id("kv-rbac-late"))
    rbac.record_made(fake, assignment)  # made now, not seeded in the past
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "1"}).status_code == 403
    time.sleep(1.1)
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "1"}).status_code == 200


def policy(object_id: str, *secrets: str, application_id: str | None = None) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {"tenantId": TENANT, "objectId": object_id, "permissions": {"secrets": list(secrets)}}
    if application_id:
        entry["applicationId"] = application_id
    return entry


def test_access_policy_vault_needs_the_callers_permission(fake: FakeAzure) -> None:
    vault = make_vault(fake, "kv-policies", rbac_mode=False, policies=[policy(WORKLOAD, "Get", "List")])
    # No entry for the caller at all.
    answer = kv(fake, vault, "GET", "secrets/one")
    assert answer.status_code == 403
    assert error(answer)["innererror"] == {"code": "AccessDenied"}
    assert error(answer)["message"].startswith("Access denied. Caller was not found on any access policy.")
    # RBAC roles do not count in an access-policy vault.
    rbac.grant(fake, fake.deployer_object_id, "Key Vault Administrator", vault_id("kv-policies"))
    assert kv(fake, vault, "GET", "secrets/one").status_code == 403
    # An entry without the permission.
    answer = kv(fake, vault, "PUT", "secrets/one", {"value": "x"}, oid=WORKLOAD)
    assert answer.status_code == 403
    assert (
        "does not have secrets set permission on key vault 'kv-policies;location=westeurope'"
        in (error(answer)["message"])
    )
    assert kv(fake, vault, "GET", "secrets/one", oid=WORKLOAD).status_code == 404  # allowed, and absent
    props = fake.resources[vault_id("kv-policies").lower()]["properties"]
    # A compound identity (the deployer through some application) is not the deployer itself.
    props["accessPolicies"].append(policy(fake.deployer_object_id, "all", application_id=WORKLOAD))
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "x"}).status_code == 403
    props["accessPolicies"].append(policy(fake.deployer_object_id, "all"))
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "x"}).status_code == 200
    assert kv(fake, vault, "DELETE", "secrets/one", oid=WORKLOAD).status_code == 403


def test_secret_routes_versions_and_unimplemented_ones(fake: FakeAzure) -> None:
    vault = make_vault(fake, "kv-routes", rbac_mode=False, policies=[policy(fake.deployer_object_id, "all")])
    first = kv(fake, vault, "PUT", "secrets/one", {"value": "1", "tags": {"a": "b"}}).json()
    second = kv(fake, vault, "PUT", "secrets/one", {"value": "2"}).json()
    assert first["id"].startswith(vault.uri)
    versions = kv(fake, vault, "GET", "secrets/one/versions").json()["value"]
    assert [v["id"] for v in versions] == [first["id"], second["id"]]
    assert all("value" not in v for v in versions)
    assert kv(fake, vault, "GET", f"secrets/one/{first['id'].rsplit('/', 1)[-1]}").json()["value"] == "1"
    assert kv(fake, vault, "GET", "secrets/one").json()["value"] == "2"
    assert kv(fake, vault, "GET", "secrets").json()["value"][0]["id"] == f"{vault.uri}secrets/one"
    assert kv(fake, vault, "GET", "secrets/one", **{"api-version": ""}).status_code == 400
    assert kv(fake, vault, "PUT", "secrets/not_valid", {"value": "x"}).status_code == 400
    for method, path in [("GET", "keys"), ("POST", "secrets/one/backup"), ("GET", "certificates/c")]:
        answer = kv(fake, vault, method, path)
        assert answer.status_code == 501, (method, path)
        assert path in error(answer)["message"]


# --- DNS ------------------------------------------------------------------------------------------

RESOLVE = textwrap.dedent(
    """
    import json, socket, sys, time
    import requests

    name, lag, uri, ca = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]

    def resolve(host):
        try:
            return socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)[0][4][0]
        except socket.gaierror as exc:
            return exc.errno

    def fetch():
        try:
            return requests.get(uri + "secrets?api-version=7.4", verify=ca, timeout=10).status_code
        except requests.ConnectionError as exc:
            return type(exc).__name__

    found = {"early": resolve(name), "early_get": fetch(), "unknown": resolve("nowhere.vault.fake.test")}
    time.sleep(lag)
    found.update(late=resolve(name), late_get=fetch(), localhost=resolve("localhost"))
    print(json.dumps(found))
    """
)


def test_a_new_vault_name_resolves_only_after_its_lag(fake: FakeAzure) -> None:
    fake.behaviour.vault_dns_lag = 4.0
    vault = make_vault(fake, "kv-dns-lag")
    host = vault.uri.split("//", 1)[1].split(":", 1)[0]
    assert host == "kv-dns-lag.vault.fake.test"
    assert f"{host} 127.0.0.1 " in fake.hosts_file.read_text()
    env = {"PYTHONPATH": str(SHIM), "ZEROTRUST_AKS_FAKE_AZURE_HOSTS": str(fake.hosts_file), "PATH": "/usr/bin:/bin"}
    probe = subprocess.run(
        [sys.executable, "-c", RESOLVE, host, "4", vault.uri, str(fake.ca_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(probe.stdout)
    assert found["early"] == socket.EAI_NONAME
    assert found["early_get"] == "ConnectionError"
    assert found["unknown"] == socket.EAI_NONAME
    assert found["late"] == "127.0.0.1"
    # The certificate covers *.vault.fake.test: TLS succeeds, and the vault asks for a token.
    assert found["late_get"] == 401
    assert found["localhost"] in ("127.0.0.1", "::1")


# --- faults ---------------------------------------------------------------------------------------


def test_throttling_answers_each_service_in_its_own_shape_and_changes_nothing(fake: FakeAzure) -> None:
    vault = make_vault(fake, "kv-throttled", rbac_mode=False, policies=[policy(fake.deployer_object_id, "all")])
    graph = Client(fake, fake.graph_url + "/v1.0/", fake.graph_url + "/")  # tokens are never faulted
    arm = Client(fake, fake.base_url, fake.base_url + "/")
    fake.behaviour.faults = Faults(seed=3, throttle_rate=1.0, retry_after=7)
    before = len(fake.applications)
    answers = {
        "graph": graph("POST", "applications", {"displayName": "throttled"}),
        "arm": arm(
            "GET", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}", **{"api-version": "2021-04-01"}
        ),
        "keyvault": kv(fake, vault, "PUT", "secrets/one", {"value": "x"}),
    }
    codes = {"graph": "TooManyRequests", "arm": "SubscriptionRequestsThrottled", "keyvault": "Throttled"}
    for service, answer in answers.items():
        assert answer.status_code == 429, service
        assert answer.headers["Retry-After"] == "7"
        assert error(answer)["code"] == codes[service]
    assert len(fake.applications) == before
    assert vault.secrets == {}
    assert [e["fault"] for e in fake.log[-3:]] == ["throttle"] * 3
    # Only the services named.
    fake.behaviour.faults = Faults(seed=3, throttle_rate=1.0, services=("graph",))
    assert kv(fake, vault, "PUT", "secrets/one", {"value": "x"}).status_code == 200
    assert graph("GET", "applications").status_code == 429


def test_server_errors_come_in_seeded_bursts(fake: FakeAzure) -> None:
    graph = Client(fake, fake.graph_url + "/v1.0/", fake.graph_url + "/")

    def statuses() -> list[int]:
        fake.behaviour.faults = Faults(seed=11, error_rate=0.3, error_status=503, error_burst=3)
        return [graph("GET", "applications").status_code for attempt in range(30)]

    first = statuses()
    assert first == statuses()  # the same seed, the same faults
    assert set(first) == {200, 503}
    runs = "".join("x" if s == 503 else "." for s in first).split(".")
    assert all(len(run) % 3 == 0 for run in runs if run)  # whole bursts of three
    fake.behaviour.faults = Faults(seed=1, error_rate=1.0, error_status=503)
    answer = graph("GET", "applications")
    assert (answer.status_code, error(answer)["code"]) == (503, "serviceNotAvailable")
    assert "Retry-After" in answer.headers


KILLED_CLIENT = textwrap.dedent(
    """
    import sys, requests
    url, token, ca = sys.argv[1:4]
    for call in range(20):
        requests.get(url, headers={"Authorization": "Bearer " + token}, verify=ca, timeout=30)
        print(call, flush=True)
    """
)


def test_the_client_of_the_kill_call_is_killed_and_not_answered(fake: FakeAzure) -> None:
    token = fake.issue_token(fake.graph_url + "/")
    fake.behaviour.kill_at_call = fake.calls + 3
    client = subprocess.run(
        [sys.executable, "-c", KILLED_CLIENT, fake.graph_url + "/v1.0/applications", token, str(fake.ca_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,  # it is meant to die
    )
    assert client.returncode == -signal.SIGKILL
    assert client.stdout.split() == ["0", "1"]
    killed = [e for e in fake.log if e.get("fault") == "kill"]
    assert killed[-1]["call"] == fake.behaviour.kill_at_call
    assert killed[-1]["status"] is None and killed[-1]["killed"]
    # A client that is this very process is never killed: its request is dropped unanswered.
    fake.behaviour.kill_at_call = fake.calls + 1
    with pytest.raises(requests.ConnectionError):
        requests.get(
            fake.graph_url + "/v1.0/applications",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(fake.ca_file),
            timeout=10,
        )
    assert fake.log[-1]["fault"] == "kill" and fake.log[-1]["killed"] == []
