"""The Graph v1.0 resource types of the bodies the fake accepts: unknown properties and wrong shapes get 400.

Graph is an OData service: its ``$metadata`` (https://graph.microsoft.com/v1.0/$metadata) declares
every property of ``microsoft.graph.application``, ``servicePrincipal``, ``passwordCredential``,
``federatedIdentityCredential`` and ``appRoleAssignment``, and none of them is an open type, so a
body naming a property the type does not declare is refused before anything changes. The names
below are the properties of each type's v1.0 resource page
(https://learn.microsoft.com/graph/api/resources/application?view=graph-rest-1.0 and the pages of
the other types; the Microsoft.Graph PowerShell module's ``Update-MgApplication`` and
``Update-MgServicePrincipal`` parameters, generated from the same metadata, list the same set).

The answer is 400 with OData's own message ("The property '...' does not exist on type '...'.
Make sure to only use property names that are defined by the type or mark the type as open
type.", as Graph returns it, e.g. microsoftgraph/msgraph-sdk-dotnet#450) and the directory's error
code ``Request_BadRequest``. Collections and complex values of the wrong JSON shape are refused
the same way ("Invalid value specified for property ..."). Instance annotations and bindings
(``@odata.type``, ``owners@odata.bind``) are allowed, as OData allows them.
"""

from __future__ import annotations

import typing as t

from .common import HttpError

STRING, BOOL, STRINGS, OBJECT, OBJECTS = "string", "boolean", "strings", "object", "objects"

APPLICATION: dict[str, str] = {
    "addIns": OBJECTS,
    "api": OBJECT,
    "appId": STRING,
    "applicationTemplateId": STRING,
    "appRoles": OBJECTS,
    "authenticationBehaviors": OBJECT,
    "certification": OBJECT,
    "createdDateTime": STRING,
    "defaultRedirectUri": STRING,
    "deletedDateTime": STRING,
    "description": STRING,
    "disabledByMicrosoftStatus": STRING,
    "displayName": STRING,
    "groupMembershipClaims": STRING,
    "id": STRING,
    "identifierUris": STRINGS,
    "info": OBJECT,
    "isDeviceOnlyAuthSupported": BOOL,
    "isFallbackPublicClient": BOOL,
    "keyCredentials": OBJECTS,
    "logo": STRING,
    "nativeAuthenticationApisEnabled": STRING,
    "notes": STRING,
    "oauth2RequirePostResponse": BOOL,
    "optionalClaims": OBJECT,
    "parentalControlSettings": OBJECT,
    "passwordCredentials": OBJECTS,
    "publicClient": OBJECT,
    "publisherDomain": STRING,
    "requestSignatureVerification": OBJECT,
    "requiredResourceAccess": OBJECTS,
    "samlMetadataUrl": STRING,
    "serviceManagementReference": STRING,
    "servicePrincipalLockConfiguration": OBJECT,
    "signInAudience": STRING,
    "spa": OBJECT,
    "tags": STRINGS,
    "tokenEncryptionKeyId": STRING,
    "uniqueName": STRING,
    "verifiedPublisher": OBJECT,
    "web": OBJECT,
}
WEB_APPLICATION: dict[str, str] = {
    "homePageUrl": STRING,
    "implicitGrantSettings": OBJECT,
    "logoutUrl": STRING,
    "redirectUris": STRINGS,
    "redirectUriSettings": OBJECTS,
}
APP_ROLE: dict[str, str] = {
    "allowedMemberTypes": STRINGS,
    "description": STRING,
    "displayName": STRING,
    "id": STRING,
    "isEnabled": BOOL,
    "origin": STRING,
    "value": STRING,
}
SERVICE_PRINCIPAL: dict[str, str] = {
    "accountEnabled": BOOL,
    "addIns": OBJECTS,
    "alternativeNames": STRINGS,
    "appDescription": STRING,
    "appDisplayName": STRING,
    "appId": STRING,
    "applicationTemplateId": STRING,
    "appOwnerOrganizationId": STRING,
    "appRoleAssignmentRequired": BOOL,
    "appRoles": OBJECTS,
    "customSecurityAttributes": OBJECT,
    "deletedDateTime": STRING,
    "description": STRING,
    "disabledByMicrosoftStatus": STRING,
    "displayName": STRING,
    "homepage": STRING,
    "id": STRING,
    "info": OBJECT,
    "keyCredentials": OBJECTS,
    "loginUrl": STRING,
    "logoutUrl": STRING,
    "notes": STRING,
    "notificationEmailAddresses": STRINGS,
    "oauth2PermissionScopes": OBJECTS,
    "passwordCredentials": OBJECTS,
    "preferredSingleSignOnMode": STRING,
    "preferredTokenSigningKeyThumbprint": STRING,
    "replyUrls": STRINGS,
    "resourceSpecificApplicationPermissions": OBJECTS,
    "samlSingleSignOnSettings": OBJECT,
    "servicePrincipalNames": STRINGS,
    "servicePrincipalType": STRING,
    "signInAudience": STRING,
    "tags": STRINGS,
    "tokenEncryptionKeyId": STRING,
    "verifiedPublisher": OBJECT,
}
PASSWORD_CREDENTIAL: dict[str, str] = {
    "customKeyIdentifier": STRING,
    "displayName": STRING,
    "endDateTime": STRING,
    "hint": STRING,
    "keyId": STRING,
    "secretText": STRING,
    "startDateTime": STRING,
}
FEDERATED_IDENTITY_CREDENTIAL: dict[str, str] = {
    "audiences": STRINGS,
    "claimsMatchingExpression": OBJECT,
    "description": STRING,
    "id": STRING,
    "issuer": STRING,
    "name": STRING,
    "subject": STRING,
}
APP_ROLE_ASSIGNMENT: dict[str, str] = {
    "appRoleId": STRING,
    "createdDateTime": STRING,
    "deletedDateTime": STRING,
    "id": STRING,
    "principalDisplayName": STRING,
    "principalId": STRING,
    "principalType": STRING,
    "resourceDisplayName": STRING,
    "resourceId": STRING,
}
# The parameters of the two actions (application: addPassword, removePassword).
ADD_PASSWORD: dict[str, str] = {"passwordCredential": OBJECT}
REMOVE_PASSWORD: dict[str, str] = {"keyId": STRING}

TYPES: dict[str, dict[str, str]] = {
    "application": APPLICATION,
    "webApplication": WEB_APPLICATION,
    "appRole": APP_ROLE,
    "servicePrincipal": SERVICE_PRINCIPAL,
    "passwordCredential": PASSWORD_CREDENTIAL,
    "federatedIdentityCredential": FEDERATED_IDENTITY_CREDENTIAL,
    "appRoleAssignment": APP_ROLE_ASSIGNMENT,
    "addPassword": ADD_PASSWORD,
    "removePassword": REMOVE_PASSWORD,
}
# Complex properties whose members are checked too: (type, property) -> member type.
NESTED: dict[tuple[str, str], str] = {
    ("application", "web"): "webApplication",
    ("application", "appRoles"): "appRole",
    ("servicePrincipal", "appRoles"): "appRole",
    ("addPassword", "passwordCredential"): "passwordCredential",
}


def _shape_ok(kind: str, value: t.Any) -> bool:
    if value is None:
        return kind not in (STRINGS, OBJECTS)
    if kind == STRING:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == STRINGS:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def check(type_name: str, body: t.Any) -> None:
    """Raise the 400 Graph answers when ``body`` is not a ``microsoft.graph.<type_name>`` (or action parameters)."""
    if not isinstance(body, dict):
        raise HttpError(400, "Request_BadRequest", "The request body must be a JSON object.")
    properties = TYPES[type_name]
    for name, value in body.items():
        if name.startswith("@odata.") or "@odata." in name:
            continue
        kind = properties.get(name)
        if kind is None:
            raise HttpError(
                400,
                "Request_BadRequest",
                f"The property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use "
                "property names that are defined by the type or mark the type as open type.",
            )
        if not _shape_ok(kind, value):
            raise HttpError(
                400,
                "Request_BadRequest",
                f"Invalid value specified for property '{name}' of resource '{type_name}'.",
            )
        member = NESTED.get((type_name, name))
        if member is not None and value is not None:
            for item in value if isinstance(value, list) else [value]:
                check(member, item)


def body_type(method: str, parts: list[str]) -> str | None:
    """The type a request's body must be, for the routes the fake serves (None: no body expected)."""
    if method not in ("POST", "PATCH"):
        return None
    if parts == ["applications"] or (len(parts) == 2 and parts[0] == "applications"):
        return "application"
    if len(parts) == 3 and parts[0] == "applications" and parts[2] in ("addPassword", "removePassword"):
        return parts[2]
    if len(parts) >= 3 and parts[0] == "applications" and parts[2] == "federatedIdentityCredentials":
        return "federatedIdentityCredential"
    if parts == ["servicePrincipals"] or (len(parts) == 2 and parts[0] == "servicePrincipals"):
        return "servicePrincipal"
    if len(parts) == 3 and parts[0] == "servicePrincipals" and parts[2] == "appRoleAssignedTo":
        return "appRoleAssignment"
    return None
