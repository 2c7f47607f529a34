#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: arm_resource
short_description: Read or write one Azure Resource Manager resource, riding out throttling, faults and long operations
version_added: 0.2.0
description:
  - Sends one request to Azure Resource Manager for the resource O(url) - C(GET) to read it, C(PUT), C(POST) or
    C(DELETE) to change it - with the credential resolved exactly like azure.azcollection.
  - Throttling (429, honouring C(Retry-After)), server errors (5xx) and network errors (a connection refused, a
    host name that does not resolve yet) are retried for O(azure_retry_timeout) seconds; a long-running operation
    (C(Azure-AsyncOperation), C(Location), or a C(provisioningState) that is not terminal yet) is waited for, up to
    O(operation_timeout) seconds. The final error names the request, the status and Azure's error code and message.
  - C(azure.azcollection.azure_rm_resource) and C(azure_rm_resource_info) have no retry policy at all (one 429 or
    503 fails the task with a traceback), hence this module for the calls the collection makes.
  - The roles compare what they read with what they want and only then write; this module does not diff bodies.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - C(GET) runs; any other method is not sent and reports C(changed).
  diff_mode:
    support: none
options:
  url:
    description:
      - The resource id (C(/subscriptions/<id>/resourceGroups/<name>/providers/...)), or a sub-path of it.
      - Or a full C(https) URL on the cloud's Azure Resource Manager host, such as the C(Azure-AsyncOperation)
        status URL a long-running operation gives (RV(zerotrust.aks.aks_keyvault_addon#module:operation_url)). Its
        query is kept. A URL on any other host is refused, so the ARM token never leaves ARM.
    type: str
    required: true
  api_version:
    description:
      - The C(api-version) of the resource provider.
      - Required unless O(url) is a full URL whose query has an C(api-version).
    type: str
  method:
    description: C(GET) reads (a missing resource is not an error, see RV(exists)); the others write.
    type: str
    choices: [GET, PUT, POST, DELETE]
    default: GET
  body:
    description: The request body of a C(PUT) or C(POST).
    type: dict
  wait:
    description: Wait for a long-running operation to finish and return the resource as read afterwards.
    type: bool
    default: true
  operation_timeout:
    description: Seconds to wait for a long-running operation.
    type: int
    default: 1800
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
  - zerotrust.aks.azure_retry
"""

EXAMPLES = r"""
- name: Read a user-assigned identity
  zerotrust.aks.arm_resource:
    url: /subscriptions/{{ sub }}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1
    api_version: "2023-01-31"
  register: identity

- name: Wait for an operation Azure runs in the background, one poll every 10 seconds
  zerotrust.aks.arm_resource:
    url: "{{ change.operation_url }}"  # an Azure-AsyncOperation URL, with its api-version
  register: operation
  until: operation.resource.status | default('') | lower in ['succeeded', 'failed', 'canceled']
  retries: 180
  delay: 10

- name: Create it when it is missing
  zerotrust.aks.arm_resource:
    url: /subscriptions/{{ sub }}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1
    api_version: "2023-01-31"
    method: PUT
    body:
      location: westeurope
  when: not identity.exists
"""

RETURN = r"""
exists:
  description: C(GET) - whether the resource exists (C(false) on 404).
  returned: always
  type: bool
resource:
  description: The resource as Azure answered (after a long-running operation, as read afterwards); C({}) when none.
  returned: always
  type: dict
status:
  description: The HTTP status of the answer; C(0) when nothing was sent (check mode).
  returned: always
  type: int
"""

import typing as t
from urllib.parse import parse_qs, urlsplit

from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    TERMINAL_STATES,
    AzureRestError,
    arm_client,
)


def long_running(answer: t.Any) -> bool:
    """Whether ARM answered with an operation still running: a monitor header, or a state not yet final.

    https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations
    """
    headers = {key.lower() for key in answer.headers}
    if "azure-asyncoperation" in headers or (answer.status == 202 and "location" in headers):
        return True
    body = answer.body if isinstance(answer.body, dict) else {}
    state = str((body.get("properties") or {}).get("provisioningState", "")).lower()
    return bool(state) and state not in TERMINAL_STATES


class ArmResource(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            url=dict(type="str", required=True),
            api_version=dict(type="str"),
            method=dict(type="str", default="GET", choices=["GET", "PUT", "POST", "DELETE"]),
            body=dict(type="dict"),
            wait=dict(type="bool", default=True),
            operation_timeout=dict(type="int", default=1800),
            azure_retry_timeout=dict(type="int", default=600),
        )
        self.results: dict[str, t.Any] = dict(changed=False, exists=False, resource={}, status=0)
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False)

    def request_target(self, base_url: str, url: str, api_version: str | None) -> tuple[str, dict[str, str]]:
        """The path or same-host URL to send, and the query to add (none when the URL carries its api-version)."""
        if url.lower().startswith(("https://", "http://")):
            given, arm = urlsplit(url), urlsplit(base_url)
            if (given.scheme, given.netloc.lower()) != (arm.scheme, arm.netloc.lower()):
                self.fail(
                    f"url must be a resource id or a URL on Azure Resource Manager ({arm.scheme}://{arm.netloc}); "
                    f"got a URL on {given.netloc}"
                )
            if "api-version" in parse_qs(given.query):
                return url, {}
            target = url
        else:
            target = "/" + url.lstrip("/")
            if not target.lower().startswith("/subscriptions/"):
                self.fail(f"url must be a resource id starting with /subscriptions/, got {url!r}")
        if not api_version:
            self.fail(
                f"api_version is required for {url} (only a full URL with an api-version in its query needs none)"
            )
        return target, {"api-version": str(api_version)}

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        arm = arm_client(self.azure_auth, kwargs["azure_retry_timeout"])
        url, params = self.request_target(arm.base_url, kwargs["url"].strip(), kwargs["api_version"])
        method = kwargs["method"]
        try:
            if method == "GET":
                answer = arm.request("GET", url, params=params, ok=(200, 404))
                found = answer.status == 200
                self.results.update(exists=found, resource=answer.body if found else {}, status=answer.status)
            elif self.check_mode:
                self.results.update(changed=True)
            else:
                answer = arm.request(method, url, params=params, body=kwargs["body"], ok=(200, 201, 202, 204))
                resource = answer.body if isinstance(answer.body, dict) else {}
                if kwargs["wait"] and method == "PUT" and long_running(answer):
                    resource = arm.wait_for_arm_operation(
                        answer,
                        url,
                        params.get("api-version") or kwargs["api_version"],
                        timeout=float(kwargs["operation_timeout"]),
                        default_interval=5.0,
                    )
                self.results.update(
                    changed=True, exists=method != "DELETE", resource=resource or {}, status=answer.status
                )
        except (AzureRestError, TimeoutError) as exc:
            self.fail(str(exc))
        summary = arm.retry_summary()
        if summary:
            self.module.warn(f"{method} {url}: {summary}")
        return self.results


def main() -> None:
    ArmResource()


if __name__ == "__main__":
    main()
