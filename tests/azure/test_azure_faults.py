"""playbooks/azure.yml against the strict fake while Azure misbehaves the ways it documents.

One fake for the module (a fresh subscription), tests in order. Each test turns some of the fake's
knobs (fake_azure/behaviour.py), runs the playbook as a user would and checks that it converges,
or, when the fault outlasts the collection's bound, that it fails with a message naming the
cause. Delays are seconds here; Azure's are minutes (docs/AZURE.md, "What Azure does").

The three eventual-consistency faults of a new vault and a new identity (DNS, role propagation,
principal replication) share one run, each checked by its own test.
"""

from __future__ import annotations

import collections
import json
import typing as t

import pytest
from fake_azure import FakeAzure
from fake_azure.behaviour import Faults
from fake_subscription import CLUSTER, CLUSTER_ID, KEYVAULT, RESOURCE_GROUP, SUBSCRIPTION
from observations import role_assignments, writes
from support.playbook import REPO, Playbook, PlaybookRun

SECRETS_OFFICER_ROLE = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
SECRETS_USER_ROLE = "4633458b-17de-408a-b874-0445c86b69e6"
# Bounds the tests give the collection (inventory variables), so an exceeded bound fails in seconds.
SHORT_BOUNDS = {
    "zerotrust_aks_azure_retry_timeout": 8,
    "zerotrust_aks_azure_principal_timeout": 6,
    "zerotrust_aks_azure_access_timeout": 6,
}
LAGGING_VAULT = "zt-aks-kv-lag"
LAGGING_IDENTITY = "zt-aks-reader-lag"
POLICY_VAULT = "zt-aks-kv-policies"
UNKNOWN_PRINCIPAL = "0f0f0f0f-1111-4222-8333-444455556666"
# The group object id inventories/aks names as its placeholder.
SHIPPED_GROUP = "12345678-aaaa-4bbb-8ccc-123456789abc"
runs: dict[str, tuple[PlaybookRun, list[dict[str, t.Any]]]] = {}


def play(
    playbook: Playbook, fake: FakeAzure, *args: str, must_succeed: bool = True
) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    start = len(fake.log)
    run = playbook(*args, must_succeed=must_succeed)
    return run, fake.log[start:]


def extra(**values: t.Any) -> tuple[str, str]:
    return ("-e", json.dumps(values))


def faults_by_service(requests: list[dict[str, t.Any]]) -> dict[str, collections.Counter[str]]:
    """How many faults of each kind the fake injected, per service."""
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for entry in requests:
        if entry.get("fault"):
            found[entry["service"]][str(entry["fault"])] += 1
    return found


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/{name}"


@pytest.fixture(scope="module")
def shipped_playbook(azure_env: dict[str, str], fake: FakeAzure, tmp_path_factory: pytest.TempPathFactory) -> Playbook:
    """playbooks/azure.yml with the shipped example inventory, only the names changed to the test's."""
    # The example's placeholder group stands for the user's own group: it exists in the directory.
    fake.add_group(SHIPPED_GROUP, "the example inventory's group")
    names = tmp_path_factory.mktemp("shipped") / "names.yml"
    names.write_text(
        json.dumps(
            {
                "zerotrust_aks_resource_group": RESOURCE_GROUP,
                "zerotrust_aks_cluster_name": CLUSTER,
                "zerotrust_aks_keyvault_name": KEYVAULT,
            }
        )
    )
    return Playbook(
        "playbooks/azure.yml", env=azure_env, inventory=[REPO / "inventories" / "aks"], extra_vars_files=[names]
    )


def test_throttled_first_run_from_empty_with_the_shipped_inventory_converges(
    shipped_playbook: Playbook, fake: FakeAzure
) -> None:
    """From an empty resource group, the example inventory with its names changed, while 429s with
    Retry-After hit every kind of call (ARM, Graph, Key Vault): the run converges."""
    fake.behaviour.faults = Faults(seed=11, throttle_rate=0.2, retry_after=1)
    try:
        run, requests = play(shipped_playbook, fake)
    finally:
        fake.behaviour.faults = Faults()
    assert run.failed == 0
    injected = faults_by_service(requests)
    for service in ("main", "graph", "keyvault"):
        assert injected[service]["throttle"] > 0, (service, dict(injected))
    # The deployer was let in by the collection itself, and said so.
    assert "Granted secret write access" in run.output
    # Converged: the next run has nothing to do.
    run, requests = play(shipped_playbook, fake)
    assert run.changed == 0, run.describe()
    assert writes(requests) == []


def test_server_error_bursts_during_writes_converge(azure_playbook: Playbook, fake: FakeAzure) -> None:
    """503 bursts while both secrets rotate (Graph addPassword, Key Vault writes, ARM reads)."""
    fake.behaviour.faults = Faults(seed=5, error_rate=0.15, error_status=503, error_burst=2)
    rotate = extra(zerotrust_aks_rotate_cookie_secret=True, zerotrust_aks_rotate_client_secret=True)
    try:
        run, requests = play(azure_playbook, fake, *rotate)
    finally:
        fake.behaviour.faults = Faults()
    assert run.failed == 0
    injected = faults_by_service(requests)
    assert sum(counter["error 503"] for counter in injected.values()) > 0, dict(injected)
    assert "retried" in run.output  # the modules say that they retried, and how long they waited


def test_a_busy_cluster_is_waited_for_then_updated(azure_playbook: Playbook, fake: FakeAzure) -> None:
    """AKS answers 409 OperationNotAllowed while another operation runs; the add-on change waits for it."""
    # Another operation (an upgrade someone started) that AKS reports as running for a few more looks.
    key = CLUSTER_ID.lower()
    with fake.lock:
        fake.operations["upgrade-in-progress"] = ["InProgress"] * 4 + ["Succeeded"]
        fake.pending["upgrade-in-progress"] = {"key": key, "started": "2026-11-29T00:00:00Z"}
        fake.resources[key]["properties"]["provisioningState"] = "Upgrading"
    run, requests = play(
        azure_playbook, fake, *extra(zerotrust_aks_rotation_poll_interval="3m", aks_keyvault_addon_poll_interval=1)
    )
    assert run.failed == 0
    puts = [r for r in requests if r["method"] == "PUT" and r["path"].lower() == key]
    assert [r["status"] for r in puts][-1] == 200, puts
    assert 409 in [r["status"] for r in puts] or "another operation" in run.output, run.output[-3000:]
    profile = fake.resources[key]["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert profile["config"]["rotationPollInterval"] == "3m"


@pytest.fixture(scope="module")
def lagging_run(azure_playbook: Playbook, fake: FakeAzure) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """A new vault and a new identity while Azure lags: DNS, role propagation and principal replication."""
    saved = (fake.behaviour.vault_dns_lag, fake.behaviour.rbac_propagation, fake.behaviour.principal_lag)
    # The first Key Vault call comes a few seconds after the vault is made: the name resolves 12 s
    # after that, the deployer's grant applies 20 s after it is made.
    fake.behaviour.vault_dns_lag, fake.behaviour.rbac_propagation, fake.behaviour.principal_lag = 12.0, 20.0, 6.0
    try:
        return play(
            azure_playbook,
            fake,
            *extra(zerotrust_aks_keyvault_name=LAGGING_VAULT, zerotrust_aks_identity_name=LAGGING_IDENTITY),
        )
    finally:
        fake.behaviour.vault_dns_lag, fake.behaviour.rbac_propagation, fake.behaviour.principal_lag = saved


def test_a_new_vault_that_does_not_resolve_yet_is_waited_for(
    lagging_run: tuple[PlaybookRun, list[dict[str, t.Any]]], fake: FakeAzure
) -> None:
    run = lagging_run[0]
    assert run.failed == 0
    assert "does not resolve" in run.output, "no name-resolution wait was reported"
    assert "oauth2-proxy-cookie-secret" in fake.vaults[LAGGING_VAULT].secrets


def test_key_vault_403_until_the_officer_grant_applies_is_waited_for(
    lagging_run: tuple[PlaybookRun, list[dict[str, t.Any]]], fake: FakeAzure
) -> None:
    run, requests = lagging_run
    assert run.failed == 0
    refused = [r for r in requests if r["service"] == "keyvault" and r["status"] == 403 and not r.get("fault")]
    assert refused, "Key Vault never refused: the propagation delay was not exercised"
    officers = [
        a["properties"]["principalId"]
        for a in role_assignments(fake)
        if a["properties"]["scope"].lower() == vault_id(LAGGING_VAULT).lower()
        and a["properties"]["roleDefinitionId"].endswith(SECRETS_OFFICER_ROLE)
    ]
    assert officers == [fake.deployer_object_id]
    assert "oauth2-proxy-client-secret" in fake.vaults[LAGGING_VAULT].secrets


def test_a_new_identity_unknown_to_role_assignment_is_granted_anyway(
    lagging_run: tuple[PlaybookRun, list[dict[str, t.Any]]], fake: FakeAzure
) -> None:
    run = lagging_run[0]
    assert run.failed == 0
    identity = next(r for k, r in fake.resources.items() if k.endswith(f"/userassignedidentities/{LAGGING_IDENTITY}"))
    principal = identity["properties"]["principalId"]
    grants = sorted(
        a["properties"]["scope"].rsplit("/secrets/", 1)[-1]
        for a in role_assignments(fake)
        if a["properties"]["principalId"] == principal
        and a["properties"]["roleDefinitionId"].endswith(SECRETS_USER_ROLE)
    )
    assert grants == ["oauth2-proxy-client-id", "oauth2-proxy-client-secret", "oauth2-proxy-cookie-secret"]


@pytest.mark.parametrize(
    ("behaviour", "settings", "cause"),
    [
        ({"faults": Faults(seed=3, throttle_rate=1.0, retry_after=1, services=("keyvault",))}, {}, "429"),
        (
            {"faults": Faults(seed=3, error_rate=1.0, error_status=500, error_burst=100000, services=("graph",))},
            {},
            "500",
        ),
        # An officer whose object id the directory never learns.
        (
            {},
            {"zerotrust_aks_keyvault_officer_object_ids": ["0f0f0f0f-1111-4222-8333-444455556666"]},
            "PrincipalNotFound",
        ),
    ],
    ids=["throttled-for-ever", "graph-down", "principal-never-appears"],
)
def test_a_fault_outlasting_the_bound_fails_with_its_cause(
    azure_playbook: Playbook, fake: FakeAzure, behaviour: dict[str, t.Any], settings: dict[str, t.Any], cause: str
) -> None:
    saved = {name: getattr(fake.behaviour, name) for name in behaviour}
    for name, value in behaviour.items():
        setattr(fake.behaviour, name, value)
    try:
        run = play(azure_playbook, fake, *extra(**SHORT_BOUNDS, **settings), must_succeed=False)[0]
    finally:
        for name, value in saved.items():
            setattr(fake.behaviour, name, value)
    assert run.failed == 1
    assert cause in run.output
    assert "Traceback" not in run.output


def test_access_policy_vaults_run_end_to_end(azure_playbook: Playbook, fake: FakeAzure) -> None:
    """The add-on identity reads through an access policy; the deployer writes through one."""
    settings = extra(
        zerotrust_aks_keyvault_name=POLICY_VAULT,
        zerotrust_aks_identity_mode="addon",
        zerotrust_aks_keyvault_authorization="access_policy",
    )
    run = play(azure_playbook, fake, *settings)[0]
    assert run.failed == 0
    vault = fake.resource(vault_id(POLICY_VAULT))
    assert vault is not None
    assert vault["properties"]["enableRbacAuthorization"] is False
    policies = {p["objectId"]: sorted(p["permissions"]["secrets"]) for p in vault["properties"]["accessPolicies"]}
    assert policies[fake.deployer_object_id] == ["delete", "get", "list", "recover", "set"]
    addon = fake.resources[CLUSTER_ID.lower()]["properties"]["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert policies[addon["identity"]["objectId"]] == ["get"]
    assert sorted(fake.vaults[POLICY_VAULT].secrets) == [
        "oauth2-proxy-client-id",
        "oauth2-proxy-client-secret",
        "oauth2-proxy-cookie-secret",
    ]


def test_an_existing_vault_keeps_its_authorization_model_and_nothing_is_rewritten(
    azure_playbook: Playbook, fake: FakeAzure
) -> None:
    """Asked for RBAC, a vault that exists with access policies is left as it is; the re-run writes nothing."""
    run, requests = play(
        azure_playbook,
        fake,
        *extra(
            zerotrust_aks_keyvault_name=POLICY_VAULT,
            zerotrust_aks_identity_mode="addon",
            zerotrust_aks_keyvault_authorization="rbac",
        ),
    )
    assert run.failed == 0
    assert run.changed == 0, run.describe()
    assert writes(requests) == []
    vault = fake.resource(vault_id(POLICY_VAULT))
    assert vault is not None
    assert vault["properties"]["enableRbacAuthorization"] is False
    assert "uses access policies" in run.output
    vault_puts = [r for r in fake.log if r["method"] == "PUT" and r["path"].lower() == vault_id(POLICY_VAULT).lower()]
    assert len(vault_puts) == 1, "the vault was written again after it was made"


def test_every_arm_body_sent_validates_against_the_sdk_models(fake: FakeAzure) -> None:
    """The contract: each ARM PUT/PATCH body the collection sent in this module passes the SDK models."""
    from fake_azure.validation import validate_arm_body

    checked = 0
    for entry in fake.log:
        if entry["service"] == "main" and entry["method"] in ("PUT", "PATCH") and entry.get("body") is not None:
            problems = validate_arm_body(
                entry["path"], entry["query"].get("api-version", ""), entry["body"], method=entry["method"]
            )
            assert problems == [], entry
            checked += 1
    assert checked > 0


def test_every_graph_body_sent_is_of_its_resource_type(fake: FakeAzure) -> None:
    """The contract for Graph: each POST/PATCH body the collection sent names only its type's properties."""
    from fake_azure import graph_schema

    checked = 0
    for entry in fake.log:
        if entry["service"] == "graph" and entry.get("body") is not None and entry.get("status") != 400:
            parts = entry["path"].strip("/").split("/")[1:]
            kind = graph_schema.body_type(entry["method"], parts)
            if kind is not None:
                graph_schema.check(kind, entry["body"])  # raises with Graph's 400 message otherwise
                checked += 1
    assert checked > 0
