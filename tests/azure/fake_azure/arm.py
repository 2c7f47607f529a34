"""Azure Resource Manager: the router from a request path to the resource provider that serves it.

Resource groups (GET) are answered here; each provider type has its own module.
"""

from __future__ import annotations

import re
import typing as t

from . import identities, managed_clusters, role_assignments, vaults
from .common import Answer, HttpError

if t.TYPE_CHECKING:
    from .server import FakeAzure


def handle(fake: FakeAzure, method: str, path: str, query: dict[str, str], body: t.Any) -> Answer:
    if "api-version" not in query:
        raise HttpError(400, "MissingApiVersionParameter", "The api-version query parameter is required")
    lower = path.lower().rstrip("/")
    sub = f"/subscriptions/{fake.subscription_id}"
    if not lower.startswith(sub):
        raise HttpError(404, "SubscriptionNotFound", f"subscription in {path} not found")
    m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)", lower)
    if m:
        resource_group = fake.resource_groups.get(m.group(1))
        if method == "GET" and resource_group:
            return Answer(200, resource_group)
        raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{m.group(1)}' could not be found.")
    if lower == sub + "/providers/microsoft.authorization/roleassignments" and method == "GET":
        return role_assignments.list_at_subscription(fake)
    m = re.fullmatch(
        re.escape(sub) + r"/providers/microsoft.containerservice/locations/[^/]+/operations/([^/]+)", lower
    )
    if m:
        return managed_clusters.operation_status(fake, m.group(1))
    if "/providers/microsoft.authorization/roleassignments/" in lower:
        return role_assignments.handle(fake, method, path, body)
    m = re.fullmatch(re.escape(sub) + r"/resourcegroups/([^/]+)/providers/([^/]+/[^/]+)/([^/]+)(/.*)?", lower)
    if not m:
        raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
    group, provider_type = m.group(1), m.group(2)
    if group not in fake.resource_groups:
        raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
    if provider_type == "microsoft.keyvault/vaults" and not m.group(4):
        return vaults.handle(fake, method, path, body)
    if provider_type == "microsoft.containerservice/managedclusters" and not m.group(4):
        return managed_clusters.handle(fake, method, path, body)
    if provider_type == "microsoft.managedidentity/userassignedidentities":
        return identities.handle(fake, method, path, body, m.group(4) or "")
    raise HttpError(501, "NotImplemented", f"no fake for {method} {path}")
