"""playbooks/azure.yml with AWX's user/password Azure credential, against the fake Azure.

AWX's "Microsoft Azure Resource Manager" credential with a username and password injects
``AZURE_AD_USER``, ``AZURE_PASSWORD`` and ``AZURE_SUBSCRIPTION_ID`` and no ``AZURE_TENANT``;
azure.azcollection then signs the user in through azure-identity's ``UsernamePasswordCredential``
(the Azure CLI's public client, tenant ``organizations``). With no tenant in the inventory either,
the play must take the tenant from the user's own token (``zerotrust.aks.azure_context_info``).

Check mode only: the proof is about the credential, and check mode is quick and writes nothing.
The fake's login (fake_azure/login.py) answers the discovery, user realm and password grant as
Entra does; the user has the deployer's documented roles, granted as a ``User``.
"""

from __future__ import annotations

import errno
import re
import typing as t

import pytest
from fake_azure import FakeAzure, rbac
from fake_azure.login import serve_user_realm
from fake_subscription import (
    CLUSTER,
    GROUP_COLORS,
    KEYVAULT,
    RESOURCE_GROUP,
    SECOND_HOST,
    SITE_HOST,
    SUBSCRIPTION,
    TENANT,
)
from observations import writes
from support.playbook import Playbook, PlaybookRun

USER_UPN = "deployer@zerotrust-test.example"
USER_OBJECT_ID = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
USER_PASSWORD = "user-password-" + "Q7w!"  # checked never to be printed
WRONG_PASSWORD = "wrong-password-" + "Z3x?"
# docs/AZURE.md "Permissions": what the deploying principal needs on the resource group.
DEPLOYER_ROLES = ("Contributor", "User Access Administrator")
# Every token the fake mints starts with this header ({"alg": "none"}): none may be printed.
TOKEN_HEADER = "eyJhbGciOiJub25lIn0"  # noqa: S105 - not a credential: the fake's fixed JWT header
# Credential variables a service principal would bring: the user/password credential has none.
SERVICE_PRINCIPAL_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT")


@pytest.fixture(scope="module")
def password_user(fake: FakeAzure) -> str:
    """The user in the fake's directory, with its password and the deployer's roles."""
    try:
        serve_user_realm(fake)
    except OSError as exc:
        # MSAL sends the user realm discovery to port 443 of the authority (login.serve_user_realm).
        if exc.errno in (errno.EACCES, errno.EADDRINUSE, errno.EPERM):
            pytest.skip(f"cannot answer MSAL's user realm discovery on 127.0.0.1:443: {exc}")
        raise
    fake.add_password_user(USER_UPN, USER_PASSWORD, USER_OBJECT_ID, "Deploying user")
    scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    for role in DEPLOYER_ROLES:
        rbac.grant(fake, USER_OBJECT_ID, role, scope, "User")
    return USER_OBJECT_ID


def user_environment(azure_env: dict[str, str], password: str) -> dict[str, str]:
    """What AWX injects for a user/password Azure credential: no client id, secret or tenant."""
    env = {k: v for k, v in azure_env.items() if k not in SERVICE_PRINCIPAL_VARIABLES}
    env.update(AZURE_AD_USER=USER_UPN, AZURE_PASSWORD=password)
    return env


@pytest.fixture(scope="module")
def vars_file(tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    """The inventory of conftest.py's azure_playbook; no zerotrust_aks_tenant_id anywhere."""
    path = tmp_path_factory.mktemp("user-vars") / "azure.yml"
    path.write_text(
        "\n".join(
            [
                "zerotrust_aks_platform: aks",
                f"zerotrust_aks_resource_group: {RESOURCE_GROUP}",
                f"zerotrust_aks_cluster_name: {CLUSTER}",
                f"zerotrust_aks_keyvault_name: {KEYVAULT}",
                f"zerotrust_aks_host: {SITE_HOST}",
                f"zerotrust_aks_apps: [{{name: shop, namespace: shop, host: {SECOND_HOST}}}]",
                "zerotrust_aks_app_role_assignments:",
                f"  - {{principal_id: {GROUP_COLORS}, principal_type: Group, role: colors.user}}",
                "zerotrust_aks_group_membership_claims: SecurityGroup",
                "",
            ]
        )
    )
    return path


def user_playbook(azure_env: dict[str, str], vars_file: t.Any, password: str) -> Playbook:
    return Playbook("playbooks/azure.yml", env=user_environment(azure_env, password), extra_vars_files=[vars_file])


def play(playbook: Playbook, fake: FakeAzure, must_succeed: bool) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    start = len(fake.log)
    run = playbook("--check", "-vvv", must_succeed=must_succeed)
    return run, fake.log[start:]


def assert_no_credential_printed(run: PlaybookRun, fake: FakeAzure) -> None:
    refresh_tokens = [r for user in fake.password_users.values() for r in user.refresh_tokens]
    for value in (USER_PASSWORD, WRONG_PASSWORD, TOKEN_HEADER, *refresh_tokens):
        assert value not in run.output, f"a credential or token was printed ({value[:6]}...)"


@pytest.fixture(scope="module")
def user_run(
    fake: FakeAzure, azure_env: dict[str, str], vars_file: t.Any, password_user: str
) -> tuple[PlaybookRun, list[dict[str, t.Any]]]:
    """One check-mode run with the user's credential and no tenant anywhere; the tests below read it."""
    for name in SERVICE_PRINCIPAL_VARIABLES:
        assert name not in user_environment(azure_env, USER_PASSWORD)
    return play(user_playbook(azure_env, vars_file, USER_PASSWORD), fake, must_succeed=False)


def task_output(run: PlaybookRun, name: str) -> str:
    """What the last run of task ``name`` printed (up to the next task)."""
    _before, marker, rest = run.stdout.rpartition(f"TASK [{name}]")
    assert marker, f"task {name!r} did not run\n{run.describe()}"
    return rest.partition("\nTASK [")[0]


def test_the_tenant_comes_from_the_user_token(user_run: tuple[PlaybookRun, list[dict[str, t.Any]]]) -> None:
    run, requests = user_run
    found = task_output(run, "Find the tenant from the credential")
    assert "ok: [localhost]" in found, run.describe()
    assert re.search(rf"\btenant_id: {TENANT}\b", found), found
    assert re.search(rf"\bobject_id: {USER_OBJECT_ID}\b", found), found
    assert re.search(r"\bprincipal_type: User\b", found), found
    # Signed in as the user: the password grant on the organizations authority, after MSAL's user
    # realm discovery, and never the service principal's client credentials at the tenant.
    paths = [r["path"] for r in requests]
    assert f"/common/userrealm/{USER_UPN}" in paths
    assert "/organizations/oauth2/v2.0/token" in paths
    assert f"/{TENANT}/oauth2/v2.0/token" not in paths


def test_arm_accepts_the_user_token_and_check_mode_writes_nothing(
    user_run: tuple[PlaybookRun, list[dict[str, t.Any]]], fake: FakeAzure
) -> None:
    run, requests = user_run
    arm = [r for r in requests if r["service"] == "main" and r["path"].startswith("/subscriptions/")]
    assert arm, run.describe()
    # Authorized by the roles granted to the user's object id (the fake checks the token's oid).
    assert [f"{r['method']} {r['path']}" for r in arm if r["status"] in (401, 403)] == []
    assert writes(requests) == []
    assert fake.applications == {} and fake.vaults == {}


def test_no_password_or_token_is_printed(user_run: tuple[PlaybookRun, list[dict[str, t.Any]]], fake: FakeAzure) -> None:
    run, _requests = user_run
    assert "<localhost> EXEC" in run.output  # -vvv: module arguments and results are printed
    assert_no_credential_printed(run, fake)


def test_check_mode_succeeds_and_publishes_the_token_tenant(
    user_run: tuple[PlaybookRun, list[dict[str, t.Any]]],
) -> None:
    run, requests = user_run
    assert run.returncode == 0 and run.failed == 0, run.describe()
    assert [f"{r['method']} {r['path']}" for r in requests if r["status"] in (401, 403)] == []
    # The tenant the layer publishes is the one in the user's token: nothing else names it.
    shown = task_output(run, "Show the azure layer's outputs (no secret values)")
    assert re.search(rf"\btenant_id: {TENANT}\b", shown), shown


def test_wrong_password_fails_clearly_without_traceback(
    fake: FakeAzure, azure_env: dict[str, str], vars_file: t.Any, password_user: str
) -> None:
    run, requests = play(user_playbook(azure_env, vars_file, WRONG_PASSWORD), fake, must_succeed=False)
    assert run.returncode != 0 and run.failed == 1, run.describe()
    # Entra's own words reach the user, from the first task that signs in; no Python traceback.
    assert "AADSTS50126" in run.output and "invalid username or password" in run.output, run.describe()
    assert "Traceback" not in run.output, run.describe()
    failed = task_output(run, "Find the tenant from the credential")
    assert "fatal: [localhost]: FAILED!" in failed, run.describe()
    # Nothing but the sign-in reached the fake.
    sign_in = ("/metadata/endpoints", "/organizations/", "/common/userrealm/")
    assert [r["path"] for r in requests if not r["path"].startswith(sign_in)] == []
    assert writes(requests) == []
    assert_no_credential_printed(run, fake)
