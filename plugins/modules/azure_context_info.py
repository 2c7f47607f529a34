#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: azure_context_info
short_description: Tell who the Azure credential is - tenant, object id, principal type - and which subscription is used
version_added: 0.2.0
description:
  - Gets an Azure Resource Manager access token with the credential the module resolves exactly like
    azure.azcollection (environment, profile, Azure CLI, managed identity, AWX's Azure credential), and returns
    claims from it - the tenant (C(tid)), the caller's object id (C(oid)) and whether the caller is an
    application or a user - together with the subscription the credential resolves to.
  - Works for AWX's user/password Azure credential, which carries no tenant (C(AZURE_TENANT) unset), and lets a
    play grant the identity running it a role (for example Key Vault Secrets Officer on a new vault) without
    asking for its object id.
  - The token is the caller's own, fresh from the identity platform over TLS; its claims are read without
    checking its signature, as the token is only meant for Azure. The token itself is never returned.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
options: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
"""

EXAMPLES = r"""
- name: Who is deploying
  zerotrust.aks.azure_context_info:
  register: caller

- name: Let the deployer write the vault's secrets
  zerotrust.aks.role_assignment:
    scope: "{{ vault_id }}"
    assignee_object_id: "{{ caller.object_id }}"
    principal_type: "{{ caller.principal_type }}"
    role_definition_id: b86a8fe4-44ce-4948-aee5-eccb2c155cd7
"""

RETURN = r"""
tenant_id:
  description: The tenant the token was issued in (claim C(tid)).
  returned: success
  type: str
object_id:
  description: Object id of the user or service principal (managed identities included) the token is for (claim C(oid)).
  returned: success
  type: str
principal_type:
  description:
    - C(ServicePrincipal) for an application or managed identity (claim C(idtyp) is C(app), or a token with no
      user claims), else C(User); the value C(zerotrust.aks.role_assignment) takes as
      O(zerotrust.aks.role_assignment#module:principal_type).
  returned: success
  type: str
  sample: ServicePrincipal
client_id:
  description: The application (client) id that requested the token (claim C(appid) or C(azp)); empty when absent.
  returned: success
  type: str
subscription_id:
  description:
    - The subscription the credential resolves to (O(subscription_id), C(AZURE_SUBSCRIPTION_ID), the profile or
      the Azure CLI's default); empty when none.
  returned: success
  type: str
"""

import base64
import json
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule


def token_claims(token: str) -> dict[str, t.Any]:
    """The payload of a JSON Web Token, without checking its signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the access token is not a JSON Web Token (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the access token's claims do not decode: {exc}") from exc
    if not isinstance(claims, dict):
        raise ValueError("the access token's claims are not a JSON object")
    return claims


def principal_type(claims: dict[str, t.Any]) -> str:
    """``ServicePrincipal`` for application (and managed identity) tokens, else ``User``.

    ``idtyp`` is the optional claim that says it (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference);
    without it, a token with no user claims (``upn``, ``unique_name``, ``scp``: an app-only token has roles, not
    scopes) is an application's.
    """
    kind = str(claims.get("idtyp", "")).lower()
    if kind == "app":
        return "ServicePrincipal"
    if kind == "user":
        return "User"
    if any(claims.get(name) for name in ("upn", "scp", "unique_name")):
        return "User"
    return "ServicePrincipal" if claims.get("appid") or claims.get("azp") else "User"


class AzureContextInfo(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec: dict[str, t.Any] = {}
        self.results: dict[str, t.Any] = dict(changed=False)
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False, is_ad_resource=True)

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        resource_manager = self.azure_auth._cloud_environment.endpoints.resource_manager.rstrip("/")
        try:
            token = str(self.azure_auth.azure_credential_track2.get_token(resource_manager + "/.default").token)
        except Exception as exc:  # any credential failure is reported, with its cause
            self.fail(f"could not get an Azure Resource Manager token with the configured credential: {exc}")
        # The token must not reach the result, the log or an error message.
        self.module.no_log_values.add(token)
        try:
            claims = token_claims(token)
        except ValueError as exc:
            self.fail(str(exc))
        missing = [name for name in ("tid", "oid") if not claims.get(name)]
        if missing:
            self.fail(f"the access token has no {' or '.join(missing)} claim, so the caller cannot be identified")
        self.results.update(
            tenant_id=str(claims["tid"]),
            object_id=str(claims["oid"]),
            principal_type=principal_type(claims),
            client_id=str(claims.get("appid") or claims.get("azp") or ""),
            subscription_id=str(self.subscription_id or ""),
        )
        return self.results


def main() -> None:
    AzureContextInfo()


if __name__ == "__main__":
    main()
