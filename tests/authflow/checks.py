"""What the auth-flow test modules ask of a response, a browser and the applied objects."""

from __future__ import annotations

import json
import typing as t

import requests

from . import harness

COOKIE_NAME_FLAG = "--cookie-name"


def cookie_name(objects: harness.AppliedObjects) -> str:
    """The session cookie's name, as the Deployment sets it."""
    (name,) = harness.deployed_flag(objects.deployment, COOKIE_NAME_FLAG)
    return name


def echoed(response: requests.Response) -> dict[str, t.Any]:
    """The stand-in upstream's JSON answer (fails when the response is not from it)."""
    assert response.status_code == 200, f"{response.status_code} from {response.url}: {response.text[:300]}"
    assert response.headers.get("Content-Type") == "application/json", response.text[:300]
    answer: dict[str, t.Any] = json.loads(response.text)
    return answer


def echoed_headers(response: requests.Response) -> dict[str, str]:
    """The request headers the stand-in upstream received, names in lower case."""
    return {k.lower(): v for k, v in echoed(response)["headers"].items()}


def hops(browser: harness.ScriptedBrowser) -> str:
    """The browser's requests so far, one per line (for assertion messages)."""
    return "\n".join(harness.iter_hops(browser.history))


def sent_to_login(response: requests.Response, host: str) -> bool:
    """The ingress answered with the redirect to oauth2-proxy's sign-in on ``host``."""
    return response.status_code == 302 and response.headers["Location"].startswith(f"https://{host}/oauth2/start?rd=")
