"""An azure layer killed anywhere converges on the next run, with nothing duplicated or orphaned.

One fake for the module. The fake kills the client process (the Ansible module talking to it) and
the ansible-playbook run above it at its N-th request (``behaviour.kill_at_call``), so a run stops
the way a cancelled AWX job or a lost controller stops it: between any two Azure calls, including
between minting a client secret and storing it, with no task left to retry. The kill points are
seeded:

1. from an empty subscription, each run is killed a little further in than the last and resumes
   from what the killed runs left, so the kills walk through the whole layer;
2. then runs that rotate the client secret are killed around the Graph and Key Vault calls of the
   rotation, where an interrupted run could leave a credential nobody holds.
"""

from __future__ import annotations

import random
import re
import typing as t

from fake_azure import FakeAzure
from fake_subscription import KEYVAULT
from observations import role_assignments, writes
from support.playbook import Playbook, PlaybookRun

SEED = 20261129
# Names of the Key Vault secrets, not values.
CLIENT_SECRET = "oauth2-proxy-client-secret"  # noqa: S105
COOKIE_SECRET = "oauth2-proxy-cookie-secret"  # noqa: S105
# Rotation keeps the previous credential for a grace period; 0 lets the test see exactly one.
NO_GRACE = ("-e", "zerotrust_aks_client_secret_rotation_grace_hours=0")
ROTATE = ("-e", "zerotrust_aks_rotate_client_secret=true")


def first_run_points(rng: random.Random) -> list[int]:
    """Increasing request numbers, counted within each run: a run from empty sends about 60, one with
    nothing left to do about 22, so each of these kills its run a little further into the layer."""
    return sorted(rng.sample(range(3, 22), 8))


def rotation_points(rng: random.Random) -> list[int]:
    """Request numbers around the client secret step of a rotating run (the Graph and Key Vault calls)."""
    return sorted(rng.sample(range(7, 20), 4))


def killed_task(run: PlaybookRun) -> str:
    """The task a killed run was in (the last task header before the failure)."""
    head = run.output.split("fatal:", 1)[0].split("failed: [", 1)[0]
    tasks = re.findall(r"^TASK \[([^\]]+)\]", head, flags=re.MULTILINE)
    return tasks[-1] if tasks else ""


def collection_credentials(fake: FakeAzure, prefix: str = "zerotrust-aks") -> list[dict[str, t.Any]]:
    (app,) = fake.applications.values()
    return [c for c in app.get("passwordCredentials", []) if str(c.get("displayName", "")).startswith(prefix)]


def test_killed_anywhere_a_rerun_converges_without_duplicates(azure_playbook: Playbook, fake: FakeAzure) -> None:
    rng = random.Random(SEED)  # noqa: S311 - reproducible test points, not a secret
    plan: list[tuple[int, tuple[str, ...]]] = [(point, NO_GRACE) for point in first_run_points(rng)]
    plan += [(point, NO_GRACE + ROTATE) for point in rotation_points(rng)]
    killed: list[str] = []
    cookie_values: set[str] = set()
    for point, args in plan:
        fake.behaviour.kill_at_call = fake.calls + point
        try:
            run = azure_playbook(*args, must_succeed=False)
        finally:
            fake.behaviour.kill_at_call = None
        if run.returncode != 0:
            killed.append(killed_task(run))
        vault = fake.vaults.get(KEYVAULT)
        if vault and COOKIE_SECRET in vault.secrets:
            cookie_values.update(v["value"] for v in vault.secrets[COOKIE_SECRET])
    assert len(killed) >= 10, f"only {len(killed)} of {len(plan)} runs were killed: {killed}"
    # Spread over the layer, not ten times the same task.
    assert len(set(killed)) >= 5, killed

    run = azure_playbook(*NO_GRACE)
    assert run.failed == 0
    # Converged: a further run has nothing to do.
    start = len(fake.log)
    again = azure_playbook(*NO_GRACE)
    assert again.changed == 0, again.describe()
    assert writes(fake.log[start:]) == []

    # One of everything the layer makes.
    assert len(fake.applications) == 1
    assert len(fake.service_principals) == 1
    identities = [k for k in fake.resources if "/userassignedidentities/" in k and "/federated" not in k]
    assert len(identities) == 1, identities
    keys = [
        (a["properties"]["scope"].lower(), a["properties"]["principalId"], a["properties"]["roleDefinitionId"].lower())
        for a in role_assignments(fake)
    ]
    assert len(keys) == len(set(keys)), keys
    # Exactly one live client credential of the collection's, and it is the one the vault holds.
    credentials = collection_credentials(fake)
    assert len(credentials) == 1, credentials
    stored = fake.vaults[KEYVAULT].secrets[CLIENT_SECRET]
    assert stored[-1]["tags"]["zerotrust-aks-key-id"].lower() == credentials[0]["keyId"].lower()
    # Every stored version names a credential that was made (no version without its credential
    # having existed), one per rotation or interrupted mint at most.
    assert len(stored) <= 1 + len(plan)
    # The cookie secret was made once and survived every kill.
    cookie = fake.vaults[KEYVAULT].secrets[COOKIE_SECRET]
    assert len({v["value"] for v in cookie}) == 1
    assert len(cookie_values) == 1
