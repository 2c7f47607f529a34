#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keyvault_secret
short_description: Read or set an Azure Key Vault secret, recovering it when it is soft-deleted
version_added: 0.1.0
description:
  - Without O(value), reads the secret and returns its value in RV(secret) (empty when there is none).
  - With O(value), sets the secret when its current value, content type or tags differ, and leaves it
    alone otherwise, so a re-run writes nothing.
  - A soft-deleted secret (Key Vault keeps deleted secrets for the retention period, and refuses to
    create one with the same name meanwhile) is recovered first instead of failing, when O(recover=true).
  - Compares values, never prints them; RV(fingerprint) is a short SHA-256 tag to see whether a value changed.
  - "Run the task with C(no_log: true)."
  - Authenticates exactly like azure.azcollection. C(azure.azcollection.azure_rm_keyvaultsecret) neither
    recovers soft-deleted secrets nor reports whether the value changed, hence this module.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Fingerprints only, never values.
options:
  vault_uri:
    description: The vault's URI, for example C(https://myvault.vault.azure.net/).
    type: str
    required: true
  name:
    description: Secret name (1 to 127 letters, digits and hyphens).
    type: str
    required: true
  value:
    description: The value to store. Omit to only read the secret.
    type: str
  content_type:
    description: Content type to store with the value.
    type: str
  tags:
    description: Tags to store with the value (replacing the secret's tags). Only used with O(value).
    type: dict
  recover:
    description: Recover a soft-deleted secret of this name instead of failing.
    type: bool
    default: true
  forbidden_retry_seconds:
    description:
      - Keep retrying for this long (from the first refusal) while Key Vault answers 403, because a new role
        assignment or access policy can take minutes to reach the data plane.
      - When the time is up, the error says which caller was refused, which permission it lacks and whether the
        vault checks Azure RBAC (C(ForbiddenByRbac)) or access policies (C(AccessDenied)).
    type: int
    default: 0
  api_version:
    description: Key Vault data plane API version.
    type: str
    default: "7.4"
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
  - zerotrust.aks.azure_retry
"""

EXAMPLES = r"""
- name: Read the cookie secret (recovering it if it was deleted)
  zerotrust.aks.keyvault_secret:
    vault_uri: https://zt-aks-kv.vault.azure.net/
    name: oauth2-proxy-cookie-secret
  register: current
  no_log: true

- name: Store the cookie secret
  zerotrust.aks.keyvault_secret:
    vault_uri: https://zt-aks-kv.vault.azure.net/
    name: oauth2-proxy-cookie-secret
    value: "{{ cookie.secret }}"
  no_log: true
"""

RETURN = r"""
exists:
  description: Whether the secret exists (after recovery, or would in check mode).
  returned: success
  type: bool
secret:
  description: The current value when reading (no O(value)); empty otherwise and when there is none.
  returned: success
  type: str
  sample: VALUE_HIDDEN
fingerprint:
  description: C(sha256:) and 12 hex digits of the value's SHA-256 (after the run); empty when there is none.
  returned: success
  type: str
  sample: "sha256:3f1c0e9a7b2d"
tags:
  description: The secret's tags (after the run).
  returned: success
  type: dict
version:
  description: The secret's current version id.
  returned: success
  type: str
recovered:
  description: Whether a soft-deleted secret was (or in check mode would be) recovered.
  returned: success
  type: bool
waited_for_access:
  description: Seconds Key Vault answered 403 before it let the caller in (see O(forbidden_retry_seconds)).
  returned: success
  type: float
"""

import re
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    AzureRestClient,
    AzureRestError,
    keyvault_scope,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._cookie_secret import fingerprint

SECRET_NAME = re.compile(r"\A[0-9A-Za-z-]{1,127}\Z")
RECOVERY_POLLS = 30
RECOVERY_INTERVAL = 2.0
# While Key Vault answers 403: the first retry waits this long, doubling up to the maximum.
FORBIDDEN_RETRY_FIRST = 2.0
FORBIDDEN_RETRY_MAX = 15.0
# The data actions and access-policy permissions each call needs
# (https://learn.microsoft.com/azure/key-vault/general/rbac-guide,
# https://learn.microsoft.com/azure/key-vault/general/assign-access-policy).
NEEDS = {
    "GET secrets": ("get", "Key Vault Secrets User"),
    "GET deletedsecrets": ("list", "Key Vault Secrets Officer"),
    "POST deletedsecrets": ("recover", "Key Vault Secrets Officer"),
    "PUT secrets": ("set", "Key Vault Secrets Officer"),
    "PATCH secrets": ("set", "Key Vault Secrets Officer"),
}


def refused(exc: AzureRestError, path: str, waited: float, retry_seconds: int, *, writes: bool) -> str:
    """Why Key Vault answered 403, from its error body: who was refused, what is missing, how long we retried.

    Key Vault's 403 says ``Caller: appid=...;oid=...`` and ``Action: '...'`` with ``innererror.code``
    ``ForbiddenByRbac`` on Azure RBAC vaults, and "The user, group or application 'appid=...;oid=...'
    does not have secrets get permission" (or "Caller was not found on any access policy") with
    ``AccessDenied`` on access-policy vaults (``ForbiddenByPolicy`` is also read as such).
    """
    detail = exc.detail
    caller = re.search(r"appid=([^;\s']*);oid=([^;\s']*)", detail)
    who = f"object id {caller.group(2)} (application {caller.group(1)})" if caller else "the caller"
    vault = re.search(r"(?:Vault: |on key vault ')([^;'\r\n]+)", detail)
    where = f"vault {vault.group(1)}" if vault else "the vault"
    permission, role = NEEDS.get(f"{exc.method} {path.split('/', 1)[0]}", ("get", "Key Vault Secrets User"))
    if writes:
        # A run that stores a value needs the writer's role even where it was refused a read.
        role = "Key Vault Secrets Officer"
    kind = exc.inner_code or exc.code
    if kind == "ForbiddenByRbac":
        action = re.search(r"Action: '([^']+)'", detail)
        missing = (
            f"{where} uses Azure RBAC and {who} holds no role with "
            f"{action.group(1) if action else 'the data action'} on it: assign {role} (or a role that includes it) "
            "at the vault or the secret"
        )
    elif kind in ("AccessDenied", "ForbiddenByPolicy"):
        policy = re.search(r"does not have (\w+) (\w+) permission", detail)
        needed = f"{policy.group(1)} {policy.group(2)}" if policy else f"secrets {permission}"
        missing = (
            f"{where} uses access policies and none gives {who} the {needed} permission: add an access policy "
            "with secrets get, list, set, delete and recover"
        )
    else:
        missing = f"{where} refused {who}: {detail}"
    first_line = detail.splitlines()[0] if detail else ""
    return (
        f"Key Vault answered 403 {kind} to {exc.method} {exc.url} for {waited:.0f}s "
        f"(forbidden_retry_seconds is {retry_seconds}): {missing}. A role or policy granted moments ago can take "
        f"minutes to apply; raise forbidden_retry_seconds if it was. Key Vault said: {first_line}"
    )


class KeyVaultSecret(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            vault_uri=dict(type="str", required=True),
            name=dict(type="str", required=True),
            value=dict(type="str", no_log=True),
            content_type=dict(type="str"),
            tags=dict(type="dict"),
            recover=dict(type="bool", default=True),
            forbidden_retry_seconds=dict(type="int", default=0),
            azure_retry_timeout=dict(type="int", default=600),
            api_version=dict(type="str", default="7.4"),
        )
        self.results: dict[str, t.Any] = dict(changed=False, recovered=False, waited_for_access=0.0)
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False, is_ad_resource=True)

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        if not SECRET_NAME.match(kwargs["name"]):
            self.fail(f"name must be 1 to 127 letters, digits and hyphens, got {kwargs['name']!r}")
        if not kwargs["vault_uri"].startswith("https://"):
            self.fail(f"vault_uri must be an https:// URL, got {kwargs['vault_uri']!r}")
        self.client = AzureRestClient(
            self.azure_auth.azure_credential_track2,
            kwargs["vault_uri"],
            keyvault_scope(self.azure_auth._cloud_environment),
            retry_timeout=float(kwargs["azure_retry_timeout"]),
        )
        self.params = {"api-version": kwargs["api_version"]}
        self.forbidden_retry_seconds = kwargs["forbidden_retry_seconds"]
        self.forbidden_since: float | None = None
        self.writes = kwargs["value"] is not None or kwargs["recover"]
        try:
            self.converge(kwargs)
        except AzureRestError as exc:
            self.fail(f"Key Vault request failed: {exc}", status=exc.status, error_code=exc.code)
        self.report_retries()
        return self.results

    def report_retries(self) -> None:
        client = getattr(self, "client", None)
        if client is None:
            return
        summary = client.retry_summary()
        if summary:
            self.module.warn(f"Key Vault {client.base_url}: {summary}")

    def fail(self, msg: str, **kwargs: t.Any) -> None:
        self.report_retries()
        super().fail(msg, **kwargs)

    def call(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        delay = FORBIDDEN_RETRY_FIRST
        while True:
            try:
                answer = self.client.request(method, path, params=self.params, **kwargs)
            except AzureRestError as exc:
                if exc.status != 403:
                    raise
                now = self.client.clock()
                if self.forbidden_since is None:
                    self.forbidden_since = now
                waited = now - self.forbidden_since
                remaining = self.forbidden_retry_seconds - waited
                if remaining <= 0:
                    self.results["waited_for_access"] = round(waited, 1)
                    self.fail(
                        refused(exc, path, waited, self.forbidden_retry_seconds, writes=self.writes),
                        status=403,
                        error_code=exc.inner_code or exc.code,
                        waited_for_access=round(waited, 1),
                    )
                self.client.sleep(min(delay, remaining))
                delay = min(delay * 2, FORBIDDEN_RETRY_MAX)
                continue
            if self.forbidden_since is not None and not self.results["waited_for_access"]:
                waited = self.client.clock() - self.forbidden_since
                self.results["waited_for_access"] = round(waited, 1)
                self.module.warn(
                    f"Key Vault {self.client.base_url} answered 403 for {waited:.0f}s before letting this caller "
                    "in (a new role assignment or access policy takes a while to apply)"
                )
            return answer

    def converge(self, params: dict[str, t.Any]) -> None:
        name = params["name"]
        current = self.call("GET", f"secrets/{name}", ok=(200, 404))
        bundle = current.body if current.status == 200 else None
        if bundle is None and params["recover"]:
            deleted = self.call("GET", f"deletedsecrets/{name}", ok=(200, 404))
            if deleted.status == 200:
                self.results.update(changed=True, recovered=True)
                if self.check_mode:
                    bundle = {"value": None, "tags": deleted.body.get("tags") or {}, "id": deleted.body.get("id", "")}
                else:
                    self.call("POST", f"deletedsecrets/{name}/recover")
                    bundle = self.wait_for_recovery(name)

        old_value = bundle.get("value") if bundle else None
        old_tags = (bundle or {}).get("tags") or {}
        self.results.update(
            exists=bundle is not None,
            secret="",
            tags=old_tags,
            version=str((bundle or {}).get("id", "")).rstrip("/").rsplit("/", 1)[-1] if bundle else "",
            fingerprint=fingerprint(old_value) if old_value else "",
        )

        value = params["value"]
        if value is None:
            # Reading: the value goes out in `secret` only; AnsibleModule must not mask it there.
            if old_value:
                self.module.no_log_values.discard(old_value)
                self.results["secret"] = old_value
            return

        wanted_tags = params["tags"] if params["tags"] is not None else old_tags
        wanted_tags = {str(k): str(v) for k, v in wanted_tags.items()}
        content_type = params["content_type"]
        value_differs = bundle is None or old_value != value
        meta_differs = bundle is not None and (
            wanted_tags != old_tags or (content_type is not None and content_type != bundle.get("contentType"))
        )
        if not value_differs and not meta_differs:
            return
        self.results["changed"] = True
        if self.module._diff:
            self.results["diff"] = dict(
                before=f"fingerprint: {self.results['fingerprint']}\ntags: {old_tags}\n",
                after=f"fingerprint: {fingerprint(value)}\ntags: {wanted_tags}\n",
            )
        self.results.update(exists=True, fingerprint=fingerprint(value), tags=wanted_tags)
        if self.check_mode:
            return
        if value_differs:
            body: dict[str, t.Any] = {"value": value, "tags": wanted_tags}
            if content_type is not None:
                body["contentType"] = content_type
            written = self.call("PUT", f"secrets/{name}", body=body).body
        else:
            patch: dict[str, t.Any] = {"tags": wanted_tags}
            if content_type is not None:
                patch["contentType"] = content_type
            written = self.call("PATCH", f"secrets/{name}/{self.results['version']}", body=patch).body
        self.results["version"] = str(written.get("id", "")).rstrip("/").rsplit("/", 1)[-1]

    def wait_for_recovery(self, name: str) -> dict[str, t.Any]:
        """Recovery is asynchronous: the secret answers 404 until it is back."""
        for _attempt in range(RECOVERY_POLLS):
            answer = self.call("GET", f"secrets/{name}", ok=(200, 404))
            if answer.status == 200:
                return dict(answer.body)
            self.client.sleep(RECOVERY_INTERVAL)
        self.fail(f"secret {name} was recovered but did not come back within {RECOVERY_POLLS * RECOVERY_INTERVAL:.0f}s")
        raise AssertionError("unreachable")


def main() -> None:
    KeyVaultSecret()


if __name__ == "__main__":
    main()
