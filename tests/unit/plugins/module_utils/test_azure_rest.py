# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the REST client's retries: what is retried, how long it waits, what the final error says."""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import types

import pytest
import requests
from ansible_collections.zerotrust.aks.plugins.module_utils import _azure_rest as rest
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import Answer, FakeSession, VirtualClock

URL = "https://management.example/subscriptions/s/resourceGroups/rg"
TOKEN = types.SimpleNamespace(get_token=lambda scope: types.SimpleNamespace(token="t0ken"))  # noqa: S106


def client(session: FakeSession, clock: VirtualClock, retry_timeout: float = 600.0) -> rest.AzureRestClient:
    return rest.AzureRestClient(
        TOKEN,
        "https://management.example",
        "https://management.example/.default",
        session=session,
        retry_timeout=retry_timeout,
        sleep=clock.sleep,
        clock=clock.clock,
        jitter=lambda: 1.0,
    )


def throttled(seconds: str = "7") -> Answer:
    return Answer(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": seconds})


def dns_failure() -> requests.ConnectionError:
    """What requests raises when getaddrinfo fails (urllib3 wraps the gaierror)."""
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as cause:
        try:
            raise requests.ConnectionError(
                "HTTPSConnectionPool(host='kv.vault.example', port=443): Max retries exceeded with url: "
                "/secrets/x?api-version=7.4 (Caused by NameResolutionError(...))"
            ) from cause
        except requests.ConnectionError as exc:
            return exc


def test_429_honours_retry_after_then_succeeds() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", throttled("7"), throttled("3"), Answer(200, {"id": "rg"}))
    arm = client(session, clock)
    assert arm.request("GET", "subscriptions/s/resourceGroups/rg").body == {"id": "rg"}
    assert clock.sleeps == [7.0, 3.0]
    assert arm.retry_summary() == "retried 2 Azure request(s) (2x 429 TooManyRequests), waiting 10s in total"


def test_retry_after_as_http_date() -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    assert 25 <= (rest.retry_after({"Retry-After": email.utils.format_datetime(when, usegmt=True)}) or 0) <= 30
    assert rest.retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert rest.retry_after({"x-ms-retry-after-ms": "1500"}) == 1.5
    assert rest.retry_after({"Retry-After": "soon"}) is None
    assert rest.retry_after({}) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_back_off_exponentially(status: int) -> None:
    clock, session = VirtualClock(), FakeSession()
    failure = Answer(status, {"error": {"code": "ServerBusy", "message": "try later"}})
    session.on("PUT", "/rg$", failure, failure, failure, Answer(201, {"id": "rg"}))
    assert client(session, clock).request("PUT", URL, body={}, ok=(200, 201)).status == 201
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_backoff_is_capped() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", *[Answer(503)] * 9, Answer(200, {}))
    client(session, clock).request("GET", URL)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_final_error_names_method_resource_status_attempts_and_time() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", Answer(503, {"error": {"code": "ServiceUnavailable", "message": "down"}}))
    with pytest.raises(rest.AzureRestError) as caught:
        client(session, clock, retry_timeout=100).request("GET", URL, params={"api-version": "2024-01-01"})
    error = caught.value
    assert error.status == 503 and error.code == "ServiceUnavailable"
    assert str(error).startswith(f"GET {URL} returned 503 ServiceUnavailable: down (gave up after ")
    assert "over 100s, the retry bound is 100s)" in str(error)
    assert "api-version" not in str(error)
    assert sum(clock.sleeps) == pytest.approx(100)
    assert error.attempts == len(session.log) == len(clock.sleeps) + 1


def test_retry_after_beyond_the_bound_fails_at_once() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", throttled("900"))
    with pytest.raises(rest.AzureRestError) as caught:
        client(session, clock, retry_timeout=600).request("GET", URL)
    assert clock.sleeps == [] and caught.value.status == 429


def test_dns_failure_is_retried_until_the_name_resolves() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/secrets/x$", dns_failure(), dns_failure(), Answer(200, {"value": "v"}))
    vault = rest.AzureRestClient(
        TOKEN,
        "https://kv.vault.example",
        "s",
        session=session,
        sleep=clock.sleep,
        clock=clock.clock,
        jitter=lambda: 1.0,
    )
    assert vault.request("GET", "secrets/x").body == {"value": "v"}
    assert clock.sleeps == [1.0, 2.0]
    assert "does not resolve" in vault.retries[0].reason


def test_dns_failure_final_error_is_clear_and_has_no_query() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("POST", "/recover$", dns_failure())
    with pytest.raises(rest.AzureRestError) as caught:
        client(session, clock, retry_timeout=30).request(
            "POST", "https://kv.vault.example/deletedsecrets/x/recover", params={"api-version": "7.4"}
        )
    message = str(caught.value)
    assert message.startswith("POST https://kv.vault.example/deletedsecrets/x/recover failed: ConnectionError: ")
    assert "the host name kv.vault.example does not resolve" in message
    assert "gave up after" in message and "api-version" not in message
    assert caught.value.status == 0 and caught.value.code == "ConnectionError"


def test_connect_timeout_is_retried_for_post() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("POST", "/x$", requests.ConnectTimeout("connect timeout"), Answer(200, {}))
    client(session, clock).request("POST", URL + "/x")
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize(
    "error",
    [requests.ReadTimeout("read timed out"), requests.ConnectionError("('Connection aborted.', RemoteDisconnected())")],
)
def test_post_that_may_have_been_applied_is_not_repeated(error: Exception) -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("POST", "/addPassword$", error)
    with pytest.raises(rest.AzureRestError) as caught:
        client(session, clock).request("POST", URL + "/addPassword")
    assert len(session.log) == 1 and clock.sleeps == []
    assert "gave up" not in str(caught.value)


def test_get_read_timeout_is_retried() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", requests.ReadTimeout("read timed out"), Answer(200, {}))
    client(session, clock).request("GET", URL)
    assert len(session.log) == 2


def test_certificate_errors_are_not_retried() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on("GET", "/rg$", requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(rest.AzureRestError):
        client(session, clock).request("GET", URL)
    assert len(session.log) == 1


@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [
        ("POST", 429, True),
        ("POST", 503, True),
        ("POST", 502, False),
        ("PATCH", 502, True),
        ("DELETE", 500, True),
        ("GET", 501, False),
        ("GET", 409, False),
        ("PUT", 400, False),
    ],
)
def test_which_statuses_are_retried(method: str, status: int, retried: bool) -> None:
    assert rest.is_retryable_status(method, status) is retried


def test_client_errors_fail_at_once_with_azure_code() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on(
        "PUT",
        "/rg$",
        Answer(
            403,
            {"error": {"code": "Forbidden", "message": "no", "innererror": {"code": "ForbiddenByRbac"}}},
        ),
    )
    with pytest.raises(rest.AzureRestError) as caught:
        client(session, clock).request("PUT", URL, body={})
    assert (caught.value.status, caught.value.code, caught.value.inner_code) == (403, "Forbidden", "ForbiddenByRbac")
    assert str(caught.value) == f"PUT {URL} returned 403 Forbidden: no"


def test_operation_polling_is_retried_too() -> None:
    clock, session = VirtualClock(), FakeSession()
    session.on(
        "GET",
        "/operations/1$",
        throttled("2"),
        Answer(200, {"status": "InProgress"}, {"Retry-After": "5"}),
        Answer(200, {"status": "Succeeded"}),
    )
    session.on("GET", "/rg$", Answer(200, {"id": "rg"}))
    arm = client(session, clock)
    started = rest.Response(201, {"Azure-AsyncOperation": "https://management.example/operations/1"}, None)
    assert arm.wait_for_arm_operation(started, URL, "2024-01-01", default_interval=3) == {"id": "rg"}
    assert clock.sleeps == [3.0, 2.0, 5.0]
