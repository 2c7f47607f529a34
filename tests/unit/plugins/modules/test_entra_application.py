# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: S106  (the client_secret option values here are modes, not credentials)
"""entra_application run as Ansible runs it, with Graph and Key Vault replaced at the client level.

The credentials in the environment are placeholders: no token is ever requested, because the
module's ``AzureRestClient`` is replaced by the fakes of the lifecycle's unit tests. What is
checked here is what only the whole module shows: the JSON Ansible receives never holds the
client secret's value, check mode makes no write, and a failed store fails the task with its
cause after removing the new credential.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from unittest import mock

import pytest

# The module runs on azure.azcollection's base class, which imports the azure SDKs. ansible-test's
# units environment does not install them: there this file is skipped, and scripts/test units
# runs it again with the project's virtualenv, which has them (stage "units", second step).
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.module_utils import _entra_secrets as secrets
from ansible_collections.zerotrust.aks.plugins.modules import entra_application
from ansible_collections.zerotrust.aks.tests.unit.plugins.module_utils.test_entra_secrets import (
    NAME,
    FakeGraph,
    FakeVault,
    forbidden,
    holding,
)
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils

HOST = "colors.example.com"
VAULT_URI = FakeVault.base_url + "/"


def credential(key_id: str, days: int, name: str | None = None) -> dict[str, t.Any]:
    """A password credential valid for ``days`` from now: the module runs on the real clock."""
    now = dt.datetime.now(dt.UTC)
    return {
        "keyId": key_id,
        "displayName": name or secrets.credential_display_name("zerotrust-aks", now - dt.timedelta(days=1)),
        "endDateTime": (now + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("AZURE_SECRET", "placeholder")
    monkeypatch.setenv("AZURE_TENANT", "00000000-0000-0000-0000-000000000002")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000003")


def run(capsys: pytest.CaptureFixture[str], graph: t.Any, vault: t.Any, **args: t.Any) -> dict[str, t.Any]:
    made: list[str] = []

    def client(_credential: t.Any, base_url: str, _scope: str, **_kwargs: t.Any) -> t.Any:
        made.append(base_url)
        if base_url.startswith(FakeVault.base_url):
            assert vault is not None, "the module opened a vault it was not given"
            return vault
        return graph

    with mock.patch.object(entra_application, "AzureRestClient", client):
        result: dict[str, t.Any] = utils.run_module(
            entra_application.main, capsys, display_name="zerotrust-aks-oauth2-proxy", hosts=[HOST], **args
        )
    result["clients"] = made
    return result


def test_no_vault_means_no_client_secret_and_no_call(capsys: pytest.CaptureFixture[str], azure_env: None) -> None:
    graph = FakeGraph([])
    result = run(capsys, graph, None)
    assert result["rc"] == 1
    assert "client_secret=present needs keyvault_uri" in result["msg"]
    assert graph.calls == []
    assert graph.passwords == []


def test_a_new_secret_is_stored_and_its_value_is_nowhere_in_the_result(
    capsys: pytest.CaptureFixture[str], azure_env: None
) -> None:
    graph, vault = FakeGraph([]), FakeVault()
    result = run(capsys, graph, vault, keyvault_uri=VAULT_URI, keyvault_secret_name=NAME, _ansible_diff=True)
    assert result["rc"] == 0, result.get("msg")
    assert result["changed"] is True
    assert result["secret_created"] is True
    [made] = graph.passwords
    assert result["secret_key_id"] == made["keyId"]
    assert vault.current()["value"] == graph.values[0]
    assert result["secret_fingerprint"] == secrets.fingerprint(graph.values[0])
    assert "secret" not in result
    assert graph.values[0] not in json.dumps(result)
    assert result["diff"]["after"]["client_secret_key_ids"] == ["(new)"]


def test_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str], azure_env: None) -> None:
    graph = FakeGraph([credential("k1", 100), credential("orphan", 170)])
    vault = FakeVault(holding("k1"))
    result = run(
        capsys,
        graph,
        vault,
        keyvault_uri=VAULT_URI,
        keyvault_secret_name=NAME,
        rotate_secret=True,
        _ansible_check_mode=True,
    )
    assert result["rc"] == 0, result.get("msg")
    assert result["changed"] is True
    assert graph.writes() == []
    assert vault.writes() == []
    assert result["removed_secret_key_ids"] == ["orphan"]
    assert result["secret_created"] is False


def test_a_failed_store_fails_the_task_with_the_cause_and_leaves_no_new_credential(
    capsys: pytest.CaptureFixture[str], azure_env: None
) -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    vault.put_errors = [forbidden("PUT", f"secrets/{NAME}")]
    result = run(capsys, graph, vault, keyvault_uri=VAULT_URI, keyvault_secret_name=NAME, rotate_secret=True)
    assert result["rc"] == 1
    assert result["status"] == 403
    assert result["error_code"] == "Forbidden"
    assert "ForbiddenByRbac" in result["msg"]
    assert "removed from the application again" in result["msg"]
    assert graph.values[0] not in json.dumps(result)
    assert graph.key_ids() == ["k1"]


def test_federated_mode_removes_only_the_collections_secrets(
    capsys: pytest.CaptureFixture[str], azure_env: None
) -> None:
    foreign = credential("theirs", 100, "made by hand")
    graph = FakeGraph([credential("k1", 100), foreign])
    result = run(capsys, graph, None, client_secret="absent")
    assert result["rc"] == 0, result.get("msg")
    assert result["removed_secret_key_ids"] == ["k1"]
    assert result["foreign_secrets"] == ["theirs (made by hand)"]
    assert graph.key_ids() == ["theirs"]
