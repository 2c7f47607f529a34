"""What the gateway test modules ask of responses, the edge and the applied objects."""

from __future__ import annotations

import typing as t
import urllib.parse
from collections.abc import Mapping

import requests
from authflow import harness
from authflow.checks import cookie_name, echoed, echoed_headers, hops

from .edge import GatewayEdge

__all__ = [
    "authorize_query",
    "condition",
    "cookie_name",
    "echoed",
    "echoed_headers",
    "hops",
    "log_in",
    "redirect_target",
    "sent_to_idp",
]


def log_in(edge: GatewayEdge, browser: harness.ScriptedBrowser, path: str = "/", **kwargs: t.Any) -> requests.Response:
    user = kwargs.pop("user", edge.user)
    return browser.navigate(path, credentials=user.credentials, **kwargs)


def sent_to_idp(response: requests.Response, edge: GatewayEdge) -> bool:
    """The edge answered with oauth2-proxy's redirect to the IdP's authorize endpoint (the
    sign-in Middleware asked oauth2-proxy's /oauth2/start on the browser's behalf)."""
    return response.status_code == 302 and response.headers["Location"].startswith(f"{edge.issuer_url}/authorize?")


def authorize_query(response: requests.Response) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)


def redirect_target(response: requests.Response) -> str:
    """Where oauth2-proxy sends the browser after the login: the ``rd`` it keeps after the
    nonce in the authorize request's ``state``."""
    (state,) = authorize_query(response)["state"]
    return urllib.parse.unquote(state.split(":", 1)[1])


def condition(obj: Mapping[str, t.Any], kind: str, parent: str | None = None) -> Mapping[str, t.Any] | None:
    """Condition KIND of a Gateway (status.conditions) or of an HTTPRoute for parent listener
    PARENT (status.parents[].conditions, sectionName PARENT, or the first parent)."""
    status = obj.get("status") or {}
    if "parents" in status or parent is not None:
        for entry in status.get("parents") or []:
            if parent is None or entry["parentRef"].get("sectionName") == parent:
                return next((c for c in entry.get("conditions") or [] if c["type"] == kind), None)
        return None
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)
