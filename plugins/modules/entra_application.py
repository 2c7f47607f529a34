#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: entra_application
short_description: Ensure an Entra ID app registration for oauth2-proxy, its service principal and a client secret
version_added: 0.1.0
description:
  - Finds the application by its display name through Microsoft Graph (C($filter=displayName eq '...')),
    so re-runs never create a duplicate. C(azure.azcollection.azure_rm_adapplication) only matches
    by app id, and its C(password) option is broken against Graph; this module replaces both.
  - Creates the application when it is missing, single tenant (C(AzureADMyOrg)), with one web redirect
    URI C(https://<host>/oauth2/callback) per host and optional group membership claims; corrects the
    redirect URIs and group claims of an existing one.
  - Ensures the application's service principal (enterprise application) exists.
  - Adds a client secret with C(addPassword), named O(secret_display_name_prefix) plus the creation date and
    valid for O(secret_expiry_days), only when no secret this collection made stays valid for more than
    O(secret_renew_days) days (and, when O(current_key_id) is given, only when that secret is not such a
    one), or when O(rotate_secret=true). Graph shows a secret's value only once, when it is made; the
    module returns it in RV(secret) and the caller must store it (for example in Key Vault).
  - "Run the task with C(no_log: true): RV(secret) holds the new secret."
  - Authenticates exactly like azure.azcollection (environment, CLI profile, managed identity, AWX credential).
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  display_name:
    description: Display name of the application; the key by which it is found.
    type: str
    required: true
  hosts:
    description:
      - Host names users reach oauth2-proxy on. Each becomes the redirect URI C(https://<host>/oauth2/callback).
      - The application's web redirect URIs are set to exactly this list.
    type: list
    elements: str
    required: true
  group_membership_claims:
    description:
      - Groups claim to put in tokens. Leave unset to keep what the application has.
    type: str
    choices: [None, SecurityGroup, DirectoryRole, ApplicationGroup, All]
  sign_in_audience:
    description: Who may sign in. Only used when the application is created.
    type: str
    default: AzureADMyOrg
    choices: [AzureADMyOrg, AzureADMultipleOrgs]
  secret_display_name_prefix:
    description:
      - Prefix of the display name of the client secrets this module makes; secrets whose name starts
        with it count as the collection's own.
    type: str
    default: zerotrust-aks
  secret_expiry_days:
    description: Lifetime of a new client secret in days (1 to 730).
    type: int
    default: 180
  secret_renew_days:
    description:
      - Make a new secret when the collection's secret expires within this many days.
      - Must be smaller than O(secret_expiry_days).
    type: int
    default: 30
  current_key_id:
    description:
      - Key id of the secret whose value the caller holds (for example a tag on the Key Vault secret).
      - When given, only that secret counts as usable, so an empty string forces a new secret. When omitted,
        any usable secret the collection made is kept.
    type: str
  rotate_secret:
    description: Add a new secret even when a usable one exists. The old one stays valid until it expires.
    type: bool
    default: false
  remove_expired_secrets:
    description: Remove the collection's expired secrets from the application.
    type: bool
    default: true
  graph_endpoint:
    description:
      - Microsoft Graph root URL. Defaults to the cloud environment's (C(https://graph.microsoft.com) in AzureCloud).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
notes:
  - The identity running the module needs the Graph permission C(Application.ReadWrite.OwnedBy) (then it must own
    the application) or C(Application.ReadWrite.All).
seealso:
  - name: Microsoft Graph application addPassword
    description: The API that makes client secrets.
    link: https://learn.microsoft.com/graph/api/application-addpassword
"""

EXAMPLES = r"""
- name: Ensure the oauth2-proxy app registration and a client secret
  zerotrust.aks.entra_application:
    display_name: zerotrust-aks-oauth2-proxy
    hosts: [colors.example.com]
    group_membership_claims: SecurityGroup
    current_key_id: "{{ stored_key_id | default('') }}"
  register: app
  no_log: true
"""

RETURN = r"""
app_id:
  description: Application (client) id.
  returned: success
  type: str
  sample: 2d4f1f5e-6b57-4a0e-9a4b-6b0f3c3c9b0a
object_id:
  description: Object id of the application.
  returned: success
  type: str
service_principal_object_id:
  description: Object id of the application's service principal. Empty in check mode when it would be created.
  returned: success
  type: str
redirect_uris:
  description: Web redirect URIs the application has (or would have in check mode).
  returned: success
  type: list
  elements: str
secret_created:
  description: Whether a new client secret was made on this run.
  returned: success
  type: bool
secret:
  description: The new client secret's value; empty when none was made. Only in this field.
  returned: success
  type: str
  sample: VALUE_HIDDEN
secret_key_id:
  description: Key id of the new or kept secret; empty when none exists (check mode).
  returned: success
  type: str
secret_end_date_time:
  description: Expiry of the new or kept secret.
  returned: success
  type: str
secret_reason:
  description: Why a secret was made or kept.
  returned: success
  type: str
removed_secret_key_ids:
  description: Key ids of expired collection secrets removed on this run.
  returned: success
  type: list
  elements: str
"""

import datetime as dt
import time
import typing as t

from ansible_collections.azure.azcollection.plugins.module_utils.azure_rm_common import AzureRMModuleBase
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    AzureRestClient,
    AzureRestError,
    graph_base_url,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._entra import (
    GROUP_CLAIMS,
    SECRET_EXPIRY_DAYS,
    UTC,
    application_changes,
    expired_collection_credentials,
    format_time,
    is_dns_name,
    new_application_body,
    odata_quote,
    redirect_uris,
    secret_decision,
)

SP_ATTEMPTS = 6
SP_RETRY_SECONDS = 5
APP_FIELDS = "id,appId,displayName,web,groupMembershipClaims,passwordCredentials,signInAudience"


class EntraApplication(AzureRMModuleBase):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            display_name=dict(type="str", required=True),
            hosts=dict(type="list", elements="str", required=True),
            group_membership_claims=dict(type="str", choices=list(GROUP_CLAIMS)),
            sign_in_audience=dict(type="str", default="AzureADMyOrg", choices=["AzureADMyOrg", "AzureADMultipleOrgs"]),
            secret_display_name_prefix=dict(type="str", default="zerotrust-aks", no_log=False),
            secret_expiry_days=dict(type="int", default=180, no_log=False),
            secret_renew_days=dict(type="int", default=30, no_log=False),
            current_key_id=dict(type="str", no_log=False),
            rotate_secret=dict(type="bool", default=False),
            remove_expired_secrets=dict(type="bool", default=True),
            graph_endpoint=dict(type="str"),
        )
        self.results: dict[str, t.Any] = dict(changed=False)
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False, is_ad_resource=True)

    def validate(self, params: dict[str, t.Any]) -> None:
        low, high = SECRET_EXPIRY_DAYS
        if not low <= params["secret_expiry_days"] <= high:
            self.fail(f"secret_expiry_days must be between {low} and {high}, got {params['secret_expiry_days']}")
        if not 0 <= params["secret_renew_days"] < params["secret_expiry_days"]:
            self.fail(
                f"secret_renew_days must be at least 0 and smaller than secret_expiry_days "
                f"({params['secret_expiry_days']}), got {params['secret_renew_days']}"
            )
        bad = [host for host in params["hosts"] if not is_dns_name(host)]
        if not params["hosts"] or bad:
            self.fail(f"hosts must be a non-empty list of DNS names; not DNS names: {bad}")
        if not params["display_name"].strip():
            self.fail("display_name must not be empty")

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self.validate(kwargs)
        graph = AzureRestClient(
            self.azure_auth.azure_credential_track2,
            graph_base_url(self.azure_auth._cloud_environment, kwargs["graph_endpoint"]) + "/v1.0",
            graph_base_url(self.azure_auth._cloud_environment, kwargs["graph_endpoint"]) + "/.default",
        )
        try:
            self.converge(graph, kwargs)
        except AzureRestError as exc:
            self.fail(f"Microsoft Graph request failed: {exc}", status=exc.status, error_code=exc.code)
        return self.results

    def converge(self, graph: AzureRestClient, params: dict[str, t.Any]) -> None:
        uris = redirect_uris(params["hosts"])
        claims = params["group_membership_claims"]
        prefix = params["secret_display_name_prefix"]
        now = dt.datetime.now(UTC)

        found = graph.list_all(
            "applications",
            params={"$filter": f"displayName eq {odata_quote(params['display_name'])}", "$select": APP_FIELDS},
        )
        if len(found) > 1:
            ids = ", ".join(sorted(str(app.get("appId")) for app in found))
            self.fail(
                f"{len(found)} applications are named {params['display_name']!r} (app ids {ids}); "
                "delete the extra ones or choose another display_name"
            )
        app: dict[str, t.Any] = found[0] if found else {}
        self.results.update(
            app_id=app.get("appId", ""),
            object_id=app.get("id", ""),
            redirect_uris=uris,
            secret_created=False,
            secret="",
            secret_key_id="",
            secret_end_date_time="",
            removed_secret_key_ids=[],
            service_principal_object_id="",
        )

        if not app:
            self.results["changed"] = True
            if self.check_mode:
                self.results["secret_reason"] = "the application does not exist yet"  # noqa: S105 - a reason, not a secret
                return
            body = new_application_body(
                params["display_name"],
                uris=uris,
                group_membership_claims=claims,
                sign_in_audience=params["sign_in_audience"],
            )
            app = graph.request("POST", "applications", body=body, ok=(201,)).body
            self.results.update(app_id=app["appId"], object_id=app["id"])
        else:
            patch = application_changes(app, uris=uris, group_membership_claims=claims)
            if patch:
                self.results["changed"] = True
                if not self.check_mode:
                    graph.request("PATCH", f"applications/{app['id']}", body=patch, ok=(204, 200))

        self.ensure_service_principal(graph, app["appId"])

        passwords = app.get("passwordCredentials") or []
        needed, reason, kept = secret_decision(
            passwords,
            prefix=prefix,
            now=now,
            renew_days=params["secret_renew_days"],
            rotate=params["rotate_secret"],
            current_key_id=params["current_key_id"],
        )
        self.results["secret_reason"] = reason
        if kept:
            self.results.update(secret_key_id=kept.get("keyId", ""), secret_end_date_time=kept.get("endDateTime", ""))
        if needed:
            self.results["changed"] = True
            if not self.check_mode:
                end = now + dt.timedelta(days=params["secret_expiry_days"])
                credential = graph.request(
                    "POST",
                    f"applications/{app['id']}/addPassword",
                    body={
                        "passwordCredential": {
                            "displayName": f"{prefix} {now.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                            "endDateTime": format_time(end),
                        }
                    },
                ).body
                self.results.update(
                    secret_created=True,
                    secret=credential["secretText"],
                    secret_key_id=credential["keyId"],
                    secret_end_date_time=credential.get("endDateTime", format_time(end)),
                )

        if params["remove_expired_secrets"]:
            expired = [str(c.get("keyId")) for c in expired_collection_credentials(passwords, prefix=prefix, now=now)]
            if expired:
                self.results["changed"] = True
                self.results["removed_secret_key_ids"] = expired
                if not self.check_mode:
                    for key_id in expired:
                        graph.request(
                            "POST", f"applications/{app['id']}/removePassword", body={"keyId": key_id}, ok=(204, 200)
                        )

    def ensure_service_principal(self, graph: AzureRestClient, app_id: str) -> None:
        principals = graph.list_all(
            "servicePrincipals", params={"$filter": f"appId eq {odata_quote(app_id)}", "$select": "id,appId"}
        )
        if principals:
            self.results["service_principal_object_id"] = principals[0]["id"]
            return
        self.results["changed"] = True
        if self.check_mode:
            return
        # A new application takes a few seconds to replicate inside Entra ID; until then
        # creating its service principal fails with 400 (documented Graph behaviour).
        for attempt in range(SP_ATTEMPTS):
            try:
                principal = graph.request("POST", "servicePrincipals", body={"appId": app_id}, ok=(201,)).body
                break
            except AzureRestError as exc:
                if exc.status not in (400, 404) or attempt == SP_ATTEMPTS - 1:
                    raise
                time.sleep(SP_RETRY_SECONDS)
        self.results["service_principal_object_id"] = principal["id"]


def main() -> None:
    EntraApplication()


if __name__ == "__main__":
    main()
