# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client secret lifecycle of entra_application: minted only where it is stored, never orphaned.

This module is private to the collection: its names may change in any release.

Rules (documented in roles/entra_app/README.md):

* A client secret (password credential) is the collection's when its display name is the
  collection's prefix, a space and its UTC creation time (``zerotrust-aks 2026-01-02T03:04:05Z``).
  Any other credential is foreign: reported, never changed or removed.
* The Key Vault secret says which credential it holds: its tag ``zerotrust-aks-key-id``. When a
  new credential replaces one that is still valid, the vault also records the replaced one in
  ``zerotrust-aks-previous-key-id`` and the time of the replacement in ``zerotrust-aks-rotated-at``:
  running pods keep the old value until they restart, so the previous credential stays valid for a
  grace period, then a later run removes it.
* Every other credential of the collection is an orphan (left by a run that stopped between
  ``addPassword`` and the Key Vault write, expired, or out of its grace period) and is removed on
  every run.
* A new credential is made only with a vault to hold it, and its value goes to Key Vault in the
  same run. When that write fails, the new credential is removed again before the run fails, so
  no valid credential exists whose value nobody holds.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import AzureRestError
from ansible_collections.zerotrust.aks.plugins.module_utils._cookie_secret import fingerprint
from ansible_collections.zerotrust.aks.plugins.module_utils._entra import UTC, format_time, parse_time

TAG_KEY_ID = "zerotrust-aks-key-id"
TAG_EXPIRES = "zerotrust-aks-expires"
TAG_PREVIOUS_KEY_ID = "zerotrust-aks-previous-key-id"
TAG_ROTATED_AT = "zerotrust-aks-rotated-at"
CONTENT_TYPE = "text/plain"
# Stands for a client secret that check mode would make, in the diff and the fingerprint.
NEW = "(new)"
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
STAMP_PATTERN = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
KEYVAULT_API_VERSION = "7.4"
# Key Vault secret names: https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates
SECRET_NAME = re.compile(r"\A[0-9A-Za-z-]{1,127}\Z")
FORBIDDEN_RETRY_INTERVAL = 10.0
# Recovery of a soft-deleted secret is asynchronous: the secret answers 404 for a moment.
RECOVERY_POLLS = 30
RECOVERY_INTERVAL = 2.0


class SecretLifecycleError(Exception):
    """A failure of the lifecycle, with its cause; never carries a secret value."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


GRACE_HOURS = (0, 8760)


def option_errors(params: dict[str, t.Any]) -> list[str]:
    """What is wrong with the module's client secret options (``client_secret``, ``keyvault_*``, grace)."""
    errors = []
    uri = params.get("keyvault_uri")
    if params["client_secret"] == "present" and not uri:  # noqa: S105 - an option's value, not a password
        errors.append(
            "client_secret=present needs keyvault_uri: a client secret is made only when its value can be "
            "stored in Key Vault in the same run (use client_secret=ignore to leave client secrets alone)"
        )
    if uri and not str(uri).startswith("https://"):
        errors.append(f"keyvault_uri must be an https:// URL, got {uri!r}")
    if not SECRET_NAME.match(str(params["keyvault_secret_name"])):
        errors.append(
            f"keyvault_secret_name must be 1 to 127 letters, digits and hyphens, got {params['keyvault_secret_name']!r}"
        )
    low, high = GRACE_HOURS
    if not low <= params["secret_rotation_grace_hours"] <= high:
        errors.append(
            f"secret_rotation_grace_hours must be between {low} and {high}, got {params['secret_rotation_grace_hours']}"
        )
    return errors


# --- ownership --------------------------------------------------------------------------------


def credential_display_name(prefix: str, now: dt.datetime) -> str:
    """The display name of a credential the collection makes: prefix and UTC creation time."""
    return f"{prefix} {now.astimezone(UTC).strftime(STAMP_FORMAT)}"


def is_collection_credential(credential: dict[str, t.Any], prefix: str) -> bool:
    name = str(credential.get("displayName") or "")
    return re.fullmatch(re.escape(prefix) + " " + STAMP_PATTERN, name) is not None


def collection_credentials(passwords: t.Iterable[dict[str, t.Any]], prefix: str) -> list[dict[str, t.Any]]:
    return [p for p in passwords if is_collection_credential(p, prefix)]


def foreign_credentials(passwords: t.Iterable[dict[str, t.Any]], prefix: str) -> list[dict[str, t.Any]]:
    return [p for p in passwords if not is_collection_credential(p, prefix)]


def describe(credentials: t.Iterable[dict[str, t.Any]]) -> list[str]:
    """``<key id> (<display name>)`` of each credential, sorted; never a value."""
    return sorted(f"{key_id(c)} ({c.get('displayName') or ''})" for c in credentials)


def key_id(credential: dict[str, t.Any] | None) -> str:
    return str((credential or {}).get("keyId") or "").lower()


def _find(credentials: list[dict[str, t.Any]], wanted: str) -> dict[str, t.Any] | None:
    if not wanted:
        return None
    return next((c for c in credentials if key_id(c) == wanted.lower()), None)


def _expired(credential: dict[str, t.Any], now: dt.datetime) -> bool:
    end = parse_time(credential.get("endDateTime"))
    return end is not None and end <= now


# --- what the vault holds ---------------------------------------------------------------------


@dataclass
class StoredSecret:
    """The Key Vault secret's current version, as far as the lifecycle needs it."""

    exists: bool = False
    key_id: str = ""
    previous_key_id: str = ""
    rotated_at: dt.datetime | None = None
    version: str = ""
    fingerprint: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Soft-deleted: Key Vault refuses a new secret of the name until it is recovered.
    deleted: bool = False

    @classmethod
    def from_bundle(cls, bundle: dict[str, t.Any] | None, *, deleted: bool = False) -> StoredSecret:
        if not bundle:
            return cls()
        tags = {str(k): str(v) for k, v in (bundle.get("tags") or {}).items()}
        rotated_at = _parse_tag_time(tags.get(TAG_ROTATED_AT))
        if rotated_at is None and tags.get(TAG_PREVIOUS_KEY_ID):
            # Without the tag, the version's creation time is when the previous one was replaced.
            created = (bundle.get("attributes") or {}).get("created")
            if isinstance(created, (int, float)):
                rotated_at = dt.datetime.fromtimestamp(created, UTC)
        value = bundle.get("value")
        return cls(
            exists=True,
            key_id=tags.get(TAG_KEY_ID, "").lower(),
            previous_key_id=tags.get(TAG_PREVIOUS_KEY_ID, "").lower(),
            rotated_at=rotated_at,
            version=version_of(bundle),
            fingerprint=fingerprint(value) if isinstance(value, str) and value else "",
            tags=tags,
            deleted=deleted,
        )


def version_of(bundle: dict[str, t.Any] | None) -> str:
    return str((bundle or {}).get("id", "")).rstrip("/").rsplit("/", 1)[-1] if bundle else ""


def _parse_tag_time(value: str | None) -> dt.datetime | None:
    try:
        parsed: dt.datetime | None = parse_time(value)
    except ValueError:
        return None
    return parsed


# --- the decision -----------------------------------------------------------------------------


@dataclass
class SecretPlan:
    mint: bool
    reason: str
    # The credential whose value the vault holds, when it stays (no new one is made).
    current: dict[str, t.Any] | None
    # The replaced credential kept for the grace period (before minting: the one the vault records).
    previous: dict[str, t.Any] | None
    previous_revoke_after: dt.datetime | None
    # The collection's credentials nobody holds: removed before anything is made.
    orphans: list[dict[str, t.Any]]
    # Removed once a new credential is stored: the previous one it displaces.
    displaced: list[dict[str, t.Any]]
    foreign: list[dict[str, t.Any]]


def plan_secret(
    passwords: t.Iterable[dict[str, t.Any]],
    stored: StoredSecret,
    *,
    prefix: str,
    now: dt.datetime,
    renew_days: int,
    grace: dt.timedelta,
    rotate: bool,
) -> SecretPlan:
    """Which credential to keep, which to remove, and whether to make a new one.

    The vault's current credential is kept while it stays valid for more than ``renew_days``;
    the previous one it records is kept until ``rotated_at + grace``. All other collection
    credentials are orphans. When a new credential is made, the current one (if still valid)
    becomes the previous one and the older previous one is displaced.
    """
    passwords = list(passwords)
    ours = collection_credentials(passwords, prefix)
    current = _find(ours, stored.key_id)
    if current is not None and _expired(current, now):
        current = None
    previous = None
    revoke_after = None
    if stored.previous_key_id and stored.previous_key_id != stored.key_id and stored.rotated_at is not None:
        revoke_after = stored.rotated_at + grace
        candidate = _find(ours, stored.previous_key_id)
        if candidate is not None and now < revoke_after and not _expired(candidate, now):
            previous = candidate
    if previous is None:
        revoke_after = None
    kept = [c for c in (current, previous) if c is not None]
    orphans = [c for c in ours if all(c is not k for k in kept)]

    mint = True
    if rotate:
        reason = "rotation was requested"
    elif not stored.exists:
        reason = "Key Vault holds no client secret yet"
    elif not stored.key_id:
        reason = f"the Key Vault secret carries no {TAG_KEY_ID} tag, so which credential it holds is unknown"
    elif current is None and _find(passwords, stored.key_id) is not None and not _find(ours, stored.key_id):
        reason = (
            f"the stored client secret {stored.key_id} was not made by the collection (its name does not start with "
            f"{prefix!r} and a time): the vault gets one the collection manages, the other one is left alone"
        )
    elif current is None:
        reason = f"the stored client secret {stored.key_id} is no longer on the application or has expired"
    else:
        end = parse_time(current.get("endDateTime"))
        if end is not None and end <= now + dt.timedelta(days=renew_days):
            reason = f"the stored client secret {stored.key_id} expires on {format_time(end)}, within {renew_days} days"
        else:
            mint = False
            until = format_time(end) if end is not None else "no expiry"
            reason = f"the stored client secret {stored.key_id} is valid until {until}"
    displaced: list[dict[str, t.Any]] = []
    if mint:
        # The credential the vault holds now is the one running pods use until they restart.
        displaced = [previous] if previous is not None else []
        previous, revoke_after = current, (now + grace if current is not None else None)
        current = None
    return SecretPlan(
        mint=mint,
        reason=reason,
        current=current,
        previous=previous,
        previous_revoke_after=revoke_after,
        orphans=orphans,
        displaced=displaced,
        foreign=foreign_credentials(passwords, prefix),
    )


def stored_tags(
    new: dict[str, t.Any], *, end: str, previous: dict[str, t.Any] | None, now: dt.datetime
) -> dict[str, str]:
    """Tags of the Key Vault secret that holds ``new``."""
    tags = {TAG_KEY_ID: key_id(new), TAG_EXPIRES: end}
    if previous is not None:
        tags[TAG_PREVIOUS_KEY_ID] = key_id(previous)
        tags[TAG_ROTATED_AT] = format_time(now)
    return tags


# --- the Key Vault data plane -----------------------------------------------------------------


def keyvault_cause(exc: BaseException) -> str:
    """The status, code and message of a failed call (Key Vault's inner error code too), never a value."""
    if isinstance(exc, AzureRestError):
        inner = ""
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("innererror"), dict):
            inner = str(error["innererror"].get("code") or "")
        return f"{exc}" + (f" (inner error {inner})" if inner else "")
    return f"{type(exc).__name__}: {exc}"


class KeyVaultSecrets:
    """One secret of one vault, through an ``AzureRestClient`` for the vault's URI.

    A 403 is retried for ``forbidden_retry_seconds``: a new role assignment takes minutes to reach
    the data plane (https://learn.microsoft.com/azure/key-vault/general/rbac-guide).
    """

    def __init__(
        self,
        client: t.Any,
        name: str,
        *,
        forbidden_retry_seconds: float = 0,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.name = name
        self.forbidden_retry_seconds = forbidden_retry_seconds
        self.sleep = sleep
        self.clock = clock
        self.forbidden_waited = 0.0
        self.params = {"api-version": KEYVAULT_API_VERSION}

    def call(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        deadline = self.clock() + self.forbidden_retry_seconds
        while True:
            try:
                return self.client.request(method, path, params=self.params, **kwargs)
            except AzureRestError as exc:
                if exc.status != 403 or self.clock() >= deadline:
                    raise
                self.sleep(FORBIDDEN_RETRY_INTERVAL)
                self.forbidden_waited += FORBIDDEN_RETRY_INTERVAL

    def read(self) -> StoredSecret:
        answer = self.call("GET", f"secrets/{self.name}", ok=(200, 404))
        if answer.status == 200:
            return StoredSecret.from_bundle(answer.body)
        deleted = self.call("GET", f"deletedsecrets/{self.name}", ok=(200, 404))
        if deleted.status == 200:
            return StoredSecret.from_bundle(deleted.body, deleted=True)
        return StoredSecret()

    def recover(self) -> StoredSecret:
        self.call("POST", f"deletedsecrets/{self.name}/recover")
        for _attempt in range(RECOVERY_POLLS):
            answer = self.call("GET", f"secrets/{self.name}", ok=(200, 404))
            if answer.status == 200:
                return StoredSecret.from_bundle(answer.body)
            self.sleep(RECOVERY_INTERVAL)
        raise SecretLifecycleError(
            f"the Key Vault secret {self.name} was recovered but did not come back within "
            f"{RECOVERY_POLLS * RECOVERY_INTERVAL:.0f}s"
        )

    def write(self, value: str, tags: dict[str, str]) -> str:
        body = {"value": value, "contentType": CONTENT_TYPE, "tags": tags}
        written = self.call("PUT", f"secrets/{self.name}", body=body).body
        return version_of(written)


# --- the lifecycle ----------------------------------------------------------------------------


class ClientSecretLifecycle:
    """Apply a :class:`SecretPlan` through Graph and Key Vault, and describe it.

    ``graph`` is an ``AzureRestClient`` for Microsoft Graph v1.0; ``vault`` a
    :class:`KeyVaultSecrets`. ``hide`` receives each secret value the run sees (the module adds
    it to ``no_log_values``) and ``warn`` each warning. ``replication_retry`` wraps the
    ``addPassword`` call of an application created moments ago.
    """

    def __init__(
        self,
        graph: t.Any,
        vault: KeyVaultSecrets,
        *,
        app_object_id: str,
        check_mode: bool,
        hide: t.Callable[[str], None],
        warn: t.Callable[[str], None],
        replication_retry: t.Callable[[t.Callable[[], t.Any]], t.Any] = lambda call: call(),
    ) -> None:
        self.graph = graph
        self.vault = vault
        self.app_object_id = app_object_id
        self.check_mode = check_mode
        self.hide = hide
        self.warn = warn
        self.replication_retry = replication_retry
        self.results: dict[str, t.Any] = {}
        self.changed = False

    def run(
        self,
        passwords: list[dict[str, t.Any]],
        *,
        prefix: str,
        now: dt.datetime,
        expiry_days: int,
        renew_days: int,
        grace_hours: int,
        rotate: bool,
    ) -> dict[str, t.Any]:
        """Converge; return the module's secret results (``changed`` among them)."""
        ours_before = sorted(key_id(c) for c in collection_credentials(passwords, prefix))
        stored = self.read_vault()
        if stored is None:
            reason = "Key Vault refused reading the client secret (check mode)"
            self.results["secret_reason"] = reason
            return self.finish(ours_before, ours_before)
        plan = plan_secret(
            passwords,
            stored,
            prefix=prefix,
            now=now,
            renew_days=renew_days,
            grace=dt.timedelta(hours=grace_hours),
            rotate=rotate,
        )
        removed = [*plan.orphans, *plan.displaced]
        kept = [key_id(c) for c in (plan.current, plan.previous) if c is not None]
        self.results.update(
            secret_reason=plan.reason,
            secret_key_id=key_id(plan.current),
            secret_end_date_time=str((plan.current or {}).get("endDateTime") or ""),
            secret_fingerprint=stored.fingerprint if not plan.mint else "",
            secret_version=stored.version if not plan.mint else "",
            previous_secret_key_id=key_id(plan.previous),
            previous_secret_revoke_after=format_time(plan.previous_revoke_after) if plan.previous_revoke_after else "",
            removed_secret_key_ids=sorted(key_id(c) for c in removed),
            foreign_secrets=describe(plan.foreign),
        )
        if removed or plan.mint:
            self.changed = True
        after = sorted(kept) + ([NEW] if plan.mint else [])
        if self.check_mode:
            if plan.mint:
                self.results["secret_fingerprint"] = NEW
            return self.finish(ours_before, after)
        # Orphans first: whatever happens next, no credential nobody holds survives this run.
        self.remove(plan.orphans)
        if plan.mint:
            self.mint_and_store(prefix=prefix, now=now, expiry_days=expiry_days, previous=plan.previous)
            self.remove(plan.displaced)
        return self.finish(ours_before, after)

    def finish(self, before: list[str], after: list[str]) -> dict[str, t.Any]:
        self.results["changed"] = self.changed
        self.results["diff_before"] = before
        self.results["diff_after"] = after
        return self.results

    def read_vault(self) -> StoredSecret | None:
        """The stored secret (recovered first when soft-deleted); ``None`` when check mode may not read it."""
        try:
            stored = self.vault.read()
        except AzureRestError as exc:
            if exc.status == 403 and self.check_mode:
                self.warn(
                    f"Key Vault refused reading the secret {self.vault.name} "
                    f"({keyvault_cause(exc)}); check mode cannot say whether a client secret would be made"
                )
                return None
            raise SecretLifecycleError(
                f"reading the Key Vault secret {self.vault.name} failed: {keyvault_cause(exc)}",
                status=exc.status,
                code=exc.code,
            ) from exc
        finally:
            self.report_wait()
        if stored.deleted:
            self.changed = True
            self.results["secret_recovered"] = True
            if not self.check_mode:
                try:
                    stored = self.vault.recover()
                except AzureRestError as exc:
                    raise SecretLifecycleError(
                        f"recovering the soft-deleted Key Vault secret {self.vault.name} failed: {keyvault_cause(exc)}",
                        status=exc.status,
                        code=exc.code,
                    ) from exc
        return stored

    def report_wait(self) -> None:
        if self.vault.forbidden_waited:
            self.results["forbidden_waited_seconds"] = int(self.vault.forbidden_waited)

    def remove(self, credentials: list[dict[str, t.Any]]) -> None:
        for credential in credentials:
            # 404: already gone (removed by hand or by a concurrent run), which is what was wanted.
            self.graph.request(
                "POST",
                f"applications/{self.app_object_id}/removePassword",
                body={"keyId": credential["keyId"]},
                ok=(200, 204, 404),
            )

    def mint_and_store(
        self, *, prefix: str, now: dt.datetime, expiry_days: int, previous: dict[str, t.Any] | None
    ) -> None:
        end = format_time(now + dt.timedelta(days=expiry_days))
        body = {"passwordCredential": {"displayName": credential_display_name(prefix, now), "endDateTime": end}}
        credential = self.replication_retry(
            lambda: self.graph.request("POST", f"applications/{self.app_object_id}/addPassword", body=body).body
        )
        value = str(credential.get("secretText") or "")
        new_key_id = key_id(credential)
        if value:
            self.hide(value)
        end = str(credential.get("endDateTime") or end)
        try:
            if not value:
                raise SecretLifecycleError("Microsoft Graph returned no secretText for the new client secret")
            version = self.vault.write(value, stored_tags(credential, end=end, previous=previous, now=now))
        except Exception as exc:
            self.report_wait()
            # A refusal (4xx) stored nothing; after a 5xx or a lost connection the write may have
            # landed, and revoking the credential the vault then holds would break the login.
            refused = isinstance(exc, AzureRestError) and 400 <= exc.status < 500
            landed = None if refused else self.stored_anyway(new_key_id)
            if landed is None:
                self.store_failed(exc, new_key_id)
            version = landed
            # The write reached the vault although its answer did not reach us: the vault holds
            # the new value, so the new credential stays.
            self.warn(f"storing the client secret reported {keyvault_cause(exc)}, but Key Vault holds {new_key_id}")
        self.report_wait()
        self.results.update(
            secret_created=True,
            secret_key_id=new_key_id,
            secret_end_date_time=end,
            secret_fingerprint=fingerprint(value),
            secret_version=version,
        )

    def store_failed(self, exc: Exception, new_key_id: str) -> t.NoReturn:
        """Remove the credential whose value could not be stored, then fail with the cause."""
        cause = keyvault_cause(exc)
        status = exc.status if isinstance(exc, (AzureRestError, SecretLifecycleError)) else None
        code = exc.code if isinstance(exc, (AzureRestError, SecretLifecycleError)) else ""
        try:
            self.graph.request(
                "POST",
                f"applications/{self.app_object_id}/removePassword",
                body={"keyId": new_key_id},
                ok=(200, 204, 404),
            )
        except Exception as removal:  # reported with the cause of the store failure
            raise SecretLifecycleError(
                f"storing the new client secret {new_key_id} in the Key Vault secret {self.vault.name} failed: "
                f"{cause}; removing it from the application failed too ({keyvault_cause(removal)}), "
                "the next run removes it",
                status=status,
                code=code,
            ) from exc
        raise SecretLifecycleError(
            f"storing the new client secret {new_key_id} in the Key Vault secret {self.vault.name} failed: {cause}; "
            "the new client secret was removed from the application again",
            status=status,
            code=code,
        ) from exc

    def stored_anyway(self, new_key_id: str) -> str | None:
        """The vault's version when it holds ``new_key_id`` after all; ``None`` otherwise or when unreadable."""
        try:
            answer = self.vault.client.request(
                "GET", f"secrets/{self.vault.name}", params=self.vault.params, ok=(200, 404)
            )
        except Exception:  # the vault cannot be read: the store counts as failed
            return None
        if answer.status != 200:
            return None
        stored = StoredSecret.from_bundle(answer.body)
        return stored.version if stored.key_id == new_key_id else None
