"""Who gets in through the Gateway: the stack's group and each app's own groups (stack.yml).

oauth2-proxy allows ``zerotrust-users`` (``--allowed-group``); the shop (own host) also needs
``shop-admins``, the wiki (``/wiki`` on the main host) ``wiki-readers`` or ``wiki-editors`` and
opts in to the access token. Each app's forwardAuth Middleware asks
``/oauth2/auth?allowed_groups=...``; a refusal is oauth2-proxy's 403, which Traefik hands to the
browser (the sign-in Middleware only catches 401), and the app sees nothing.
"""

from __future__ import annotations

import urllib.parse

import pytest
from authflow import harness

from .checks import cookie_name, echoed, echoed_headers, hops, log_in, sent_to_idp
from .conftest import ALICE, BOB, JANE, MALLORY
from .edge import GatewayEdge

MAIN = "colors.gateway.test"
SHOP_HOST = "shop.gateway.test"
APPS = {
    "colors-web": (f"https://{MAIN}/", harness.service_key("colors-web", 80, "colors-web")),
    "shop": (f"https://{SHOP_HOST}/", harness.service_key("shop", 80, "shop")),
    "wiki": (f"https://{MAIN}/wiki/page", harness.service_key("wiki", 80, "wiki")),
}
REACHES = {"jane": {"colors-web"}, "alice": {"colors-web", "shop"}, "bob": {"colors-web", "wiki"}}


def test_each_app_middleware_asks_oauth2_proxy_with_its_allowed_groups(edge: GatewayEdge) -> None:
    def query(name: str) -> dict[str, list[str]]:
        address = edge.state.middleware("oauth2-proxy", f"{name}-auth")["spec"]["forwardAuth"]["address"]
        parts = urllib.parse.urlsplit(address)
        assert (parts.scheme, parts.netloc, parts.path) == (
            "http", "oauth2-proxy.oauth2-proxy.svc.cluster.local:4180", "/oauth2/auth",
        )  # fmt: skip
        return urllib.parse.parse_qs(parts.query)

    assert query("colors-web") == {}
    assert query("shop") == {"allowed_groups": ["shop-admins"]}
    assert query("wiki") == {"allowed_groups": ["wiki-readers,wiki-editors"]}


def test_the_gateway_serves_the_main_host_and_the_shop_host(edge: GatewayEdge) -> None:
    assert edge.hosts == [MAIN, SHOP_HOST]


@pytest.mark.parametrize("user", [JANE, ALICE, BOB], ids=lambda u: u.username)
@pytest.mark.parametrize("app", sorted(APPS))
def test_each_user_reaches_only_the_apps_of_their_groups(edge: GatewayEdge, user: harness.IdpUser, app: str) -> None:
    browser = edge.browser()
    url, key = APPS[app]
    before = len(edge.requests_to(key))
    response = log_in(edge, browser, url, user=user)
    if app in REACHES[user.username]:
        assert echoed(response)["upstream"] == key.split(".")[0], hops(browser)
        assert response.url == url, hops(browser)
        assert len(edge.requests_to(key)) == before + 1
    else:
        assert response.status_code == 403, hops(browser)
        assert response.url == url, hops(browser)
        assert len(edge.requests_to(key)) == before


def test_the_groups_header_reaches_the_app(edge: GatewayEdge) -> None:
    headers = echoed_headers(log_in(edge, edge.browser(), APPS["shop"][0], user=ALICE))
    assert headers.get("x-auth-request-groups") == "zerotrust-users,shop-admins", headers
    assert headers.get("x-auth-request-user") == "alice"
    assert headers.get("x-auth-request-email") == "alice@example.com"


def test_the_per_app_decision_is_oauth2_proxys(edge: GatewayEdge) -> None:
    browser = edge.browser()
    log_in(edge, browser, APPS["shop"][0], user=BOB)
    assert browser.get("/oauth2/auth", host=SHOP_HOST).status_code == 202
    assert browser.get("/oauth2/auth?allowed_groups=shop-admins", host=SHOP_HOST).status_code == 403
    assert browser.get("/oauth2/auth?allowed_groups=wiki-readers,wiki-editors", host=SHOP_HOST).status_code == 202


def test_the_forward_auth_request_carries_the_query_of_the_middleware(edge: GatewayEdge) -> None:
    assert echoed(log_in(edge, edge.browser(), APPS["wiki"][0], user=BOB))["upstream"] == "wiki"
    logs = "".join(p.log_path.read_text() for p in edge.processes if p.name.startswith("oauth2-proxy"))
    assert "/oauth2/auth?allowed_groups=wiki-readers,wiki-editors" in logs


def test_a_user_outside_the_allowed_group_gets_403_from_oauth2_proxy(
    edge: GatewayEdge, applied_objects: harness.AppliedObjects
) -> None:
    """Mallory's IdP login succeeds, but oauth2-proxy's callback refuses her and saves no
    session — even for the shop, whose own group she is in."""
    for url, key in (APPS["colors-web"], APPS["shop"]):
        browser = edge.browser()
        before = len(edge.requests_to(key))
        response = log_in(edge, browser, url, user=MALLORY)
        assert response.status_code == 403, hops(browser)
        assert urllib.parse.urlsplit(response.url).path == "/oauth2/callback", hops(browser)
        host = urllib.parse.urlsplit(url).hostname
        assert browser.cookie(cookie_name(applied_objects), host=host) is None
        assert sent_to_idp(browser.get("/", host=host), edge)
        assert len(edge.requests_to(key)) == before


def test_the_access_token_header_reaches_only_the_app_that_opted_in(edge: GatewayEdge) -> None:
    browser = edge.browser()
    wiki = echoed_headers(log_in(edge, browser, APPS["wiki"][0], user=BOB))
    assert wiki.get("x-auth-request-access-token", "").count(".") == 2, wiki  # a JWT
    colors = echoed_headers(browser.navigate(APPS["colors-web"][0]))
    assert "x-auth-request-access-token" not in colors
    assert "authorization" not in colors


def test_a_client_cannot_send_its_own_access_token_to_the_app_that_takes_one(edge: GatewayEdge) -> None:
    browser = edge.browser()
    log_in(edge, browser, APPS["wiki"][0], user=BOB)
    headers = echoed_headers(browser.get(APPS["wiki"][0], headers={"X-Auth-Request-Access-Token": "forged"}))
    assert headers.get("x-auth-request-access-token", "").count(".") == 2, headers


def test_a_session_on_one_host_is_not_one_on_the_other(
    edge: GatewayEdge, applied_objects: harness.AppliedObjects
) -> None:
    browser = edge.browser()
    assert echoed(log_in(edge, browser, APPS["colors-web"][0], user=ALICE))["upstream"] == "colors-web"
    assert browser.cookie(cookie_name(applied_objects), host=MAIN)
    assert browser.cookie(cookie_name(applied_objects), host=SHOP_HOST) is None
    assert sent_to_idp(browser.get(APPS["shop"][0]), edge)
