"""Seeded fault injection and the kill point: what a request meets before any service handles it.

Faults are decided before the request reaches its service, so a faulted request never changes
state, exactly like a request Azure throttles or fails at its front door:

* throttling: 429 with ``Retry-After`` (seconds). ARM: "When you reach the limit, you receive the
  HTTP status code 429 Too many requests. The response includes a Retry-After value"
  (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling);
  Graph: "Microsoft Graph returns HTTP status code 429 (Too many requests) ... A suggested wait time
  is returned in the response header" (https://learn.microsoft.com/graph/throttling); Key Vault:
  "returns HTTP status code 429 (Too many requests), and the request fails"
  (https://learn.microsoft.com/azure/key-vault/general/overview-throttling). Each body is the
  service's own error shape; a 429 is never counted as a request that did anything.
* server errors: 500/502/503/504 in bursts of ``error_burst`` consecutive requests, the transient
  faults every Azure client is told to retry
  (https://learn.microsoft.com/azure/architecture/best-practices/retry-service-specific;
  Graph 503 ``serviceNotAvailable`` "may include a Retry-After header",
  https://learn.microsoft.com/graph/errors).
* the kill point: the client holding the connection of the N-th counted request is SIGKILLed, with
  the ``ansible-playbook`` processes above it, and the request is not answered: the whole run stops
  between two calls, as a cancelled AWX job or a lost controller stops it (killing only the module
  would let a task with ``until``/``retries`` try again, which a cancelled job never does).

Services a request belongs to: ``login`` (token endpoint and discovery), ``arm`` (the rest of the
main endpoint; both are also ``main``), ``graph``, ``keyvault``. ``Faults.services`` empty means
every service but ``login``: the token endpoint only faults when named (``login`` or ``main``).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import typing as t
import uuid

import psutil

from .behaviour import Faults
from .common import Answer

# Statuses and their codes, per service (ARM: https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors;
# Graph: https://learn.microsoft.com/graph/errors; Key Vault: https://learn.microsoft.com/azure/key-vault/general/rest-error-codes).
ARM_ERRORS = {
    500: ("InternalServerError", "Encountered internal server error. Diagnostic information: tracking id '{id}'."),
    502: ("BadGateway", "The gateway did not receive a response from 'Microsoft.Resources' within the specified time."),
    503: ("ServiceUnavailable", "The service is currently unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}
GRAPH_ERRORS = {
    500: ("generalException", "An unspecified error has occurred."),
    502: ("badGateway", "The server, while acting as a proxy, received an invalid response from the upstream server."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry after a delay."),
    504: ("gatewayTimeout", "The server, while acting as a proxy, did not receive a timely response."),
}
KEYVAULT_ERRORS = {
    500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
    502: ("BadGateway", "The server received an invalid response from an upstream server."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please retry the request."),
    504: ("GatewayTimeout", "The server did not receive a timely response from an upstream server."),
}


def services_of(role: str, login_route: bool) -> set[str]:
    if role == "main":
        return {"main", "login"} if login_route else {"main", "arm"}
    return {role}


class FaultInjector:
    """Decides, deterministically from ``Faults.seed``, which requests fail and how.

    A new ``Faults`` object (a test assigning ``behaviour.faults``) restarts the sequence from its
    seed; the same seed and the same request order give the same faults.
    """

    def __init__(self) -> None:
        self._faults: Faults | None = None
        self._rng = random.Random(0)  # noqa: S311 - reproducible fault choice, not a secret
        self._burst_left = 0
        self._burst_status = 503

    def decide(self, faults: Faults, role: str, login_route: bool, method: str, subscription: str) -> Answer | None:
        if faults is not self._faults:
            self._faults = faults
            self._rng = random.Random(faults.seed)  # noqa: S311 - reproducible fault choice
            self._burst_left = 0
        services = services_of(role, login_route)
        wanted = set(faults.services) if faults.services else {"arm", "graph", "keyvault"}
        if not services & wanted:
            return None
        if self._burst_left > 0:
            self._burst_left -= 1
            return server_error(role, login_route, self._burst_status, faults.retry_after)
        throttle_draw, error_draw = self._rng.random(), self._rng.random()
        if throttle_draw < faults.throttle_rate:
            return throttled(role, login_route, method, faults.retry_after, subscription)
        if error_draw < faults.error_rate:
            self._burst_left = max(faults.error_burst, 1) - 1
            self._burst_status = faults.error_status
            return server_error(role, login_route, faults.error_status, faults.retry_after)
        return None


def _graph_inner() -> dict[str, str]:
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}


def throttled(role: str, login_route: bool, method: str, retry_after: int, subscription: str) -> Answer:
    headers = {"Retry-After": str(retry_after)}
    if login_route:
        # Entra ID answers OAuth errors as error/error_description
        # (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
        body: t.Any = {
            "error": "temporarily_unavailable",
            "error_description": f"Too many requests. Retry after {retry_after} seconds.",
        }
    elif role == "main":
        kind = "read" if method == "GET" else "write"
        body = {
            "error": {
                "code": "SubscriptionRequestsThrottled",
                "message": f"Number of '{kind}' requests for subscription '{subscription}' exceeded. "
                f"Please try again after '{retry_after}' seconds after additional tokens are available. "
                "Refer to https://aka.ms/arm-throttling",
            }
        }
    elif role == "graph":
        body = {"error": {"code": "TooManyRequests", "message": "Too many requests", "innerError": _graph_inner()}}
    else:
        body = {
            "error": {
                "code": "Throttled",
                "message": "Request was not processed because too many requests were received. "
                "Reason: VaultRequestTypeLimitReached",
            }
        }
    return Answer(429, body, headers)


def server_error(role: str, login_route: bool, status: int, retry_after: int) -> Answer:
    headers = {"Retry-After": str(retry_after)} if status == 503 else {}
    if login_route:
        return Answer(
            status,
            {"error": "temporarily_unavailable", "error_description": "AADSTS90033: A transient error has occurred."},
            headers,
        )
    table = {"main": ARM_ERRORS, "graph": GRAPH_ERRORS}.get(role, KEYVAULT_ERRORS)
    code, message = table.get(status, (f"Http{status}", f"Injected HTTP {status}."))
    error: dict[str, t.Any] = {"code": code, "message": message.format(id=uuid.uuid4())}
    if role == "graph":
        error["innerError"] = _graph_inner()
    return Answer(status, {"error": error}, headers)


def client_pids(connection: socket.socket) -> list[int]:
    """The processes (other than this one) holding the client end of ``connection``."""
    peer = connection.getpeername()[:2]
    local = connection.getsockname()[:2]
    pids = set()
    for found in psutil.net_connections(kind="tcp"):
        if not found.laddr or not found.raddr or found.pid is None:
            continue
        if (found.laddr.ip, found.laddr.port) == tuple(peer) and (found.raddr.ip, found.raddr.port) == tuple(local):
            pids.add(found.pid)
    pids.discard(os.getpid())
    return sorted(pids)


def controllers(pid: int) -> list[int]:
    """The ``ansible-playbook`` processes above ``pid`` (its worker and the run), nearest last."""
    found = []
    try:
        for parent in psutil.Process(pid).parents():
            if any("ansible-playbook" in part for part in parent.cmdline()):
                found.append(parent.pid)
    except psutil.Error:
        pass
    return found[::-1]


def kill_client(connection: socket.socket) -> list[int]:
    """SIGKILL the client of ``connection`` and the run above it; the pids killed (none for this process)."""
    killed = []
    clients = client_pids(connection)
    targets = [pid for client in clients for pid in controllers(client)] + clients
    for pid in dict.fromkeys(targets):
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(pid)
    return killed
