# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.azure_context_info: who the caller is, from its own token's claims."""

from __future__ import annotations

import json
import typing as t

import pytest

# The module runs on azure.azcollection's base class, which imports the azure SDKs. ansible-test's
# units environment does not install them: there this file is skipped, and scripts/test units
# runs it again with the project's virtualenv, which has them (stage "units", second step).
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.modules import azure_context_info as info
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import (
    SUBSCRIPTION,
    TENANT,
    FakeSession,
    VirtualClock,
    fake_azure,
    jwt,
)

OID = "99999999-8888-7777-6666-555555555555"
APP = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def run(capsys: pytest.CaptureFixture[str], token: str, **args: t.Any) -> dict[str, t.Any]:
    session = FakeSession()
    with fake_azure(session, VirtualClock(), token=token):
        result: dict[str, t.Any] = utils.run_module(info.main, capsys, auth_source="env", **args)
    assert session.log == []
    return result


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        pytest.param({"idtyp": "app", "appid": APP}, "ServicePrincipal", id="app token"),
        pytest.param({"idtyp": "user", "appid": APP, "upn": "a@example.com"}, "User", id="user token"),
        pytest.param({"appid": APP, "roles": []}, "ServicePrincipal", id="app without idtyp"),
        pytest.param(
            {"appid": APP, "upn": "a@example.com", "scp": "user_impersonation"}, "User", id="user without idtyp"
        ),
        pytest.param({"appid": APP, "unique_name": "live.com#a@example.com"}, "User", id="guest without upn"),
    ],
)
def test_principal_type(claims: dict[str, t.Any], kind: str) -> None:
    assert info.principal_type(claims) == kind


def test_returns_tenant_object_id_type_and_subscription_never_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    token = jwt({"tid": TENANT, "oid": OID, "idtyp": "app", "appid": APP})
    result = run(capsys, token)
    assert result["rc"] == 0, result
    assert {
        key: result[key] for key in ("tenant_id", "object_id", "principal_type", "client_id", "subscription_id")
    } == {
        "tenant_id": TENANT,
        "object_id": OID,
        "principal_type": "ServicePrincipal",
        "client_id": APP,
        "subscription_id": SUBSCRIPTION,
    }
    assert result["changed"] is False
    assert token not in json.dumps(result)


def test_token_without_object_id_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, jwt({"tid": TENANT}))
    assert result["rc"] == 1 and "no oid claim" in result["msg"]


def test_opaque_token_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "opaque")
    assert result["rc"] == 1 and "not a JSON Web Token" in result["msg"]
