"""FAKE Azure for the azure layer's tests: the narrowest HTTPS imitation of the documented REST APIs.

This is not an emulator and proves nothing about Azure itself. The candidate emulator
(Go module github.com/ioflux-org/armite) is not served by the Go module proxy (403,
"This module version is not available"), so everything the roles call is faked here,
from the public REST API references, and only as far as the roles use it. One module per
service:

=======================  ======================================================================
``login``                Entra ID token endpoint and discovery (client credentials, password), the bearer
                         token check, ARM's ``/metadata/endpoints``
``arm``                  ARM router: api-version, subscription, resource groups (GET)
``vaults``               ``Microsoft.KeyVault/vaults`` (GET/PUT, soft delete defaults)
``role_assignments``     ``Microsoft.Authorization/roleAssignments`` (list, GET/PUT, 409 on a
                         duplicate like Azure)
``identities``           ``Microsoft.ManagedIdentity`` userAssignedIdentities and their
                         federatedIdentityCredentials (GET/PUT)
``managed_clusters``     ``Microsoft.ContainerService/managedClusters`` (GET/PUT as a long-running
                         operation) and its operation status
``graph``                Microsoft Graph v1.0 on its own port: applications, servicePrincipals
``graph_schema``         the v1.0 resource types Graph request bodies are checked against
``keyvault``             Key Vault data plane, one port per vault (its ``vaultUri``)
``server``               :class:`FakeAzure`: the state, the servers, the dispatch of requests
``common``               error and answer types shared by the services
=======================  ======================================================================

Behaviours: how the fake is as strict and as slow as Azure (knobs in ``behaviour.py``; each
cites its page in a comment where it is implemented).

Data plane, Graph, DNS, faults
(``keyvault``, ``graph``/``graph_access``/``graph_schema``, ``server``, ``faults``,
``../shim/sitecustomize.py``):

=====================================  =================================================================
Key Vault RBAC vault                   403 ``Forbidden``/``ForbiddenByRbac`` unless the caller's role
                                       (propagated) has the secret's data action at the secret, vault
                                       or an ancestor scope; key-vault/general/rbac-guide
Key Vault access-policy vault          403 ``Forbidden``/``AccessDenied`` unless the caller's own entry
                                       lists the permission (get, list, set, delete, recover, purge,
                                       all); key-vault/general/assign-access-policy, rest-error-codes
Key Vault requests                     ``api-version`` required, secret names ``[0-9A-Za-z-]{1,127}``,
                                       authorization before lookup, other routes 501
New vault hostname                     ``{name}.vault.fake.test`` does not resolve (EAI_NONAME) for
                                       ``vault_dns_lag`` s (hosts file ``FakeAzure.hosts_file``, env
                                       ZEROTRUST_AKS_FAKE_AZURE_HOSTS); Azure/azure-sdk-for-python#1172
New service principal                  404 by id and absent from ``$filter=appId eq`` for
                                       ``principal_lag`` s (``FakeAzure.principal_visible``);
                                       graph/best-practices-concept
Second service principal of an app     409 ``Request_MultipleObjectsWithSameKeyValue`` at once
Graph application permissions          403 ``Authorization_RequestDenied`` unless the token's ``roles``
                                       allow the call (``Application.ReadWrite.All``, or ``.OwnedBy``
                                       on applications the caller created; ``AppRoleAssignment.
                                       ReadWrite.All`` to assign); ``FakeAzure.deployer_graph_roles``
Graph request bodies                   every POST/PATCH body checked against its v1.0 resource type
                                       (application, webApplication, appRole, servicePrincipal,
                                       passwordCredential, federatedIdentityCredential,
                                       appRoleAssignment, action parameters): an undeclared property
                                       or a wrong JSON shape is 400 ``Request_BadRequest`` with OData's
                                       message, before anything changes (``graph_schema``); Graph
                                       ``$metadata``, graph/api/resources/application
Throttling (``faults.throttle_rate``)  429 + ``Retry-After`` in each service's body shape, before
                                       handling (no state change); ARM request-limits-and-throttling,
                                       graph/throttling, key-vault/general/overview-throttling
Server errors (``faults.error_*``)     seeded 5xx bursts, before handling; graph/errors
Kill point (``kill_at_call``)          the N-th counted request (``FakeAzure.calls``; token and
                                       discovery requests are not counted) SIGKILLs its client and the
                                       ``ansible-playbook`` run above it, and is not answered; logged
                                       ``"fault": "kill"``
Unimplemented Graph/data-plane route   501 naming the route, never 404
User/password sign-in (``login``)      ``organizations`` discovery, MSAL's ``/common/userrealm/{upn}``
                                       (also on 127.0.0.1:443: ``login.serve_user_realm``), ``password``
                                       and ``refresh_token`` grants for the Azure CLI's client; user
                                       tokens (``idtyp`` user, ``upn``, ``scp``, no ``roles``) and an ID
                                       token; a wrong password 400 ``invalid_grant`` AADSTS50126;
                                       entra/identity-platform/v2-oauth-ropc, reference-error-codes
=====================================  =================================================================

ARM (``arm``, ``rbac``, ``role_assignments``, ``managed_clusters``, ``vaults``, ``identities``,
``validation``):

=====================================  =================================================================
ARM authorization                      403 ``AuthorizationFailed`` in ARM's words unless a propagated
                                       role of the token's ``oid`` at the scope or an ancestor has the
                                       action (``*/read`` for GETs, ``{type}/write``, ``.../delete``,
                                       ``roleAssignments/write``); built-in roles in ``rbac``;
                                       role-based-access-control/troubleshooting
Role propagation                       an assignment counts ``rbac_propagation`` s after it is made, for
                                       ARM and Key Vault (``rbac.has_action``); ``rbac.grant`` seeds one
                                       in effect
Role assignment principal              400 ``PrincipalNotFound`` for an unknown principal or one newer
                                       than ``principal_lag``, unless ``principalType`` is sent; 400
                                       ``UnmatchedPrincipalType``;
                                       role-based-access-control/troubleshooting
Role assignment rules                  409 ``RoleAssignmentExists``, 400 ``InvalidRoleAssignmentId``,
                                       ``RoleDefinitionDoesNotExist``, 404 missing scope; list at any
                                       scope with ``atScope()``, ``principalId eq``;
                                       rest/api/authorization/role-assignments
managedClusters eTag                   ``eTag`` changes on every PUT; ``If-Match`` mismatch 412
                                       ``PreconditionFailed``; aks/use-etags
managedClusters operations             PUT answers ``Updating`` + ``Azure-AsyncOperation``,
                                       ``InProgress`` for ``aks_operation_polls`` looks at the cluster;
                                       a PUT meanwhile 409 ``OperationNotAllowed``
Vault access policies                  ``accessPolicies/add|replace|remove`` merge into the vault's
                                       entries; rest/api/keyvault/keyvault/vaults/update-access-policy
New identities                         a user-assigned identity's and the AKS add-on's principal are
                                       registered as created now (they replicate for ``principal_lag``)
ARM request bodies                     every PUT/PATCH checked with the azure-mgmt-* models of its
                                       api-version: unknown members, wrong types, missing required are
                                       400 ``InvalidRequestContent``, read-only ignored
                                       (``validation.validate_arm_body``)
Unimplemented ARM route                501 naming the method and path, never 404
=====================================  =================================================================

Every request needs a bearer token this fake issued for that service's audience. Every
request is logged (``FakeAzure.log``) so tests can assert what was, and was not, written.
It listens on 127.0.0.1 only, on random ports, over TLS with a certificate signed by a CA
it makes (``ca_file``), and stops by itself after ``lifetime`` seconds.

Run ``cd tests/azure && PYTHONPATH=../../testbed/lib ../../.venv/bin/python -m fake_azure --help``
to start it by hand (``testkit``, the PKI shared with the testbed, lives in testbed/lib).
"""

from __future__ import annotations

from .common import KEYVAULT_AUDIENCE, KEYVAULT_DNS, Answer, HttpError
from .keyvault import Vault
from .server import FakeAzure, make_tls

__all__ = ["KEYVAULT_AUDIENCE", "KEYVAULT_DNS", "Answer", "FakeAzure", "HttpError", "Vault", "make_tls"]
