# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.keyvault_secret on a scripted Key Vault: 403 waits, DNS lag, no values in errors."""

from __future__ import annotations

import json
import socket
import typing as t

import pytest

# The module runs on azure.azcollection's base class, which imports the azure SDKs. ansible-test's
# units environment does not install them: there this file is skipped, and scripts/test units
# runs it again with the project's virtualenv, which has them (stage "units", second step).
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
import requests
from ansible_collections.zerotrust.aks.plugins.modules import keyvault_secret
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import (
    Answer,
    FakeSession,
    Request,
    VirtualClock,
    fake_azure,
    warnings,
)

VAULT = "https://kv.vault.azure.net/"
SECRET = r"/secrets/cookie$"  # noqa: S105 - a URL path pattern
VALUE = "s3cr3t-value-never-printed"
OID = "99999999-8888-7777-6666-555555555555"
APPID = "11111111-0000-0000-0000-000000000001"

RBAC_403 = Answer(
    403,
    {
        "error": {
            "code": "Forbidden",
            "message": "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
            "assignments or role definitions were changed recently, please observe propagation time.\r\n"
            f"Caller: appid={APPID};oid={OID};iss=https://sts.windows.net/t/\r\n"
            "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'\r\n"
            "Resource: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv/secrets/cookie'\r\n"
            "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
            "Vault: kv;location=westeurope\r\n",
            "innererror": {"code": "ForbiddenByRbac"},
        }
    },
)
POLICY_403 = Answer(
    403,
    {
        "error": {
            "code": "Forbidden",
            "message": f"The user, group or application 'appid={APPID};oid={OID};iss=https://sts.windows.net/t/' "
            "does not have secrets get permission on key vault 'kv;location=westeurope'. For help resolving this "
            "issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
            "innererror": {"code": "ForbiddenByPolicy"},
        }
    },
)


def bundle(value: str = VALUE, version: str = "v1") -> dict[str, t.Any]:
    return {"value": value, "id": f"{VAULT}secrets/cookie/{version}", "tags": {}}


def stored(request: Request) -> Answer:
    return Answer(200, {"id": f"{VAULT}secrets/cookie/v2", "tags": request.body.get("tags", {})})


def unresolvable() -> requests.ConnectionError:
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as cause:
        try:
            raise requests.ConnectionError("Max retries exceeded (Caused by NameResolutionError)") from cause
        except requests.ConnectionError as exc:
            return exc


def run(
    capsys: pytest.CaptureFixture[str], session: FakeSession, clock: VirtualClock | None = None, **args: t.Any
) -> dict[str, t.Any]:
    args = {"vault_uri": VAULT, "name": "cookie", "auth_source": "env", **args}
    with fake_azure(session, clock or VirtualClock()):
        result: dict[str, t.Any] = utils.run_module(keyvault_secret.main, capsys, **args)
    return result


def test_403_until_the_role_applies_then_writes(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", SECRET, RBAC_403, RBAC_403, Answer(404, {"error": {"code": "SecretNotFound", "message": "x"}}))
    session.on("GET", r"/deletedsecrets/cookie$", Answer(404, {"error": {"code": "SecretNotFound", "message": "x"}}))
    session.on("PUT", SECRET, stored)
    result = run(capsys, session, clock, value=VALUE, forbidden_retry_seconds=300)
    assert result["rc"] == 0 and result["changed"] is True, result
    assert clock.sleeps == [2.0, 4.0] and result["waited_for_access"] == 6.0
    assert any("answered 403 for 6s before letting this caller in" in w for w in warnings(result))
    assert VALUE not in json.dumps(result)


def test_rbac_403_final_error_names_caller_action_and_role(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", SECRET, Answer(200, bundle("old")))
    session.on("PUT", SECRET, RBAC_403)
    result = run(capsys, session, clock, value=VALUE, forbidden_retry_seconds=60)
    assert result["rc"] == 1 and result["status"] == 403 and result["error_code"] == "ForbiddenByRbac"
    message = result["msg"]
    assert f"object id {OID} (application {APPID})" in message
    assert "vault kv uses Azure RBAC" in message
    assert "Microsoft.KeyVault/vaults/secrets/setSecret/action" in message
    assert "assign Key Vault Secrets Officer" in message
    assert "for 60s (forbidden_retry_seconds is 60)" in message
    assert sum(clock.sleeps) == 60 and result["waited_for_access"] == 60
    assert VALUE not in json.dumps(result)


def test_policy_403_final_error_names_the_missing_permission(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", SECRET, POLICY_403)
    result = run(capsys, session)
    assert result["rc"] == 1 and result["error_code"] == "ForbiddenByPolicy"
    assert f"vault kv uses access policies and none gives object id {OID}" in result["msg"]
    assert "the secrets get permission" in result["msg"]
    assert "for 0s (forbidden_retry_seconds is 0)" in result["msg"]


def test_new_vault_name_that_does_not_resolve_yet_is_waited_for(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", SECRET, unresolvable(), unresolvable(), Answer(200, bundle()))
    result = run(capsys, session, clock)
    assert result["rc"] == 0 and result["secret"] == VALUE and result["exists"] is True
    assert len(clock.sleeps) == 2
    assert any("does not resolve" in w for w in warnings(result))


def test_vault_that_never_resolves_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", SECRET, unresolvable())
    result = run(capsys, session, clock, value=VALUE, azure_retry_timeout=120)
    assert result["rc"] == 1 and "Traceback" not in json.dumps(result)
    assert result["msg"].startswith(f"Key Vault request failed: GET {VAULT}secrets/cookie failed: ConnectionError: ")
    assert "the host name kv.vault.azure.net does not resolve" in result["msg"]
    assert "over 120s, the retry bound is 120s" in result["msg"]
    assert VALUE not in json.dumps(result)


def test_unchanged_value_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", SECRET, Answer(200, bundle()))
    result = run(capsys, session, value=VALUE)
    assert result["changed"] is False and session.writes == [] and result["waited_for_access"] == 0
