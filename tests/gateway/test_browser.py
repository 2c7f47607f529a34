"""The same login in a real browser: headless Chromium through real Traefik.

``requests`` keeps cookies but enforces none of a browser's rules; Chromium's cookie jar does.
Chromium resolves the site's hosts to Traefik's Service (``--host-resolver-rules``) and trusts
the served certificate's key (``--ignore-certificate-errors-spki-list``), so the origin, SNI and
``https://`` scheme are the real ones. The test drives one login through the IdP's form and reads
what Chromium itself recorded: the cookies each response set (and whether it refused one), the
cookies each request carried, and its jar. A screenshot of the app after the login is kept under
``tests/output/gateway/`` (a CI artifact; the path is printed).
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from authflow import harness
from support.playbook import REPO

from .checks import cookie_name
from .edge import GatewayEdge

SCREENSHOT = REPO / "tests" / "output" / "gateway" / "chromium-after-login.png"


@pytest.fixture(scope="module")
def chromium(edge: GatewayEdge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Chromium]:
    binary = harness.chromium_binary()
    if binary is None:
        pytest.fail("Debian's chromium is not installed: run scripts/install-system-packages")
    with harness.Chromium(
        binary,
        tmp_path_factory.mktemp("chromium"),
        host_rules=dict.fromkeys(edge.hosts, edge.address),
        spki_hashes=[harness.spki_sha256(edge.certificate_pem)],
    ) as browser:
        yield browser


def _by_name(cookies: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    return {c["name"]: c for c in cookies}


def _set(page: harness.Page, script: str) -> None:
    page.evaluate(f"document.cookie = {json.dumps(script)}")


def test_chromium_logs_in_through_traefik_and_its_cookie_jar_holds_the_rules(
    edge: GatewayEdge, chromium: harness.Chromium, applied_objects: harness.AppliedObjects
) -> None:
    session = cookie_name(applied_objects)
    assert session.startswith("__Host-")
    page = chromium.new_page()
    app_url = f"https://{edge.host}/colors?x=1"

    # ---- anonymous: Traefik answers with oauth2-proxy's redirect; the IdP's form shows --------
    at = page.navigate(app_url)
    assert at.startswith(f"{edge.issuer_url}/"), at
    first = page.requests_to(app_url)[0]
    redirect = next(
        p["redirectResponse"] for p in page.network("requestWillBeSent")
        if p["requestId"] == first["requestId"] and p.get("redirectResponse")
    )  # fmt: skip
    assert redirect["status"] == 302
    assert redirect["headers"]["location"].startswith(f"{edge.issuer_url}/authorize?")
    # The CSRF cookie oauth2-proxy set at /oauth2/start: accepted, with the __Host- rules.
    jar = _by_name(page.cookies())
    (csrf_name,) = [n for n in jar if n.startswith(f"{session}_") and n.endswith("_csrf")]
    csrf = jar[csrf_name]
    assert (csrf["domain"], csrf["path"], csrf["secure"], csrf["httpOnly"], csrf["sameSite"]) == (
        edge.host, "/", True, True, "Lax",
    )  # fmt: skip

    # ---- the login form, then back through the callback to the app ---------------------------
    user = edge.user
    fill = (
        f"document.querySelector('input[name=login]').value = {json.dumps(user.username)};"
        f"document.querySelector('input[name=password]').value = {json.dumps(user.password)};"
        "document.forms[0].submit()"
    )
    assert page.run_and_wait_for_load(fill) == app_url
    answer = json.loads(page.text())
    assert answer["upstream"] == "colors-web"
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers["x-auth-request-user"] == user.username
    assert headers["x-auth-request-email"] == user.email
    assert headers["x-auth-request-groups"] == ",".join(user.groups)
    assert "Chrome/" in headers["user-agent"]
    screenshot = page.screenshot(SCREENSHOT)
    print(f"\nscreenshot of the app after the login: {screenshot}")

    # The IdP's redirect to the callback is cross-site (127.0.0.1 -> the site) and top-level:
    # Chromium sent the Lax CSRF cookie along, and nothing else of the site's was refused.
    callback = page.requests_to(f"https://{edge.host}/oauth2/callback")
    assert callback, "no request to /oauth2/callback"
    sent = [c for c in page.cookies_sent(callback[0]["requestId"]) if c["cookie"]["name"] == csrf_name]
    assert sent and not sent[0]["blockedReasons"], sent
    refused = [c for c in page.cookies_set() if c["blocked"]]
    assert not refused, refused

    # ---- the jar after the login ---------------------------------------------------------------
    jar = _by_name(page.cookies())
    assert csrf_name not in jar, "the callback did not clear the CSRF cookie"
    cookie = jar[session]
    assert (cookie["domain"], cookie["path"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
        edge.host, "/", True, True, "Lax",
    )  # fmt: skip
    assert not cookie["session"] and cookie["expires"] > 0  # --cookie-expire: a persistent cookie
    assert not [c for c in jar.values() if c["domain"].startswith(".")], "a cookie for a whole domain"

    # ---- what the jar refuses: page scripts against the __Host- and HttpOnly rules ------------
    assert f"{session}=" not in page.evaluate("document.cookie"), "the session cookie is readable by scripts"
    _set(page, f"{session}=forged; Path=/; Secure")  # HttpOnly: no script may overwrite it
    _set(page, f"__Host-probe-domain=1; Path=/; Secure; Domain={edge.host}")  # __Host-: no Domain
    _set(page, "__Host-probe-path=1; Path=/colors; Secure")  # __Host-: Path=/ only
    _set(page, "__Host-probe-insecure=1; Path=/")  # __Host-: Secure only
    _set(page, "__Host-probe-ok=1; Path=/; Secure")  # all rules kept: accepted
    jar = _by_name(page.cookies())
    assert jar[session]["value"] == cookie["value"]
    assert [n for n in jar if n.startswith("__Host-probe")] == ["__Host-probe-ok"]

    # ---- SameSite=Lax: a cross-site request from a script carries no session ---------------------
    before = len(edge.requests_to(harness.service_key("colors-web", 80, "colors-web")))
    page.navigate(f"{edge.issuer_url}/.well-known/openid-configuration")  # another site (the IdP's)
    target = f"https://{edge.host}/colors?cross-site=1"
    page.evaluate(f"fetch({json.dumps(target)}, {{credentials: 'include', mode: 'no-cors'}}).then(() => 1, () => 0)")
    (request,) = page.requests_to(target)
    considered = [c for c in page.cookies_sent(request["requestId"]) if c["cookie"]["name"] == session]
    # (SchemefulSameSiteLax: the IdP's page is http://, so the request is cross-scheme as well.)
    assert considered and any(r.endswith("SameSiteLax") for r in considered[0]["blockedReasons"]), considered
    # Without the cookie the app is not reached: oauth2-proxy sent the request to the login.
    assert len(edge.requests_to(harness.service_key("colors-web", 80, "colors-web"))) == before

    # ---- and the session still opens the app at top level --------------------------------------
    assert page.navigate(app_url) == app_url
    assert json.loads(page.text())["upstream"] == "colors-web"
    assert urllib.parse.urlsplit(page.url()).hostname == edge.host


def test_the_screenshot_is_a_png(edge: GatewayEdge) -> None:
    """(Runs after the login test: the artifact exists and is an image.)"""
    assert Path(SCREENSHOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
