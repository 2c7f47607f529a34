#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: entra_application
short_description: Ensure an Entra ID app registration for oauth2-proxy, who may sign in, and its secret in Key Vault
version_added: 0.1.0
description:
  - Finds the application by its display name through Microsoft Graph (C($filter=displayName eq '...')),
    so re-runs never create a duplicate. C(azure.azcollection.azure_rm_adapplication) only matches
    by app id, and its C(password) option is broken against Graph; this module replaces both.
  - Creates the application when it is missing, single tenant (C(AzureADMyOrg)), with one web redirect
    URI C(https://<host>/oauth2/callback) per host and optional group membership claims; corrects the
    redirect URIs and group claims of an existing one.
  - Ensures the application's service principal (enterprise application) exists.
  - With O(app_roles), declares these app roles on the application. A new role's id is derived from its value
    (a name-based UUID), so re-runs find it without keeping state; a value that already exists keeps its id.
    A role the collection made (its id is derived from its value) that is no longer listed is first disabled,
    then removed, after the assignments the collection made to it are deleted (Graph refuses to remove an
    enabled role). While assignments the collection did not make still hold it, it is only disabled, and the
    module warns. Roles with any other id are never changed or removed.
  - With O(app_role_assignment_required), sets the service principal's C(appRoleAssignmentRequired), so Entra
    refuses to sign in anyone without an assignment.
  - With O(app_role_assignments), assigns the listed users and groups to the roles through Graph
    C(appRoleAssignedTo) and records the id of each assignment it makes in a tag
    C(zerotrust.aks/assignment=<id>) of the service principal (its other tags are kept). Only recorded
    assignments are ever deleted, when the list no longer names them. An assignment made by hand (in the
    portal) that the list names is left as it is and not recorded; when the list no longer names it, it stays
    and the module warns. Assignments to roles not in O(app_roles) are never touched.
  - With O(federated_credentials), ensures these federated identity credentials on the application (for
    example the oauth2-proxy ServiceAccount of a cluster's OIDC issuer) and deletes the ones named with
    O(secret_display_name_prefix) that are no longer listed.
  - With O(client_secret=absent), makes no client secret and removes the ones this collection made (the
    application then authenticates with a federated credential only).
  - "With O(client_secret=present) (the default), keeps exactly one client secret whose value Key Vault holds, in the
    secret O(keyvault_secret_name) of the vault O(keyvault_uri) (both required). The module reads that secret first:
    its tag C(zerotrust-aks-key-id) names the credential it holds."
  - A new client secret is made (C(addPassword), valid for O(secret_expiry_days)) when the vault holds none, holds one
    the application no longer has, holds one that expires within O(secret_renew_days) days, or when
    O(rotate_secret=true). Its value goes to Key Vault in the same run (content type C(text/plain), tags
    C(zerotrust-aks-key-id) and C(zerotrust-aks-expires)); the module never returns it. When that write fails, the
    new client secret is removed from the application again before the module fails with Key Vault's status, code
    and message.
  - The credential a new one replaces stays valid for O(secret_rotation_grace_hours), because running pods hold its
    value until they restart; the vault records it in the tags C(zerotrust-aks-previous-key-id) and
    C(zerotrust-aks-rotated-at), and a run after the grace period removes it.
  - The client secrets this collection makes are named O(secret_display_name_prefix), a space and their UTC creation
    time (C(zerotrust-aks 2026-01-02T03:04:05Z)). Every run removes those that are neither the vault's credential nor
    the previous one within its grace period (left by an interrupted run, expired, or past the grace period). Client
    secrets named otherwise are never changed; RV(foreign_secrets) lists them.
  - A soft-deleted Key Vault secret is recovered first (Key Vault refuses a new secret of that name meanwhile).
  - While Key Vault answers 403 (a new role assignment takes minutes to reach the data plane), the module retries for
    O(forbidden_retry_seconds).
  - Authenticates exactly like azure.azcollection (environment, CLI profile, managed identity, AWX credential).
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists redirect URIs, app roles, the assignment requirement, assignments (each marked
      C(recorded), C(foreign) or C(new)), federated credentials and the key ids of the collection's client
      secrets (C((new)) for one to be made); never a secret value.
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
      - Prefix of the display name of the client secrets this module makes. A client secret named exactly the prefix,
        a space and a UTC time (C(2026-01-02T03:04:05Z)) counts as the collection's own.
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
  keyvault_uri:
    description:
      - URI of the vault that holds the client secret, for example C(https://myvault.vault.azure.net/).
      - Required with O(client_secret=present); without a vault the module makes no client secret.
    type: str
  keyvault_secret_name:
    description: Name of the Key Vault secret that holds the client secret (1 to 127 letters, digits and hyphens).
    type: str
    default: oauth2-proxy-client-secret
  forbidden_retry_seconds:
    description:
      - Keep retrying for this long while Key Vault answers 403, because a new role assignment can take minutes to
        reach the data plane.
    type: int
    default: 0
  secret_rotation_grace_hours:
    description:
      - How long the client secret that a new one replaces stays valid (0 to 8760 hours). Pods keep the old value until
        they restart, so a run after this period removes it.
    type: int
    default: 24
  client_secret:
    description:
      - V(present) keeps one client secret made by this collection whose value O(keyvault_uri) holds (see above).
      - V(absent) makes none and removes those the collection made (their display name starts with
        O(secret_display_name_prefix) and a time); use it with a federated credential.
      - V(ignore) leaves the client secrets alone.
    type: str
    choices: [present, absent, ignore]
    default: present
  app_roles:
    description:
      - App roles the application declares for users and groups. Omit to leave the application's roles alone.
    type: list
    elements: dict
    suboptions:
      value:
        description:
          - Value in the C(roles) claim; 1-120 ASCII letters, digits and symbols, no spaces, not starting with a dot.
        type: str
        required: true
      display_name:
        description: Name shown in the assignment dialogs.
        type: str
        required: true
      description:
        description: Description shown in the assignment dialogs.
        type: str
        required: true
      allowed_member_types:
        description: C(User) (users and groups) and/or C(Application).
        type: list
        elements: str
        default: [User]
  app_role_assignment_required:
    description:
      - Service principal setting C(appRoleAssignmentRequired). Omit to keep what it has.
    type: bool
  app_role_assignments:
    description:
      - Users and groups assigned to the roles of O(app_roles). Omit to leave assignments alone (except those
        the collection made to a role that leaves O(app_roles)).
      - Missing assignments are made and recorded; recorded ones the list no longer names are deleted. Assignments
        the collection did not make are never deleted.
    type: list
    elements: dict
    suboptions:
      principal_id:
        description: Object id of the user or group.
        type: str
        required: true
      principal_type:
        description: What the principal is; a mismatch with what Graph reports is a warning.
        type: str
        choices: [User, Group, ServicePrincipal]
        default: Group
      role:
        description: Value of the app role (one of O(app_roles), or a role the application already has).
        type: str
        required: true
  federated_credentials:
    description:
      - Federated identity credentials the application trusts. Omit to leave them alone.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name (immutable, unique per application).
          - Start it with O(secret_display_name_prefix) so it is removed when it leaves the list.
        type: str
        required: true
      issuer:
        description: Token issuer, for AKS the cluster's OIDC issuer URL.
        type: str
        required: true
      subject:
        description: Subject, for AKS C(system:serviceaccount:<namespace>:<name>).
        type: str
        required: true
      audiences:
        description: Audience of the token.
        type: list
        elements: str
        default: [api://AzureADTokenExchange]
  rotate_secret:
    description:
      - Make and store a new client secret even when the stored one is usable. The one it replaces stays valid for
        O(secret_rotation_grace_hours).
    type: bool
    default: false
  graph_endpoint:
    description:
      - Microsoft Graph root URL. Defaults to the cloud environment's (C(https://graph.microsoft.com) in AzureCloud).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
  - zerotrust.aks.azure_retry
notes:
  - The identity running the module needs the Graph permission C(Application.ReadWrite.OwnedBy) (then it must own
    the application) or C(Application.ReadWrite.All); O(app_role_assignments) also needs
    C(AppRoleAssignment.ReadWrite.All). With O(client_secret=present) it reads and writes the Key Vault secret
    (role C(Key Vault Secrets Officer), or an access policy with C(get), C(set) and C(recover) on secrets).
  - A run stopped between C(addPassword) and the Key Vault write leaves a client secret nobody holds; the next run
    removes it. No secret value ever appears in the results, so the task needs no C(no_log).
  - A crash between making an assignment and recording its tag leaves an unrecorded assignment, which the module
    then treats as made by hand and never deletes (the safe side). Assignments made by releases before
    the tags existed are not recorded either; delete them in Entra when they should go.
seealso:
  - name: Microsoft Graph application addPassword
    description: The API that makes client secrets.
    link: https://learn.microsoft.com/graph/api/application-addpassword
  - name: Microsoft Graph application removePassword
    description: The API that removes them.
    link: https://learn.microsoft.com/graph/api/application-removepassword
  - name: Key Vault Set Secret
    description: The write that stores the client secret with its tags.
    link: https://learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret
  - name: Microsoft Graph appRole
    description: App role properties and the rule that a role is disabled before it is removed.
    link: https://learn.microsoft.com/graph/api/resources/approle
  - name: Microsoft Graph appRoleAssignedTo
    description: Assign users and groups to an app role of a service principal.
    link: https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto
  - name: Microsoft Graph servicePrincipal
    description: The C(tags) property where the module records the assignments it made.
    link: https://learn.microsoft.com/graph/api/resources/serviceprincipal
  - name: Microsoft Graph federatedIdentityCredential
    description: Federated identity credentials on an application.
    link: https://learn.microsoft.com/graph/api/application-post-federatedidentitycredentials
"""

EXAMPLES = r"""
- name: Ensure the oauth2-proxy app registration and a client secret held by Key Vault
  zerotrust.aks.entra_application:
    display_name: zerotrust-aks-oauth2-proxy
    hosts: [colors.example.com]
    group_membership_claims: SecurityGroup
    keyvault_uri: https://zt-aks-kv.vault.azure.net/
    keyvault_secret_name: oauth2-proxy-client-secret
    forbidden_retry_seconds: 300
    app_roles:
      - value: colors.user
        display_name: Colors user
        description: Signs in to the colors apps
    app_role_assignment_required: true
    app_role_assignments:
      - principal_id: 3f0c8a56-6a3e-4f39-9d5b-1f1b7e0c2d4a  # a group's object id
        principal_type: Group
        role: colors.user
  register: app

- name: Ensure the app registration without a client secret, trusting the oauth2-proxy ServiceAccount
  zerotrust.aks.entra_application:
    display_name: zerotrust-aks-oauth2-proxy
    hosts: [colors.example.com]
    client_secret: absent
    federated_credentials:
      - name: zerotrust-aks-oauth2-proxy
        issuer: https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111-1111-1111-1111-111111111111/
        subject: system:serviceaccount:oauth2-proxy:oauth2-proxy
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
  description: Whether a new client secret was made and stored on this run.
  returned: success
  type: bool
secret_key_id:
  description: Key id of the client secret Key Vault holds after the run; empty when none (check mode, other modes).
  returned: success
  type: str
secret_end_date_time:
  description: Expiry of that client secret.
  returned: success
  type: str
secret_fingerprint:
  description:
    - C(sha256:) and 12 hex digits of the stored value's SHA-256, to see whether it changed; never the value.
    - C((new)) in check mode when a new client secret would be made; empty when none is stored.
  returned: success
  type: str
  sample: "sha256:3f1c0e9a7b2d"
secret_version:
  description: Version of the Key Vault secret holding the client secret.
  returned: success
  type: str
secret_reason:
  description: Why a client secret was made or kept.
  returned: success
  type: str
secret_recovered:
  description: Whether the soft-deleted Key Vault secret was (or in check mode would be) recovered.
  returned: success
  type: bool
previous_secret_key_id:
  description: Key id of the replaced client secret kept for the grace period; empty when none.
  returned: success
  type: str
previous_secret_revoke_after:
  description: When the grace period of RV(previous_secret_key_id) ends (UTC); a later run removes it.
  returned: success
  type: str
removed_secret_key_ids:
  description:
    - Key ids of the collection's client secrets removed on this run (or that would be in check mode), as
      C(<key id>); a new one whose value could not be stored is not listed (the module fails).
  returned: success
  type: list
  elements: str
foreign_secrets:
  description: Client secrets not named by this collection, as C(<key id> (<display name>)); never touched.
  returned: success
  type: list
  elements: str
forbidden_waited_seconds:
  description: How long Key Vault answered 403 before it let the module in (only when it did).
  returned: when Key Vault answered 403
  type: int
app_role_ids:
  description: Id of each app role of O(app_roles), by value.
  returned: success
  type: dict
  sample: {colors.user: 0f1e5a7c-3b1d-5f5e-9f43-0c4a2c7c1e11}
app_role_assignment_required:
  description: The service principal's C(appRoleAssignmentRequired) (as it will be in check mode).
  returned: success
  type: bool
added_assignments:
  description: "Assignments made on this run, as C(<role value>: <principal id>)."
  returned: success
  type: list
  elements: str
removed_assignments:
  description: "Assignments deleted on this run, as C(<role value>: <principal id>)."
  returned: success
  type: list
  elements: str
foreign_assignments:
  description:
    - "Assignments to the collection's roles that it did not make (no tag records them), as
      C(<role value>: <principal id>). They are never deleted."
  returned: success
  type: list
  elements: str
federated_credentials:
  description: Names of the federated identity credentials the application has afterwards.
  returned: success
  type: list
  elements: str
"""

import datetime as dt
import functools
import time
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _entra_access as access
from ansible_collections.zerotrust.aks.plugins.module_utils import _entra_secrets as secrets
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    AzureRestClient,
    AzureRestError,
    graph_base_url,
    keyvault_scope,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._entra import (
    GROUP_CLAIMS,
    SECRET_EXPIRY_DAYS,
    UTC,
    application_changes,
    is_dns_name,
    new_application_body,
    odata_quote,
    redirect_uris,
)

# Entra ID replicates a new application (and a changed appRoles collection) to the service
# principal within seconds; until then Graph answers 400/404 (documented for servicePrincipals
# POST; seen for appRoleAssignedTo as "Permission being assigned was not found").
REPLICATION_ATTEMPTS = 6
REPLICATION_RETRY_SECONDS = 5
APP_FIELDS = "id,appId,displayName,web,groupMembershipClaims,passwordCredentials,signInAudience,appRoles"
SP_FIELDS = "id,appId,appRoleAssignmentRequired,tags"


class EntraApplication(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            display_name=dict(type="str", required=True),
            hosts=dict(type="list", elements="str", required=True),
            group_membership_claims=dict(type="str", choices=list(GROUP_CLAIMS)),
            sign_in_audience=dict(type="str", default="AzureADMyOrg", choices=["AzureADMyOrg", "AzureADMultipleOrgs"]),
            secret_display_name_prefix=dict(type="str", default="zerotrust-aks", no_log=False),
            secret_expiry_days=dict(type="int", default=180, no_log=False),
            secret_renew_days=dict(type="int", default=30, no_log=False),
            keyvault_uri=dict(type="str", no_log=False),
            keyvault_secret_name=dict(type="str", default="oauth2-proxy-client-secret", no_log=False),
            forbidden_retry_seconds=dict(type="int", default=0),
            secret_rotation_grace_hours=dict(type="int", default=24, no_log=False),
            client_secret=dict(type="str", default="present", choices=["present", "absent", "ignore"], no_log=False),
            app_roles=dict(
                type="list",
                elements="dict",
                options=dict(
                    value=dict(type="str", required=True),
                    display_name=dict(type="str", required=True),
                    description=dict(type="str", required=True),
                    allowed_member_types=dict(type="list", elements="str", default=["User"]),
                ),
            ),
            app_role_assignment_required=dict(type="bool"),
            app_role_assignments=dict(
                type="list",
                elements="dict",
                options=dict(
                    principal_id=dict(type="str", required=True),
                    principal_type=dict(type="str", default="Group", choices=["User", "Group", "ServicePrincipal"]),
                    role=dict(type="str", required=True),
                ),
            ),
            federated_credentials=dict(
                type="list",
                elements="dict",
                options=dict(
                    name=dict(type="str", required=True),
                    issuer=dict(type="str", required=True),
                    subject=dict(type="str", required=True),
                    audiences=dict(type="list", elements="str", default=[access.TOKEN_EXCHANGE_AUDIENCE]),
                ),
            ),
            rotate_secret=dict(type="bool", default=False, no_log=False),
            azure_retry_timeout=dict(type="int", default=600),
            graph_endpoint=dict(type="str"),
        )
        self.results: dict[str, t.Any] = dict(changed=False)
        self.before: dict[str, t.Any] = {}
        self.after: dict[str, t.Any] = {}
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
        errors = access.app_role_errors(params["app_roles"] or [])
        for index, item in enumerate(params["app_role_assignments"] or []):
            if not access.is_guid(item["principal_id"]):
                errors.append(f"app_role_assignments[{index}].principal_id must be an object id (GUID)")
        for index, item in enumerate(params["federated_credentials"] or []):
            errors.extend(f"federated_credentials[{index}].{e}" for e in access.federated_credential_errors(item))
        errors.extend(secrets.option_errors(params))
        if errors:
            self.fail("; ".join(errors))

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        self.validate(kwargs)
        graph = AzureRestClient(
            self.azure_auth.azure_credential_track2,
            graph_base_url(self.azure_auth._cloud_environment, kwargs["graph_endpoint"]) + "/v1.0",
            graph_base_url(self.azure_auth._cloud_environment, kwargs["graph_endpoint"]) + "/.default",
            retry_timeout=float(kwargs["azure_retry_timeout"]),
        )
        self.clients = [graph]
        failure: tuple[str, dict[str, t.Any]] | None = None
        try:
            self.converge(graph, kwargs)
        except secrets.SecretLifecycleError as exc:
            failure = (f"client secret: {exc}", dict(status=exc.status, error_code=exc.code))
        except AzureRestError as exc:
            failure = (f"Microsoft Graph request failed: {exc}", dict(status=exc.status, error_code=exc.code))
        except ValueError as exc:
            failure = (str(exc), {})
        self.warn_retries()
        if failure is not None:
            self.fail(failure[0], **failure[1])
        if self.module._diff:
            self.results["diff"] = dict(before=self.before, after=self.after)
        return self.results

    def warn_retries(self) -> None:
        """Say when requests were retried (throttling, server errors, a vault not resolving yet)."""
        for client in self.clients:
            summary = client.retry_summary()
            if summary:
                self.module.warn(f"{client.base_url}: {summary}")

    def note(self, key: str, before: t.Any, after: t.Any) -> None:
        """Record a field for the diff (never a secret value)."""
        self.before[key] = before
        self.after[key] = after
        if before != after:
            self.results["changed"] = True

    def converge(self, graph: AzureRestClient, params: dict[str, t.Any]) -> None:
        uris = redirect_uris(params["hosts"])
        claims = params["group_membership_claims"]
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
            secret_key_id="",
            secret_end_date_time="",
            secret_fingerprint="",
            secret_version="",
            secret_recovered=False,
            previous_secret_key_id="",
            previous_secret_revoke_after="",
            removed_secret_key_ids=[],
            foreign_secrets=[],
            service_principal_object_id="",
            app_role_ids={},
            app_role_assignment_required=False,
            added_assignments=[],
            removed_assignments=[],
            foreign_assignments=[],
            federated_credentials=[],
        )
        self.note("application", app.get("displayName"), params["display_name"])
        self.note("redirect_uris", sorted((app.get("web") or {}).get("redirectUris") or []), sorted(uris))

        if not app:
            self.results["changed"] = True
            self.plan_without_application(params)
            if self.check_mode:
                mode = params["client_secret"]
                reason = "the application does not exist yet" if mode == "present" else f"client_secret is {mode}"
                self.results["secret_reason"] = reason
                if mode == "present":
                    self.results["secret_fingerprint"] = secrets.NEW
                    self.note("client_secret_key_ids", [], [secrets.NEW])
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

        roles = self.converge_app_roles(graph, app, params)
        if roles.first is not None and not self.check_mode:
            # A just-created application may not have replicated yet (404 for a moment).
            self.with_replication_retry(
                functools.partial(
                    graph.request, "PATCH", f"applications/{app['id']}", body={"appRoles": roles.first}, ok=(204, 200)
                ),
                statuses=(404,),
            )
        principal = self.ensure_service_principal(graph, app["appId"])
        self.converge_assignment_required(graph, principal, params)
        roles = self.converge_assignments(graph, principal, roles, params)
        if params["app_roles"] is not None:
            # After the assignments: a retired role that foreign assignments hold stays, disabled.
            self.note("app_roles", access.describe_roles(app.get("appRoles") or []), access.describe_roles(roles.final))
        if roles.last is not None and not self.check_mode:
            graph.request("PATCH", f"applications/{app['id']}", body={"appRoles": roles.last}, ok=(204, 200))
        if params["federated_credentials"] is not None:
            self.converge_federated_credentials(graph, app, params)
        self.converge_secret(graph, app, params, now)

    def plan_without_application(self, params: dict[str, t.Any]) -> None:
        """Check mode and diff when the application does not exist yet: everything is new."""
        wanted_roles = params["app_roles"] or []
        self.results["app_role_ids"] = {r["value"]: access.app_role_id(r["value"]) for r in wanted_roles}
        self.note("app_roles", [], access.describe_roles(access.plan_app_roles([], wanted_roles).final))
        if params["app_role_assignment_required"] is not None:
            self.results["app_role_assignment_required"] = params["app_role_assignment_required"]
            self.note("app_role_assignment_required", False, params["app_role_assignment_required"])
        if params["app_role_assignments"] is not None:
            added = sorted(f"{a['role']}: {a['principal_id'].lower()}" for a in params["app_role_assignments"])
            self.results["added_assignments"] = added
            self.note("app_role_assignments", [], added)
        if params["federated_credentials"] is not None:
            names = sorted(c["name"] for c in params["federated_credentials"])
            self.results["federated_credentials"] = names
            self.note("federated_credentials", [], names)

    def converge_app_roles(
        self, graph: AzureRestClient, app: dict[str, t.Any], params: dict[str, t.Any]
    ) -> access.AppRolePlan:
        existing = list(app.get("appRoles") or [])
        if params["app_roles"] is None:
            return access.AppRolePlan(None, None, existing, {}, [])
        plan = access.plan_app_roles(existing, params["app_roles"])
        self.results["app_role_ids"] = dict(plan.declared_ids)
        return plan

    def ensure_service_principal(self, graph: AzureRestClient, app_id: str) -> dict[str, t.Any]:
        principals = graph.list_all(
            "servicePrincipals", params={"$filter": f"appId eq {odata_quote(app_id)}", "$select": SP_FIELDS}
        )
        if principals:
            self.results["service_principal_object_id"] = principals[0]["id"]
            return dict(principals[0])
        self.results["changed"] = True
        if self.check_mode:
            return {}
        try:
            principal = self.with_replication_retry(
                lambda: graph.request("POST", "servicePrincipals", body={"appId": app_id}, ok=(201,)).body
            )
        except AzureRestError as exc:
            # 409: an earlier (interrupted) run made it moments ago and Graph's reads have not
            # caught up yet (https://learn.microsoft.com/graph/best-practices-concept). Wait to see it.
            if exc.status != 409:
                raise
            principal = self.wait_for_service_principal(graph, app_id)
        self.results["service_principal_object_id"] = principal["id"]
        return dict(principal)

    def wait_for_service_principal(self, graph: AzureRestClient, app_id: str) -> dict[str, t.Any]:
        for attempt in range(REPLICATION_ATTEMPTS):
            found = graph.list_all(
                "servicePrincipals", params={"$filter": f"appId eq {odata_quote(app_id)}", "$select": SP_FIELDS}
            )
            if found:
                return dict(found[0])
            if attempt < REPLICATION_ATTEMPTS - 1:
                time.sleep(REPLICATION_RETRY_SECONDS)
        self.fail(
            f"Graph says a service principal for application {app_id} exists (409) but does not list it after "
            f"{REPLICATION_ATTEMPTS * REPLICATION_RETRY_SECONDS}s; re-run once directory replication has caught up"
        )
        raise AssertionError("unreachable")

    def with_replication_retry(self, call: t.Callable[[], t.Any], statuses: tuple[int, ...] = (400, 404)) -> t.Any:
        for attempt in range(REPLICATION_ATTEMPTS):
            try:
                return call()
            except AzureRestError as exc:
                # A duplicate is final, whatever the replication state.
                if exc.status not in statuses or "already exists" in str(exc) or attempt == REPLICATION_ATTEMPTS - 1:
                    raise
                time.sleep(REPLICATION_RETRY_SECONDS)
        raise AssertionError("unreachable")

    def converge_assignment_required(
        self, graph: AzureRestClient, principal: dict[str, t.Any], params: dict[str, t.Any]
    ) -> None:
        current = bool(principal.get("appRoleAssignmentRequired", False))
        wanted = params["app_role_assignment_required"]
        self.results["app_role_assignment_required"] = current if wanted is None else wanted
        if wanted is None:
            return
        self.note("app_role_assignment_required", current, wanted)
        if current != wanted and principal and not self.check_mode:
            graph.request(
                "PATCH",
                f"servicePrincipals/{principal['id']}",
                body={"appRoleAssignmentRequired": wanted},
                ok=(204, 200),
            )

    def list_assignments(self, graph: AzureRestClient, principal: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        if not principal:
            return []
        return list(graph.list_all(f"servicePrincipals/{principal['id']}/appRoleAssignedTo"))

    def converge_assignments(
        self,
        graph: AzureRestClient,
        principal: dict[str, t.Any],
        roles: access.AppRolePlan,
        params: dict[str, t.Any],
    ) -> access.AppRolePlan:
        """Add what the inventory lists; delete only what the collection recorded making.

        Returns ``roles`` with the retired roles that foreign assignments still hold kept
        (disabled). Without ``app_role_assignments`` only the retired roles' assignments are
        considered, so that a removed role leaves none dangling.
        """
        wanted = params["app_role_assignments"]
        if wanted is None and not roles.retired:
            return roles
        role_ids = {str(r.get("value")): str(r.get("id")) for r in roles.final}
        unknown = sorted({a["role"] for a in wanted or []} - set(role_ids))
        if unknown:
            self.fail(
                f"app_role_assignments name roles the application does not declare: {', '.join(unknown)}; "
                f"declared: {', '.join(sorted(role_ids)) or 'none'}"
            )
        existing = self.list_assignments(graph, principal)
        tags = [str(tag) for tag in principal.get("tags") or []]
        recorded = access.recorded_assignment_ids(tags)
        retired_ids = [str(r["id"]) for r in roles.retired]
        managed = retired_ids if wanted is None else [*roles.declared_ids.values(), *retired_ids]
        plan = access.plan_assignments(existing, wanted, role_ids=role_ids, managed_role_ids=managed, recorded=recorded)
        values = {str(r.get("id")).lower(): str(r.get("value")) for r in [*roles.final, *roles.retired]}
        kept = [a for a in existing if a not in plan.remove]
        self.note(
            "app_role_assignments",
            access.describe_assignments(existing, values, recorded),
            access.describe_assignments([*kept, *plan.add], values, recorded),
        )
        self.results["added_assignments"] = access.describe_assignments(plan.add, values)
        self.results["removed_assignments"] = access.describe_assignments(plan.remove, values)
        self.results["foreign_assignments"] = access.describe_assignments(plan.foreign, values)
        held = access.held_retired_roles(roles, plan.foreign)
        retired_lower = {i.lower() for i in retired_ids}
        for assignment in plan.foreign_unwanted:
            if str(assignment.get("appRoleId", "")).lower() in retired_lower:
                continue
            role = values.get(str(assignment.get("appRoleId", "")).lower(), assignment.get("appRoleId"))
            self.module.warn(
                f"the assignment of {str(assignment.get('principalId')).lower()} to the app role {role} is not "
                "in app_role_assignments but was not made by the collection; remove it in Entra if it should go"
            )
        for value, count in sorted(held.items()):
            self.module.warn(
                f"the app role {value} is no longer declared but {count} assignment(s) not made by the collection "
                "still hold it: it is disabled, not removed; remove them in Entra, then re-run to remove the role"
            )
        roles = access.keep_retired_roles(roles, held)
        tags_after = access.planned_tags(tags, existing=existing, removed=plan.remove)
        if plan.add or tags_after != tags:
            self.results["changed"] = True
        if self.check_mode or not principal:
            return roles
        self.delete_assignments(graph, principal, plan.remove)
        made: list[str] = []
        try:
            self.add_assignments(graph, principal, plan.add, wanted or [], made)
        finally:
            # Recorded even when a later POST fails, so what was made is the collection's.
            tags_after += [access.assignment_tag(i) for i in made]
            if tags_after != tags:
                graph.request("PATCH", f"servicePrincipals/{principal['id']}", body={"tags": tags_after}, ok=(204, 200))
        return roles

    def add_assignments(
        self,
        graph: AzureRestClient,
        principal: dict[str, t.Any],
        add: list[dict[str, str]],
        wanted: list[dict[str, t.Any]],
        made: list[str],
    ) -> None:
        """POST each assignment, appending the id of each one made to ``made``."""
        types = {str(a["principal_id"]).lower(): a["principal_type"] for a in wanted}
        url = f"servicePrincipals/{principal['id']}/appRoleAssignedTo"
        for item in add:
            body = {"principalId": item["principalId"], "resourceId": principal["id"], "appRoleId": item["appRoleId"]}
            answer = self.with_replication_retry(functools.partial(graph.request, "POST", url, body=body, ok=(201,)))
            created = answer.body or {}
            made.append(str(created["id"]))
            reported = str(created.get("principalType") or "")
            if reported and reported != types.get(item["principalId"]):
                self.module.warn(
                    f"app_role_assignments lists {item['principalId']} as a {types.get(item['principalId'])}, "
                    f"Entra ID says it is a {reported}"
                )

    def delete_assignments(
        self, graph: AzureRestClient, principal: dict[str, t.Any], assignments: list[dict[str, t.Any]]
    ) -> None:
        for assignment in assignments:
            graph.request(
                "DELETE", f"servicePrincipals/{principal['id']}/appRoleAssignedTo/{assignment['id']}", ok=(204,)
            )

    def converge_federated_credentials(
        self, graph: AzureRestClient, app: dict[str, t.Any], params: dict[str, t.Any]
    ) -> None:
        existing = list(graph.list_all(f"applications/{app['id']}/federatedIdentityCredentials"))
        plan = access.plan_federated_credentials(
            existing, params["federated_credentials"], prefix=params["secret_display_name_prefix"]
        )
        removed = {str(c.get("name")) for c in plan.remove}
        after = sorted({*(str(c.get("name")) for c in existing), *(c["name"] for c in plan.create)} - removed)
        self.results["federated_credentials"] = after
        self.note(
            "federated_credentials",
            access.describe_credentials(existing),
            access.describe_credentials(
                [
                    *(c for c in existing if str(c.get("name")) not in removed),
                    *plan.create,
                ],
                updates={str(old.get("name")): patch for old, patch in plan.update},
            ),
        )
        if self.check_mode:
            return
        for credential in plan.remove:
            graph.request(
                "DELETE", f"applications/{app['id']}/federatedIdentityCredentials/{credential['id']}", ok=(204,)
            )
        for old, patch in plan.update:
            graph.request(
                "PATCH", f"applications/{app['id']}/federatedIdentityCredentials/{old['id']}", body=patch, ok=(204, 200)
            )
        for body in plan.create:
            graph.request("POST", f"applications/{app['id']}/federatedIdentityCredentials", body=body, ok=(201,))

    def converge_secret(
        self, graph: AzureRestClient, app: dict[str, t.Any], params: dict[str, t.Any], now: dt.datetime
    ) -> None:
        prefix = params["secret_display_name_prefix"]
        passwords = list(app.get("passwordCredentials") or [])
        mode = params["client_secret"]
        self.results["foreign_secrets"] = secrets.describe(secrets.foreign_credentials(passwords, prefix))
        if mode == "ignore":
            self.results["secret_reason"] = "client_secret is ignore: client secrets left alone"  # noqa: S105 - a reason
            return
        if mode == "absent":
            # Federated authentication only: a collection-made secret is a standing credential
            # nothing uses any more (its value may still sit in Key Vault), so it goes.
            ours = secrets.collection_credentials(passwords, prefix)
            self.results["secret_reason"] = "client_secret is absent: no client secret"  # noqa: S105 - a reason
            self.note("client_secret_key_ids", sorted(secrets.key_id(c) for c in ours), [])
            self.results["removed_secret_key_ids"] = sorted(secrets.key_id(c) for c in ours)
            if not self.check_mode:
                for credential in ours:
                    graph.request(
                        "POST",
                        f"applications/{app['id']}/removePassword",
                        body={"keyId": credential["keyId"]},
                        ok=(200, 204, 404),
                    )
            return
        vault = AzureRestClient(
            self.azure_auth.azure_credential_track2,
            params["keyvault_uri"],
            keyvault_scope(self.azure_auth._cloud_environment),
            retry_timeout=float(params["azure_retry_timeout"]),
        )
        self.clients.append(vault)
        lifecycle = secrets.ClientSecretLifecycle(
            graph,
            secrets.KeyVaultSecrets(
                vault, params["keyvault_secret_name"], forbidden_retry_seconds=params["forbidden_retry_seconds"]
            ),
            app_object_id=app["id"],
            check_mode=self.check_mode,
            hide=self.module.no_log_values.add,
            warn=self.module.warn,
            # A just-created application may not have replicated yet (404 for a moment).
            replication_retry=lambda call: self.with_replication_retry(call, statuses=(404,)),
        )
        try:
            result = lifecycle.run(
                passwords,
                prefix=prefix,
                now=now,
                expiry_days=params["secret_expiry_days"],
                renew_days=params["secret_renew_days"],
                grace_hours=params["secret_rotation_grace_hours"],
                rotate=params["rotate_secret"],
            )
        finally:
            waited = lifecycle.results.get("forbidden_waited_seconds")
            if waited:
                self.module.warn(
                    f"Key Vault answered 403 for {waited}s before it let the deployer at the secret "
                    f"{params['keyvault_secret_name']} (a new role assignment reaching the data plane)"
                )
        self.note("client_secret_key_ids", result.pop("diff_before"), result.pop("diff_after"))
        if result.pop("changed"):
            self.results["changed"] = True
        self.results.update(result)


def main() -> None:
    EntraApplication()


if __name__ == "__main__":
    main()
