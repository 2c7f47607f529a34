# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small JSON REST client for ARM, Microsoft Graph and the Key Vault data plane.

This module is private to the collection: its names may change in any release.

The modules built on it authenticate by azure.azcollection's rules (``_azure_auth.AzureModule``),
and this client only borrows the credential (``azure_auth.azure_credential_track2``) and the
cloud environment the base class resolved, so environment credentials, CLI profiles, managed
identity and AWX's Azure credential all work unchanged. The endpoints come from that cloud
environment (``endpoints.resource_manager``, ``endpoints.microsoft_graph_resource_id``,
``suffixes.keyvault_dns``), and each module lets the user override them.

Raw REST rather than the SDK clients because the SDKs either hard-code the
public Graph host (msgraph's ``NationalClouds``) or hide the long-running
operation headers the modules need to wait on.

Transient failures are retried the way azure-core's ``RetryPolicy`` does, but bounded by
time (``retry_timeout``) instead of by a count of three, because a new vault's DNS name or a
throttled subscription can take minutes to come back:

- ``429`` always: Azure Resource Manager and Microsoft Graph answer it before processing the
  request and say in ``Retry-After`` (seconds or an HTTP date; ``retry-after-ms`` and
  ``x-ms-retry-after-ms`` in milliseconds) when to come back
  (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling,
  https://learn.microsoft.com/graph/throttling).
- ``500``, ``502``, ``503``, ``504`` for idempotent methods; ``POST`` on ``500``, ``503`` and
  ``504`` as azure-core does (``RetryPolicyBase._is_method_retryable``).
- A connection that could not be made (the host name does not resolve - a new Key Vault's name
  takes a while to appear in DNS -, connection refused, connect timeout): always, since nothing
  was sent. A connection lost after the request was sent, or a read timeout: only for idempotent
  methods, because a ``POST`` may have been applied.

Between attempts it sleeps ``Retry-After`` when the answer has one, else an exponential backoff
(1 s, 2 s, 4 s ... at most 60 s, with jitter). When the bound is reached the error names the
method, the resource (never the query string), the last status or network error, the number of
attempts and the seconds spent.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import random
import time
import typing as t
from dataclasses import dataclass, field
from urllib.parse import urlsplit

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - azure.azcollection requires requests
    HAS_REQUESTS = False

USER_AGENT = "zerotrust.aks"
TERMINAL_STATES = ("succeeded", "failed", "canceled", "cancelled")
DEFAULT_RETRY_TIMEOUT = 600.0
RETRY_STATUSES = frozenset((429, 500, 502, 503, 504))
# Methods whose repetition cannot apply a change twice (a PATCH here is a JSON merge patch of
# fixed content, so sending it again leaves the same state).
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"))
# What azure-core retries for a POST (RetryPolicyBase._is_method_retryable), besides 429.
POST_RETRY_STATUSES = frozenset((429, 500, 503, 504))
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0

# Indirections the unit tests replace to run retries and waits on a virtual clock.
sleep = time.sleep
clock = time.monotonic


def _jitter() -> float:
    return random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries needs no cryptographic randomness


class AzureRestError(Exception):
    """An HTTP answer the caller did not expect, with Azure's error code and message.

    ``attempts`` and ``elapsed`` tell how often and for how long the request was tried when it
    failed after retries; ``status`` is ``0`` when the last attempt got no answer at all
    (``code`` is then the network error's name).
    """

    def __init__(
        self,
        method: str,
        url: str,
        status: int,
        body: t.Any,
        *,
        attempts: int = 1,
        elapsed: float = 0.0,
        retry_timeout: float | None = None,
        network_error: str = "",
        headers: t.Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.headers = dict(headers or {})
        self.url = url.split("?")[0]
        self.status = status
        self.body = body
        self.attempts = attempts
        self.elapsed = elapsed
        self.inner_code = ""
        error = body.get("error") if isinstance(body, dict) else None
        if network_error:
            self.code = network_error.split(":", 1)[0]
            detail = network_error
        elif isinstance(error, dict):
            self.code = str(error.get("code", ""))
            detail = str(error.get("message", ""))
            inner = error.get("innererror") or error.get("innerError")
            if isinstance(inner, dict):
                self.inner_code = str(inner.get("code", ""))
        else:
            self.code = ""
            detail = str(body)[:500] if body is not None else ""
        self.detail = detail
        if network_error:
            text = f"{method} {self.url} failed: {detail}"
        else:
            text = f"{method} {self.url} returned {status} {self.code}".rstrip()
            if detail:
                text += f": {detail}"
        if attempts > 1:
            bound = f", the retry bound is {retry_timeout:.0f}s" if retry_timeout is not None else ""
            text += f" (gave up after {attempts} attempts over {elapsed:.0f}s{bound})"
        super().__init__(text)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: t.Any = field(default=None)


@dataclass
class Retry:
    """One retried attempt: what failed and how long the client waited before the next."""

    method: str
    url: str
    reason: str
    delay: float


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
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        sleep: t.Callable[[float], None] | None = None,
        clock: t.Callable[[], float] | None = None,
        jitter: t.Callable[[], float] | None = None,
    ) -> None:
        self.credential = credential
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self.timeout = timeout
        self.session = session if session is not None else requests.Session()
        self.retry_timeout = float(retry_timeout)
        # Looked up at construction so the unit tests can swap the module-level ones.
        self.sleep = sleep if sleep is not None else globals()["sleep"]
        self.clock = clock if clock is not None else globals()["clock"]
        self.jitter = jitter if jitter is not None else _jitter
        self.requests: list[tuple[str, str]] = []
        self.retries: list[Retry] = []

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
        accepted = tuple(ok)
        data = json.dumps(body) if body is not None else None
        started = self.clock()
        deadline = started + self.retry_timeout
        attempts = 0
        while True:
            attempts += 1
            all_headers = {
                "Authorization": f"Bearer {self._token()}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
            if body is not None:
                all_headers["Content-Type"] = "application/json"
            all_headers.update(headers or {})
            self.requests.append((method, url.split("?")[0]))
            try:
                answer = self.session.request(
                    method, url, params=params, data=data, headers=all_headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                problem, sent = describe_network_error(exc, url, self.timeout)
                # A certificate the client refuses (SSLError is a ConnectionError) does not heal.
                retryable = (
                    isinstance(exc, (requests.ConnectionError, requests.Timeout))
                    and not isinstance(exc, requests.exceptions.SSLError)
                    and (not sent or method.upper() in IDEMPOTENT_METHODS)
                )
                delay = self._backoff(attempts)
                if not retryable or not self._wait(method, url, problem, delay, deadline, honour=False):
                    raise AzureRestError(
                        method,
                        url,
                        0,
                        None,
                        attempts=attempts,
                        elapsed=self.clock() - started,
                        retry_timeout=self.retry_timeout if retryable else None,
                        network_error=problem,
                    ) from exc
                continue
            try:
                parsed: t.Any = answer.json() if answer.content else None
            except ValueError:
                parsed = answer.text
            status = answer.status_code
            if status in accepted:
                return Response(status, dict(answer.headers), parsed)
            if is_retryable_status(method, status):
                hinted = retry_after(answer.headers)
                delay = hinted if hinted is not None else self._backoff(attempts)
                reason = f"{status} {_error_code(parsed)}".rstrip()
                if self._wait(method, url, reason, delay, deadline, honour=hinted is not None):
                    continue
            raise AzureRestError(
                method,
                url,
                status,
                parsed,
                attempts=attempts,
                elapsed=self.clock() - started,
                retry_timeout=self.retry_timeout,
                headers=answer.headers,
            )

    def _backoff(self, attempts: int) -> float:
        return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempts - 1)) * self.jitter())

    def _wait(self, method: str, url: str, reason: str, delay: float, deadline: float, *, honour: bool) -> bool:
        """Sleep before the next attempt; ``False`` when the retry bound leaves no room for one.

        A server-given ``Retry-After`` is honoured in full (coming back earlier only earns another
        refusal); a backoff of our own is shortened to what is left of the bound.
        """
        remaining = deadline - self.clock()
        if remaining <= 0 or (honour and delay > remaining):
            return False
        delay = max(0.0, min(delay, remaining))
        self.retries.append(Retry(method, url.split("?")[0], reason, delay))
        self.sleep(delay)
        return True

    def retry_summary(self) -> str:
        """One sentence about the retries so far (for a module warning); empty when there were none."""
        if not self.retries:
            return ""
        reasons: dict[str, int] = {}
        for retry in self.retries:
            reasons[retry.reason] = reasons.get(retry.reason, 0) + 1
        listed = ", ".join(f"{count}x {reason}" for reason, count in reasons.items())
        waited = sum(retry.delay for retry in self.retries)
        return f"retried {len(self.retries)} Azure request(s) ({listed}), waiting {waited:.0f}s in total"

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
        sleep: t.Callable[[float], None] | None = None,
        clock: t.Callable[[], float] | None = None,
    ) -> t.Any:
        """Wait for an ARM PUT to finish; return the resource as read afterwards.

        Follows ARM's asynchronous operation contract: poll ``Azure-AsyncOperation``
        (or else ``Location``) honouring ``Retry-After`` until the status is
        terminal; with neither header, poll the resource until its
        ``properties.provisioningState`` is terminal.
        """
        sleep = sleep or self.sleep
        clock = clock or self.clock
        headers = {key.lower(): value for key, value in answer.headers.items()}
        monitor = headers.get("azure-asyncoperation") or headers.get("location")
        deadline = clock() + timeout
        state = _provisioning_state(answer.body) if not monitor else ""
        interval = _poll_interval(headers, default_interval)
        while True:
            if monitor:
                if clock() > deadline:
                    raise TimeoutError(f"operation on {resource_url} did not finish within {timeout:.0f}s")
                sleep(interval)
                status = self.request("GET", monitor, ok=(200, 202))
                interval = _poll_interval({k.lower(): v for k, v in status.headers.items()}, default_interval)
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
                sleep(interval)
                answer = self.request("GET", resource_url, params={"api-version": api_version})
                state = _provisioning_state(answer.body)
        return self.request("GET", resource_url, params={"api-version": api_version}).body


def arm_client(azure_auth: t.Any, retry_timeout: float) -> AzureRestClient:
    """A client for Azure Resource Manager with the credential and cloud ``AzureModule`` resolved."""
    resource_manager = str(azure_auth._cloud_environment.endpoints.resource_manager).rstrip("/")
    return AzureRestClient(
        azure_auth.azure_credential_track2,
        resource_manager,
        resource_manager + "/.default",
        retry_timeout=float(retry_timeout),
    )


def is_retryable_status(method: str, status: int) -> bool:
    if status == 429:
        return True
    if method.upper() in IDEMPOTENT_METHODS:
        return status in RETRY_STATUSES
    return method.upper() == "POST" and status in POST_RETRY_STATUSES


def retry_after(headers: t.Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: ``Retry-After`` (seconds or HTTP date) or its millisecond forms."""
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = lowered.get(name)
        if value:
            try:
                return max(0.0, float(value) / 1000.0)
            except ValueError:
                return None
    return None


def describe_network_error(exc: Exception, url: str, timeout: float) -> tuple[str, bool]:
    """A short cause for a failed connection, and whether the request may have reached the server.

    The exception's own text repeats the URL with its query string, so it is summarised instead.
    """
    host = urlsplit(url).hostname or url
    text = repr(exc)
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    text += "".join(repr(item) for item in causes[1:])
    name = type(exc).__name__
    if any(
        marker in text
        for marker in (
            "NameResolutionError",
            "gaierror",
            "Name or service not known",
            "Temporary failure in name resolution",
            "nodename nor servname",
            "getaddrinfo failed",
            "No address associated with hostname",
        )
    ):
        return (
            f"{name}: the host name {host} does not resolve (a new Key Vault's name can take minutes to appear)",
            False,
        )
    if HAS_REQUESTS and isinstance(exc, requests.ConnectTimeout):
        return f"{name}: connecting to {host} timed out", False
    if HAS_REQUESTS and isinstance(exc, requests.Timeout):
        return f"{name}: {host} did not answer within {timeout:.0f}s", True
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return f"{name}: {host} refused the connection", False
    if any(marker in text for marker in ("Connection aborted", "RemoteDisconnected", "ProtocolError", "reset")):
        return f"{name}: {host} closed the connection before answering", True
    return f"{name}: the connection to {host} failed", True


def _error_code(body: t.Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _provisioning_state(body: t.Any) -> str:
    if isinstance(body, dict):
        return str((body.get("properties") or {}).get("provisioningState", "")).lower()
    return ""


def _poll_interval(headers: dict[str, str], default: float) -> float:
    hinted = retry_after(headers)
    return default if hinted is None else hinted


def graph_base_url(cloud_environment: t.Any, override: str | None) -> str:
    """Microsoft Graph root for the cloud, e.g. ``https://graph.microsoft.com``."""
    if override:
        return override.rstrip("/")
    return str(cloud_environment.endpoints.microsoft_graph_resource_id).rstrip("/")


def keyvault_scope(cloud_environment: t.Any) -> str:
    """Token audience of the Key Vault data plane: ``https://vault.azure.net/.default`` in AzureCloud."""
    suffix = str(cloud_environment.suffixes.keyvault_dns).lstrip(".")
    return f"https://{suffix}/.default"
