# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# ruff: noqa: S105  (key ids and fingerprints compared here are test strings, not credentials)
"""Unit tests of the client secret lifecycle (module_utils/_entra_secrets.py).

Graph and the Key Vault data plane are fakes at the level of ``AzureRestClient.request``: they
keep the application's password credentials and the secret's versions, answer as the services
document it (``addPassword`` 200 with ``secretText``, ``removePassword`` 204, Key Vault 404
``SecretNotFound``, 403 ``Forbidden`` with an inner error) and record every call, so each test
can say what was written.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
import uuid

import pytest
import requests
from ansible_collections.zerotrust.aks.plugins.module_utils import _entra_secrets as secrets
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import AzureRestError, Response

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
PREFIX = "zerotrust-aks"
APP = "app-object-id"
NAME = "oauth2-proxy-client-secret"
FOREIGN = {"keyId": "f0000000-0000-0000-0000-00000000000f", "displayName": "made in the portal"}


def stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def credential(key_id: str, days: int, *, made: dt.datetime = NOW, name: str | None = None) -> dict[str, t.Any]:
    return {
        "keyId": key_id,
        "displayName": name if name is not None else f"{PREFIX} {stamp(made)}",
        "endDateTime": (NOW + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.1234567Z"),
    }


class FakeGraph:
    """applications/{id}/addPassword and removePassword of one application.

    ``list_all`` serves the module's reads before the client secret step (the application and its
    service principal), so the module tests can run the whole module on it.
    """

    base_url = "https://graph.microsoft.com/v1.0"

    def __init__(self, passwords: list[dict[str, t.Any]]) -> None:
        self.passwords = [dict(p) for p in passwords]
        self.calls: list[tuple[str, str, t.Any]] = []
        self.values: list[str] = []

    def request(
        self, method: str, path: str, *, body: t.Any = None, ok: t.Iterable[int] = (200,), **_: t.Any
    ) -> Response:
        self.calls.append((method, path, body))
        if path == f"applications/{APP}/addPassword":
            value = f"value-{uuid.uuid4().hex}"
            self.values.append(value)
            wanted = body["passwordCredential"]
            made = {
                "keyId": str(uuid.uuid4()),
                "displayName": wanted["displayName"],
                "endDateTime": wanted["endDateTime"],
            }
            self.passwords.append(made)
            return Response(200, {}, dict(made, secretText=value))
        if path == f"applications/{APP}/removePassword":
            before = len(self.passwords)
            self.passwords = [p for p in self.passwords if p["keyId"] != body["keyId"]]
            status = 204 if len(self.passwords) < before else 404
            if status not in tuple(ok):
                raise AzureRestError(method, path, status, {"error": {"code": "Request_ResourceNotFound"}})
            return Response(status, {})
        raise AssertionError(f"unexpected Graph call {method} {path}")

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, t.Any]]:
        self.calls.append(("GET", path, params))
        if path == "applications":
            return [
                {
                    "id": APP,
                    "appId": "app-id",
                    "displayName": "zerotrust-aks-oauth2-proxy",
                    "web": {"redirectUris": ["https://colors.example.com/oauth2/callback"]},
                    "passwordCredentials": [dict(p) for p in self.passwords],
                }
            ]
        if path == "servicePrincipals":
            return [{"id": "sp", "appId": "app-id"}]
        raise AssertionError(f"unexpected Graph list {path}")

    def retry_summary(self) -> str:
        return ""

    def key_ids(self) -> list[str]:
        return sorted(p["keyId"] for p in self.passwords)

    def writes(self) -> list[tuple[str, str, t.Any]]:
        return [c for c in self.calls if c[0] != "GET"]


def forbidden(method: str, path: str) -> AzureRestError:
    return AzureRestError(
        method,
        f"https://kv.vault.azure.net/{path}",
        403,
        {
            "error": {
                "code": "Forbidden",
                "message": "Caller is not authorized to perform action on resource.",
                "innererror": {"code": "ForbiddenByRbac"},
            }
        },
    )


class FakeVault:
    """secrets/{name} GET and PUT, deletedsecrets GET and recover, with switches for failures."""

    base_url = "https://kv.vault.azure.net"

    def __init__(self, tags: dict[str, str] | None = None, value: str = "stored-value") -> None:
        self.versions: list[dict[str, t.Any]] = []
        self.deleted: list[dict[str, t.Any]] = []
        self.calls: list[tuple[str, str, t.Any]] = []
        # Exceptions raised by the next PUTs (popped one by one); a `None` entry lets it through.
        self.put_errors: list[BaseException | None] = []
        self.put_lands = False  # the PUT is applied although an error is raised
        self.forbidden_calls = 0  # answer 403 to this many calls first
        if tags is not None:
            self.add(value, tags)

    def add(self, value: str, tags: dict[str, str]) -> dict[str, t.Any]:
        version = {
            "value": value,
            "id": f"https://kv.vault.azure.net/secrets/{NAME}/{uuid.uuid4().hex}",
            "contentType": "text/plain",
            "tags": dict(tags),
            "attributes": {"created": int(NOW.timestamp())},
        }
        self.versions.append(version)
        return version

    def request(
        self, method: str, path: str, *, params: t.Any = None, body: t.Any = None, ok: t.Iterable[int] = (200,)
    ) -> Response:
        assert params == {"api-version": secrets.KEYVAULT_API_VERSION}
        self.calls.append((method, path, body))
        if self.forbidden_calls:
            self.forbidden_calls -= 1
            raise forbidden(method, path)
        if method == "GET" and path == f"secrets/{NAME}":
            if not self.versions:
                return self.answer(method, path, 404, {"error": {"code": "SecretNotFound"}}, ok)
            return Response(200, {}, dict(self.versions[-1]))
        if method == "GET" and path == f"deletedsecrets/{NAME}":
            if not self.deleted:
                return self.answer(method, path, 404, {"error": {"code": "SecretNotFound"}}, ok)
            return Response(200, {}, {k: v for k, v in self.deleted[-1].items() if k != "value"})
        if method == "POST" and path == f"deletedsecrets/{NAME}/recover":
            self.versions, self.deleted = self.deleted, []
            return Response(200, {}, {})
        if method == "PUT" and path == f"secrets/{NAME}":
            error = self.put_errors.pop(0) if self.put_errors else None
            if error is None or self.put_lands:
                version = self.add(body["value"], body["tags"])
                version["contentType"] = body["contentType"]
            if error is not None:
                raise error
            return Response(200, {}, dict(version))
        raise AssertionError(f"unexpected Key Vault call {method} {path}")

    @staticmethod
    def answer(method: str, path: str, status: int, body: t.Any, ok: t.Iterable[int]) -> Response:
        if status not in tuple(ok):
            raise AzureRestError(method, path, status, body)
        return Response(status, {}, body)

    def current(self) -> dict[str, t.Any]:
        return self.versions[-1]

    def retry_summary(self) -> str:
        return ""

    def writes(self) -> list[tuple[str, str, t.Any]]:
        return [c for c in self.calls if c[0] != "GET"]


class Run:
    """One module run's lifecycle against the fakes."""

    def __init__(self, graph: FakeGraph, vault: FakeVault, *, check_mode: bool = False, forbidden: float = 0) -> None:
        self.hidden: list[str] = []
        self.warnings: list[str] = []
        self.slept: list[float] = []
        self.clock = 0.0
        self.store = secrets.KeyVaultSecrets(
            vault, NAME, forbidden_retry_seconds=forbidden, sleep=self.sleep, clock=lambda: self.clock
        )
        self.lifecycle = secrets.ClientSecretLifecycle(
            graph,
            self.store,
            app_object_id=APP,
            check_mode=check_mode,
            hide=self.hidden.append,
            warn=self.warnings.append,
        )
        self.graph = graph

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock += seconds

    def __call__(self, *, now: dt.datetime = NOW, rotate: bool = False, grace_hours: int = 24) -> dict[str, t.Any]:
        result: dict[str, t.Any] = self.lifecycle.run(
            [dict(p) for p in self.graph.passwords],
            prefix=PREFIX,
            now=now,
            expiry_days=180,
            renew_days=30,
            grace_hours=grace_hours,
            rotate=rotate,
        )
        return result


def holding(key_id: str, **extra: str) -> dict[str, str]:
    return {secrets.TAG_KEY_ID: key_id, secrets.TAG_EXPIRES: "2026-11-28T12:00:00Z", **extra}


# --- ownership ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("zerotrust-aks 2026-01-02T03:04:05Z", True),
        ("zerotrust-aks", False),
        ("zerotrust-aks-legacy", False),
        ("zerotrust-aks 2026-01-02", False),
        ("zerotrust-aks 2026-01-02T03:04:05Z copy", False),
        ("my zerotrust-aks 2026-01-02T03:04:05Z", False),
        ("", False),
    ],
)
def test_only_prefix_and_utc_stamp_names_are_the_collections(name: str, ours: bool) -> None:
    assert secrets.is_collection_credential({"displayName": name}, PREFIX) is ours


def test_the_display_name_is_the_prefix_and_the_utc_creation_time() -> None:
    later = dt.datetime(2026, 6, 1, 14, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert secrets.credential_display_name(PREFIX, later) == "zerotrust-aks 2026-06-01T12:00:00Z"


# --- minting only where it is stored -----------------------------------------------------------


def test_first_run_mints_once_and_stores_value_and_tags_in_the_same_run() -> None:
    graph, vault = FakeGraph([FOREIGN]), FakeVault()
    run = Run(graph, vault)
    result = run()
    assert result["changed"] is True
    assert result["secret_created"] is True
    [made] = [p for p in graph.passwords if p is not graph.passwords[0]]
    assert made["displayName"] == f"{PREFIX} {stamp(NOW)}"
    stored = vault.current()
    assert stored["value"] == graph.values[0]
    assert stored["contentType"] == "text/plain"
    assert stored["tags"] == {secrets.TAG_KEY_ID: made["keyId"], secrets.TAG_EXPIRES: "2026-11-28T12:00:00Z"}
    assert result["secret_key_id"] == made["keyId"]
    assert result["secret_fingerprint"].startswith("sha256:")
    assert result["foreign_secrets"] == [f"{FOREIGN['keyId']} (made in the portal)"]
    # The value is hidden from Ansible's output and never part of the results.
    assert run.hidden == graph.values
    assert graph.values[0] not in json.dumps(result)


def test_a_converged_run_reads_and_writes_nothing() -> None:
    graph = FakeGraph([credential("k1", 100), FOREIGN])
    vault = FakeVault(holding("k1"))
    result = Run(graph, vault)()
    assert result["changed"] is False
    assert "secret_created" not in result
    assert result["secret_key_id"] == "k1"
    assert graph.writes() == []
    assert vault.writes() == []
    assert result["secret_fingerprint"] == secrets.fingerprint("stored-value")


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        pytest.param({"owner": "someone"}, "carries no zerotrust-aks-key-id tag", id="untagged value"),
        pytest.param(holding("gone"), "no longer on the application", id="credential removed in Entra"),
    ],
)
def test_a_vault_holding_no_known_credential_gets_a_new_one(tags: dict[str, str], reason: str) -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(tags)
    result = Run(graph, vault)()
    assert reason in result["secret_reason"]
    assert result["secret_created"] is True
    # k1 was the collection's but nobody holds it: an orphan.
    assert "k1" not in graph.key_ids()
    assert result["removed_secret_key_ids"] == ["k1"]
    assert graph.key_ids() == [vault.current()["tags"][secrets.TAG_KEY_ID]]


def test_a_vault_holding_a_foreign_credential_gets_one_of_the_collections_and_the_foreign_one_stays() -> None:
    graph, vault = FakeGraph([FOREIGN]), FakeVault(holding(FOREIGN["keyId"]))
    result = Run(graph, vault)()
    assert "was not made by the collection" in result["secret_reason"]
    assert FOREIGN["keyId"] in graph.key_ids()
    assert result["removed_secret_key_ids"] == []


# --- store failures -----------------------------------------------------------------------------


def test_a_refused_store_removes_the_new_credential_and_shows_the_cause_not_the_value() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    vault.put_errors = [forbidden("PUT", f"secrets/{NAME}")]
    run = Run(graph, vault)
    with pytest.raises(secrets.SecretLifecycleError) as failure:
        run()
    assert graph.passwords == []
    [added] = [c for c in graph.calls if c[1].endswith("/addPassword")]
    removed = [c[2]["keyId"] for c in graph.calls if c[1].endswith("/removePassword")]
    assert len(removed) == 1
    message = str(failure.value)
    assert "403 Forbidden" in message
    assert "Caller is not authorized" in message
    assert "ForbiddenByRbac" in message
    assert "removed from the application again" in message
    assert failure.value.status == 403
    assert failure.value.code == "Forbidden"
    assert graph.values[0] not in message
    assert added[2]["passwordCredential"]["displayName"].startswith(PREFIX)


def test_a_store_that_keeps_answering_403_is_retried_for_the_forbidden_window_then_revoked() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    vault.put_errors = [forbidden("PUT", f"secrets/{NAME}") for _attempt in range(10)]
    run = Run(graph, vault, forbidden=30)
    with pytest.raises(secrets.SecretLifecycleError, match="403"):
        run()
    assert graph.passwords == []
    assert run.slept == [10.0, 10.0, 10.0]
    assert run.lifecycle.results["forbidden_waited_seconds"] == 30


def test_a_lost_connection_before_the_write_revokes() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    vault.put_errors = [requests.ConnectionError("Connection reset by peer")]
    with pytest.raises(secrets.SecretLifecycleError, match="ConnectionError: Connection reset by peer"):
        Run(graph, vault)(rotate=True)
    assert graph.key_ids() == ["k1"]
    assert vault.current()["tags"][secrets.TAG_KEY_ID] == "k1"


def test_a_write_that_landed_although_its_answer_was_lost_keeps_the_credential() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    vault.put_errors = [requests.ConnectionError("Read timed out")]
    vault.put_lands = True
    run = Run(graph, vault)
    result = run()
    [made] = graph.passwords
    assert vault.current()["tags"][secrets.TAG_KEY_ID] == made["keyId"]
    assert result["secret_created"] is True
    assert any("Key Vault holds" in w for w in run.warnings)


def test_a_failed_removal_after_a_failed_store_says_both_and_the_next_run_cleans_up() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    vault.put_errors = [forbidden("PUT", f"secrets/{NAME}")]
    original = graph.request

    def refuse_removal(method: str, path: str, **kwargs: t.Any) -> Response:
        if path.endswith("/removePassword"):
            raise requests.ConnectionError("Graph unreachable")
        return original(method, path, **kwargs)

    graph.request = refuse_removal  # type: ignore[method-assign]
    with pytest.raises(secrets.SecretLifecycleError) as failure:
        Run(graph, vault)()
    assert "removing it from the application failed too" in str(failure.value)
    assert "the next run removes it" in str(failure.value)
    [orphan] = graph.key_ids()

    graph.request = original  # type: ignore[method-assign]
    result = Run(graph, vault)()
    assert orphan in result["removed_secret_key_ids"]
    assert graph.key_ids() == [vault.current()["tags"][secrets.TAG_KEY_ID]]


# --- orphans ------------------------------------------------------------------------------------


def test_orphans_of_interrupted_runs_are_removed_and_foreign_credentials_reported() -> None:
    # Runs killed between addPassword and the store left k2 and k3; k0 expired long ago.
    passwords = [
        credential("k1", 100),
        credential("k2", 180),
        credential("k3", 180),
        credential("k0", -3),
        FOREIGN,
        credential("k9", 100, name="zerotrust-aks-by-hand"),
    ]
    graph, vault = FakeGraph(passwords), FakeVault(holding("k1"))
    result = Run(graph, vault)()
    assert result["changed"] is True
    assert "secret_created" not in result
    assert result["removed_secret_key_ids"] == ["k0", "k2", "k3"]
    assert graph.key_ids() == sorted(["k1", FOREIGN["keyId"], "k9"])
    assert result["foreign_secrets"] == sorted(
        [f"{FOREIGN['keyId']} (made in the portal)", "k9 (zerotrust-aks-by-hand)"]
    )
    assert vault.writes() == []
    assert result["diff_before"] == ["k0", "k1", "k2", "k3"]
    assert result["diff_after"] == ["k1"]


def test_a_run_killed_after_add_password_converges_to_exactly_one_credential() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    # The first run dies after addPassword: simulate it by a credential the vault never saw.
    graph.passwords.append(credential("orphan", 180))
    Run(graph, vault)()
    assert len(graph.passwords) == 1
    assert graph.key_ids() == [vault.current()["tags"][secrets.TAG_KEY_ID]]
    again = Run(graph, vault)()
    assert again["changed"] is False


# --- rotation and its grace period --------------------------------------------------------------


def test_rotation_keeps_the_previous_credential_for_the_grace_period_then_removes_it() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    result = Run(graph, vault)(rotate=True)
    new = vault.current()["tags"]
    assert result["secret_created"] is True
    assert new[secrets.TAG_PREVIOUS_KEY_ID] == "k1"
    assert new[secrets.TAG_ROTATED_AT] == stamp(NOW)
    assert result["previous_secret_key_id"] == "k1"
    assert result["previous_secret_revoke_after"] == stamp(NOW + dt.timedelta(hours=24))
    assert sorted(graph.key_ids()) == sorted(["k1", new[secrets.TAG_KEY_ID]])

    # Within the grace period: nothing to do, no write anywhere.
    within = Run(graph, vault)(now=NOW + dt.timedelta(hours=23))
    assert within["changed"] is False
    assert within["previous_secret_key_id"] == "k1"
    assert graph.writes()[-1][1].endswith("/addPassword")

    # After it: the previous credential goes, the vault is left as it is.
    writes_before = len(vault.writes())
    after = Run(graph, vault)(now=NOW + dt.timedelta(hours=25))
    assert after["changed"] is True
    assert after["removed_secret_key_ids"] == ["k1"]
    assert after["previous_secret_key_id"] == ""
    assert graph.key_ids() == [new[secrets.TAG_KEY_ID]]
    assert len(vault.writes()) == writes_before

    assert Run(graph, vault)(now=NOW + dt.timedelta(hours=26))["changed"] is False


def test_a_second_rotation_within_the_grace_period_displaces_the_oldest_after_storing() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    Run(graph, vault)(rotate=True)
    k2 = vault.current()["tags"][secrets.TAG_KEY_ID]
    result = Run(graph, vault)(now=NOW + dt.timedelta(hours=1), rotate=True)
    k3 = vault.current()["tags"][secrets.TAG_KEY_ID]
    assert vault.current()["tags"][secrets.TAG_PREVIOUS_KEY_ID] == k2
    assert result["removed_secret_key_ids"] == ["k1"]
    assert graph.key_ids() == sorted([k2, k3])
    # k1 went only after k3 was stored.
    order = [c[1].rsplit("/", 1)[-1] for c in graph.writes()]
    assert order[-2:] == ["addPassword", "removePassword"]


def test_grace_zero_removes_the_replaced_credential_on_the_next_run() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    Run(graph, vault)(rotate=True, grace_hours=0)
    assert "k1" in graph.key_ids()
    result = Run(graph, vault)(grace_hours=0)
    assert result["removed_secret_key_ids"] == ["k1"]


def test_renewal_before_expiry_makes_a_new_one_and_keeps_the_old_for_the_grace_period() -> None:
    graph, vault = FakeGraph([credential("k1", 10)]), FakeVault(holding("k1"))
    result = Run(graph, vault)()
    assert "expires on" in result["secret_reason"]
    assert "within 30 days" in result["secret_reason"]
    assert result["secret_created"] is True
    assert vault.current()["tags"][secrets.TAG_PREVIOUS_KEY_ID] == "k1"
    assert "k1" in graph.key_ids()


def test_an_expired_stored_credential_is_replaced_and_not_kept() -> None:
    graph, vault = FakeGraph([credential("k1", -1)]), FakeVault(holding("k1"))
    result = Run(graph, vault)()
    assert result["secret_created"] is True
    assert result["removed_secret_key_ids"] == ["k1"]
    assert secrets.TAG_PREVIOUS_KEY_ID not in vault.current()["tags"]


def test_without_the_rotated_at_tag_the_versions_creation_time_starts_the_grace_period() -> None:
    graph = FakeGraph([credential("k1", 100), credential("k2", 180)])
    vault = FakeVault(holding("k2", **{secrets.TAG_PREVIOUS_KEY_ID: "k1"}))
    assert Run(graph, vault)(now=NOW + dt.timedelta(hours=1))["changed"] is False
    assert Run(graph, vault)(now=NOW + dt.timedelta(hours=25))["removed_secret_key_ids"] == ["k1"]


# --- check mode ---------------------------------------------------------------------------------


def test_check_mode_writes_nothing_and_reports_what_would_change() -> None:
    passwords = [credential("k1", 10), credential("orphan", 180), FOREIGN]
    graph, vault = FakeGraph(passwords), FakeVault(holding("k1"))
    result = Run(graph, vault, check_mode=True)()
    assert graph.calls == []
    assert vault.writes() == []
    assert result["changed"] is True
    assert result["removed_secret_key_ids"] == ["orphan"]
    assert result["secret_fingerprint"] == "(new)"
    assert result["diff_after"] == ["k1", "(new)"]
    assert "secret_created" not in result


def test_check_mode_does_not_recover_a_soft_deleted_secret_but_says_it_would() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault()
    vault.deleted = [vault.add("stored-value", holding("k1"))]
    vault.versions = []
    result = Run(graph, vault, check_mode=True)()
    assert result["secret_recovered"] is True
    assert result["changed"] is True
    assert vault.writes() == []
    # The recovered secret will hold k1: no new client secret is planned.
    assert "valid until" in result["secret_reason"]


def test_check_mode_refused_by_key_vault_warns_and_plans_nothing() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    vault.forbidden_calls = 100
    run = Run(graph, vault, check_mode=True)
    result = run()
    assert result["changed"] is False
    assert "ForbiddenByRbac" in run.warnings[0]
    assert graph.calls == []


# --- Key Vault details --------------------------------------------------------------------------


def test_a_soft_deleted_secret_is_recovered_before_it_is_used() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault()
    vault.deleted = [vault.add("stored-value", holding("k1"))]
    vault.versions = []
    result = Run(graph, vault)()
    assert ("POST", f"deletedsecrets/{NAME}/recover", None) in vault.calls
    assert result["secret_recovered"] is True
    assert result["secret_key_id"] == "k1"
    assert [c for c in vault.writes() if c[0] == "PUT"] == []


def test_a_403_while_a_role_assignment_propagates_is_waited_out_and_reported() -> None:
    graph, vault = FakeGraph([credential("k1", 100)]), FakeVault(holding("k1"))
    vault.forbidden_calls = 2
    run = Run(graph, vault, forbidden=300)
    result = run()
    assert result["changed"] is False
    assert run.slept == [10.0, 10.0]
    assert result["forbidden_waited_seconds"] == 20


def test_a_read_that_stays_forbidden_fails_with_the_cause_before_anything_is_minted() -> None:
    graph, vault = FakeGraph([]), FakeVault()
    vault.forbidden_calls = 100
    with pytest.raises(secrets.SecretLifecycleError) as failure:
        Run(graph, vault, forbidden=20)()
    assert "reading the Key Vault secret" in str(failure.value)
    assert "ForbiddenByRbac" in str(failure.value)
    assert graph.calls == []


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"client_secret": "present", "keyvault_uri": None}, "needs keyvault_uri", id="no vault no mint"),
        pytest.param({"keyvault_uri": "http://kv.example"}, "https:// URL", id="plain http"),
        pytest.param({"keyvault_secret_name": "bad_name"}, "keyvault_secret_name", id="bad name"),
        pytest.param({"secret_rotation_grace_hours": -1}, "between 0 and 8760", id="negative grace"),
        pytest.param({"secret_rotation_grace_hours": 9000}, "between 0 and 8760", id="grace over a year"),
    ],
)
def test_option_errors(options: dict[str, t.Any], message: str) -> None:
    params = {
        "client_secret": "present",
        "keyvault_uri": "https://kv.vault.azure.net/",
        "keyvault_secret_name": NAME,
        "secret_rotation_grace_hours": 24,
        **options,
    }
    errors = secrets.option_errors(params)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("mode", ["absent", "ignore"])
def test_other_modes_need_no_vault(mode: str) -> None:
    params = {
        "client_secret": mode,
        "keyvault_uri": None,
        "keyvault_secret_name": NAME,
        "secret_rotation_grace_hours": 24,
    }
    assert secrets.option_errors(params) == []
