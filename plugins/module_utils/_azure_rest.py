# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small JSON REST client for ARM, Microsoft Graph and the Key Vault data plane.

This module is private to the collection: its names may change in any release.

The modules built on it authenticate exactly like azure.azcollection: they are
``AzureRMModuleBase`` modules, and this client only borrows the credential
(``azure_auth.azure_credential_track2``) and the cloud environment the base
class resolved, so environment credentials, CLI profiles, managed identity and
AWX's Azure credential all work unchanged. The endpoints come from that cloud
environment (``endpoints.resource_manager``, ``endpoints.microsoft_graph_resource_id``,
``suffixes.keyvault_dns``), and each module lets the user override them.

Raw REST rather than the SDK clients because the SDKs either hard-code the
public Graph host (msgraph's ``NationalClouds``) or hide the long-running
operation headers the modules need to wait on.
"""

from __future__ import annotations

import json
import time
import typing as t
from dataclasses import dataclass, field

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - azure.azcollection requires requests
    HAS_REQUESTS = False

USER_AGENT = "zerotrust.aks"
TERMINAL_STATES = ("succeeded", "failed", "canceled", "cancelled")


class AzureRestError(Exception):
    """An HTTP answer the caller did not expect, with Azure's error code and message."""

    def __init__(self, method: str, url: str, status: int, body: t.Any) -> None:
        self.method = method
        self.url = url.split("?")[0]
        self.status = status
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            self.code = str(error.get("code", ""))
            detail = str(error.get("message", ""))
        else:
            self.code = ""
            detail = str(body)[:500]
        super().__init__(f"{method} {self.url} returned {status} {self.code}: {detail}".rstrip(": "))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: t.Any = field(default=None)


class AzureRestClient:
    """JSON over HTTPS with a bearer token for one audience (``scope``)."""

    def __init__(
        self,
        credential: t.Any,
        base_url: str,
        scope: str,
        *,
        timeout: float = 60.0,
        session: t.Any = None,
    ) -> None:
        self.credential = credential
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self.timeout = timeout
        self.session = session if session is not None else requests.Session()
        self.requests: list[tuple[str, str]] = []

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _token(self) -> str:
        return str(self.credential.get_token(self.scope).token)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, str] | None = None,
        body: t.Any = None,
        headers: dict[str, str] | None = None,
        ok: t.Iterable[int] = (200,),
    ) -> Response:
        url = self.url(path_or_url)
        all_headers = {
            "Authorization": f"Bearer {self._token()}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        self.requests.append((method, url.split("?")[0]))
        answer = self.session.request(
            method,
            url,
            params=params,
            data=json.dumps(body) if body is not None else None,
            headers=all_headers,
            timeout=self.timeout,
        )
        try:
            parsed: t.Any = answer.json() if answer.content else None
        except ValueError:
            parsed = answer.text
        if answer.status_code not in tuple(ok):
            raise AzureRestError(method, url, answer.status_code, parsed)
        return Response(answer.status_code, dict(answer.headers), parsed)

    def get_or_none(self, path_or_url: str, params: dict[str, str] | None = None) -> t.Any:
        """GET a resource; ``None`` when it does not exist (404)."""
        answer = self.request("GET", path_or_url, params=params, ok=(200, 404))
        return None if answer.status == 404 else answer.body

    def list_all(self, path_or_url: str, params: dict[str, str] | None = None) -> list[t.Any]:
        """GET a collection and follow ``nextLink`` / ``@odata.nextLink`` pages."""
        items: list[t.Any] = []
        answer = self.request("GET", path_or_url, params=params)
        while True:
            body = answer.body or {}
            items.extend(body.get("value", []))
            next_link = body.get("nextLink") or body.get("@odata.nextLink")
            if not next_link:
                return items
            answer = self.request("GET", next_link)

    def wait_for_arm_operation(
        self,
        answer: Response,
        resource_url: str,
        api_version: str,
        *,
        timeout: float = 1800.0,
        default_interval: float = 10.0,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> t.Any:
        """Wait for an ARM PUT to finish; return the resource as read afterwards.

        Follows ARM's asynchronous operation contract: poll ``Azure-AsyncOperation``
        (or else ``Location``) honouring ``Retry-After`` until the status is
        terminal; with neither header, poll the resource until its
        ``properties.provisioningState`` is terminal.
        """
        headers = {key.lower(): value for key, value in answer.headers.items()}
        monitor = headers.get("azure-asyncoperation") or headers.get("location")
        deadline = clock() + timeout
        state = _provisioning_state(answer.body) if not monitor else ""
        retry_after = _retry_after(headers, default_interval)
        while True:
            if monitor:
                if clock() > deadline:
                    raise TimeoutError(f"operation on {resource_url} did not finish within {timeout:.0f}s")
                sleep(retry_after)
                status = self.request("GET", monitor, ok=(200, 202))
                retry_after = _retry_after({k.lower(): v for k, v in status.headers.items()}, default_interval)
                if status.status == 202:
                    continue
                state = str((status.body or {}).get("status", "succeeded")).lower()
                if state in TERMINAL_STATES:
                    if state != "succeeded":
                        raise AzureRestError("PUT", resource_url, 200, status.body)
                    break
            else:
                if not state or state in TERMINAL_STATES:
                    if state and state != "succeeded":
                        raise AzureRestError("PUT", resource_url, 200, answer.body)
                    break
                if clock() > deadline:
                    raise TimeoutError(f"operation on {resource_url} did not finish within {timeout:.0f}s")
                sleep(retry_after)
                answer = self.request("GET", resource_url, params={"api-version": api_version})
                state = _provisioning_state(answer.body)
        return self.request("GET", resource_url, params={"api-version": api_version}).body


def _provisioning_state(body: t.Any) -> str:
    if isinstance(body, dict):
        return str((body.get("properties") or {}).get("provisioningState", "")).lower()
    return ""


def _retry_after(headers: dict[str, str], default: float) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", default)))
    except ValueError:
        return default


def graph_base_url(cloud_environment: t.Any, override: str | None) -> str:
    """Microsoft Graph root for the cloud, e.g. ``https://graph.microsoft.com``."""
    if override:
        return override.rstrip("/")
    return str(cloud_environment.endpoints.microsoft_graph_resource_id).rstrip("/")


def keyvault_scope(cloud_environment: t.Any) -> str:
    """Token audience of the Key Vault data plane: ``https://vault.azure.net/.default`` in AzureCloud."""
    suffix = str(cloud_environment.suffixes.keyvault_dns).lstrip(".")
    return f"https://{suffix}/.default"
