# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.arm_resource: what it sends where, and what it refuses to send."""

from __future__ import annotations

import typing as t

import pytest

# ansible-test's units environment has no azure SDKs: skipped there, run by scripts/test units' second step.
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.modules import arm_resource
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import (
    ARM,
    SUBSCRIPTION,
    Answer,
    FakeSession,
    VirtualClock,
    fake_azure,
)

IDENTITY = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i1"
)
OPERATION = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/x/operations/op1"


def run(capsys: pytest.CaptureFixture[str], session: FakeSession, **args: t.Any) -> dict[str, t.Any]:
    with fake_azure(session, VirtualClock()):
        result: dict[str, t.Any] = utils.run_module(arm_resource.main, capsys, auth_source="env", **args)
    return result


def test_a_missing_resource_is_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", IDENTITY + "$", Answer(404, {"error": {"code": "ResourceNotFound", "message": "gone"}}))
    result = run(capsys, session, url=IDENTITY, api_version="2023-01-31")
    assert result["rc"] == 0 and result["exists"] is False and result["status"] == 404
    (get,) = session.calls("GET")
    assert get.params == {"api-version": "2023-01-31"}


def test_an_operation_url_on_arm_is_read_with_its_own_api_version(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", OPERATION + "$", Answer(200, {"status": "InProgress"}))
    result = run(capsys, session, url=f"{ARM}{OPERATION}?api-version=2017-08-31")
    assert result["rc"] == 0, result
    assert result["resource"] == {"status": "InProgress"}
    (get,) = session.calls("GET")
    assert get.url.startswith(f"{ARM}{OPERATION}?api-version=2017-08-31")
    assert not get.params


def test_a_url_on_another_host_is_refused_before_any_request(capsys: pytest.CaptureFixture[str]) -> None:
    """The ARM token must never be sent anywhere but ARM."""
    session = FakeSession()
    result = run(capsys, session, url=f"https://attacker.example{OPERATION}?api-version=2017-08-31")
    assert result["rc"] == 1
    assert "url must be a resource id or a URL on Azure Resource Manager" in result["msg"]
    assert "attacker.example" in result["msg"]
    assert session.log == []


def test_a_resource_id_needs_an_api_version(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    result = run(capsys, session, url=IDENTITY)
    assert result["rc"] == 1 and "api_version is required" in result["msg"]
    assert session.log == []


def test_check_mode_sends_no_write(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    result = run(
        capsys, session, url=IDENTITY, api_version="2023-01-31", method="PUT", body={}, _ansible_check_mode=True
    )
    assert result["rc"] == 0 and result["changed"] is True and session.log == []
