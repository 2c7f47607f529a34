# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.aks_keyvault_addon's concurrency: If-Match, 412 re-reads, 409 waits."""

from __future__ import annotations

import typing as t

import pytest

# The module runs on azure.azcollection's base class, which imports the azure SDKs. ansible-test's
# units environment does not install them: there this file is skipped, and scripts/test units
# runs it again with the project's virtualenv, which has them (stage "units", second step).
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.module_utils import _aks_addon
from ansible_collections.zerotrust.aks.plugins.modules import aks_keyvault_addon
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import (
    ARM,
    SUBSCRIPTION,
    Answer,
    FakeSession,
    Request,
    VirtualClock,
    fake_azure,
    warnings,
)

CLUSTER_PATH = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks"
)
CLUSTER = CLUSTER_PATH + "$"
OPERATION = f"{ARM}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/x/operations/op1"
BUSY = Answer(
    409,
    {
        "error": {
            "code": "OperationNotAllowed",
            "message": "Operation is not allowed: Another operation (Updating) is in progress, please wait for it "
            "to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details",
        }
    },
)
STALE = Answer(412, {"error": {"code": "PreconditionFailed", "message": "eTag mismatch"}})


def cluster(etag: str = "e1", enabled: bool = False) -> dict[str, t.Any]:
    addon: dict[str, t.Any] = {"enabled": enabled}
    if enabled:
        addon["config"] = {"enableSecretRotation": "true", "rotationPollInterval": "2m"}
        addon["identity"] = {"clientId": "c1", "objectId": "o1", "resourceId": "r1"}
    return {
        "id": CLUSTER_PATH,
        "name": "aks",
        "location": "westeurope",
        "eTag": etag,
        "properties": {
            "provisioningState": "Succeeded",
            "networkProfile": {"networkPolicy": "cilium"},
            "addonProfiles": {"azureKeyvaultSecretsProvider": addon},
        },
    }


def accepted(request: Request) -> Answer:
    return Answer(200, request.body, {"Azure-AsyncOperation": OPERATION})


def run(
    capsys: pytest.CaptureFixture[str], session: FakeSession, clock: VirtualClock | None = None, **args: t.Any
) -> dict[str, t.Any]:
    args = {"resource_group": "rg", "name": "aks", "auth_source": "env", **args}
    session.on("GET", "/operations/op1$", Answer(200, {"status": "Succeeded"}))
    with fake_azure(session, clock or VirtualClock()):
        result: dict[str, t.Any] = utils.run_module(aks_keyvault_addon.main, capsys, **args)
    return result


def test_put_carries_if_match_and_no_etag_in_the_body(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster("e1")), Answer(200, cluster("e2", enabled=True)))
    session.on("PUT", CLUSTER, accepted)
    result = run(capsys, session)
    assert result["rc"] == 0 and result["changed"] is True, result
    (put,) = session.calls("PUT")
    assert put.headers["If-Match"] == "e1"
    assert "eTag" not in put.body and "provisioningState" not in put.body["properties"]
    assert result["identity_client_id"] == "c1"
    assert result["waited_for_operation"] == 0 and result["precondition_retries"] == 0


def test_without_wait_the_operation_url_is_returned_unpolled(capsys: pytest.CaptureFixture[str]) -> None:
    """The role polls the operation in a task of its own, so a run shows a line at every poll."""
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster("e1")))
    session.on("PUT", CLUSTER, accepted)
    result = run(capsys, session, wait=False)
    assert result["rc"] == 0 and result["changed"] is True, result
    assert result["operation_url"] == OPERATION
    assert [c.path for c in session.calls("GET")] == [CLUSTER_PATH]  # the operation was not polled


def test_with_wait_the_operation_is_polled_and_no_url_returned(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster("e1")), Answer(200, cluster("e2", enabled=True)))
    session.on("PUT", CLUSTER, accepted)
    result = run(capsys, session)
    assert result["operation_url"] == ""
    assert any(c.path.endswith("/operations/op1") for c in session.calls("GET"))


def test_nothing_to_do_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster(enabled=True)))
    result = run(capsys, session)
    assert result["changed"] is False and session.writes == []


def test_check_mode_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster()))
    result = run(capsys, session, _ansible_check_mode=True)
    assert result["changed"] is True and session.writes == []


def test_412_reads_again_and_uses_the_new_etag(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    changed_meanwhile = cluster("e2")
    changed_meanwhile["tags"] = {"owner": "someone"}
    session.on(
        "GET",
        CLUSTER,
        Answer(200, cluster("e1")),
        Answer(200, changed_meanwhile),
        Answer(200, cluster("e3", enabled=True)),
    )
    session.on("PUT", CLUSTER, STALE, accepted)
    result = run(capsys, session)
    assert result["rc"] == 0 and result["precondition_retries"] == 1
    first, second = session.calls("PUT")
    assert (first.headers["If-Match"], second.headers["If-Match"]) == ("e1", "e2")
    # The second PUT starts from the cluster as read again: the other change survives.
    assert second.body["tags"] == {"owner": "someone"}
    assert any("changed between read and write (412 PreconditionFailed)" in w for w in warnings(result))


def test_412_is_retried_a_bounded_number_of_times(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster()))
    session.on("PUT", CLUSTER, STALE)
    result = run(capsys, session)
    assert result["rc"] == 1 and result["status"] == 412
    assert len(session.calls("PUT")) == aks_keyvault_addon.PRECONDITION_RETRIES + 1
    assert "managed cluster aks (resource group rg)" in result["msg"] and "another tool" in result["msg"]


def test_409_waits_for_the_running_operation(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on(
        "GET",
        CLUSTER,
        Answer(200, cluster()),
        Answer(200, cluster()),
        Answer(200, cluster()),
        Answer(200, cluster(enabled=True)),
    )
    session.on("PUT", CLUSTER, BUSY, BUSY, accepted)
    result = run(capsys, session, clock, poll_interval=5)
    assert result["rc"] == 0 and result["changed"] is True, result
    assert clock.sleeps[:2] == [5.0, 5.0]
    assert result["waited_for_operation"] == 10.0
    (warning,) = [w for w in warnings(result) if "busy" in w]
    assert "managed cluster aks (resource group rg) was busy" in warning and "Another operation (Updating)" in warning
    assert "waited 10s" in warning


def test_409_then_nothing_left_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster()), Answer(200, cluster(enabled=True)))
    session.on("PUT", CLUSTER, BUSY)
    result = run(capsys, session)
    assert result["rc"] == 0 and result["changed"] is False and len(session.calls("PUT")) == 1


def test_409_gives_up_at_busy_timeout_naming_cluster_and_cause(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster()))
    session.on("PUT", CLUSTER, BUSY)
    result = run(capsys, session, clock, busy_timeout=60, poll_interval=25)
    assert result["rc"] == 1 and result["error_code"] == "OperationNotAllowed"
    assert clock.sleeps == [25.0, 25.0, 10.0]
    assert "managed cluster aks (resource group rg) was still busy with another operation after 60s" in result["msg"]
    assert "Another operation (Updating) is in progress" in result["msg"]
    assert result["waited_for_operation"] == 60


def test_throttled_read_is_retried(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on(
        "GET",
        CLUSTER,
        Answer(429, {"error": {"code": "TooManyRequests", "message": "x"}}, {"Retry-After": "4"}),
        Answer(200, cluster(enabled=True)),
    )
    result = run(capsys, session, clock)
    assert result["rc"] == 0 and clock.sleeps == [4.0]
    assert any("retried 1 Azure request(s) (1x 429 TooManyRequests)" in w for w in warnings(result))


def test_without_etag_no_if_match(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession()
    old = cluster()
    del old["eTag"]
    session.on("GET", CLUSTER, Answer(200, old), Answer(200, cluster(enabled=True)))
    session.on("PUT", CLUSTER, accepted)
    run(capsys, session)
    assert "If-Match" not in session.calls("PUT")[0].headers


def test_409_for_another_reason_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", CLUSTER, Answer(200, cluster()))
    stopped = {"error": {"code": "OperationNotAllowed", "message": "The cluster is stopped; start it first."}}
    session.on("PUT", CLUSTER, Answer(409, stopped))
    result = run(capsys, session, clock)
    assert result["rc"] == 1 and clock.sleeps == [] and "The cluster is stopped" in result["msg"]


@pytest.mark.parametrize(
    "message",
    [
        "Operation is not allowed: Another operation (Updating) is in progress, please wait for it to finish "
        "before starting a new operation. See https://aka.ms/aks-pending-operation for more details",
        "Operation is not allowed because there's an in progress update managed cluster operation (operation ID: x) "
        "on the managed cluster started on UTC y. Please wait for it to finish before starting a new operation.",
    ],
)
def test_busy_messages(message: str) -> None:
    assert _aks_addon.is_busy(409, "OperationNotAllowed", message)
    assert not _aks_addon.is_busy(400, "OperationNotAllowed", message)
