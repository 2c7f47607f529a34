"""Sessions end and refresh per zerotrust_aks_session_lifetime / _refresh, through the real programs.

Scenario ``short_session`` (``scenarios/short_session.yml``): lifetime ``6s`` (oauth2-proxy
``--cookie-expire``), refresh ``2s`` (``--cookie-refresh``). oauth2-proxy checks a session older
than the refresh interval with the IdP (a ``refresh_token`` grant, possible because the scope
asks for ``offline_access``), re-reads the groups and saves the cookie again; the lifetime counts
from that save. The IdP's tokens live 4s, shorter than the session, as at Entra ID. So an idle
browser must log in again after the lifetime, an active one keeps its session while the IdP
keeps saying yes, and a change at the IdP (group removed, user disabled)
takes effect within one refresh interval.
"""

from __future__ import annotations

import time
import typing as t
import urllib.parse
from collections.abc import Iterator

import pytest

from . import harness
from .checks import cookie_name, echoed, hops, sent_to_login
from .conftest import StackStarter

LIFETIME_S = 6
REFRESH_S = 2
# Margins over the intervals: oauth2-proxy compares with "older than", cookie timestamps are
# whole seconds.
PAST_REFRESH_S = REFRESH_S + 1.3
PAST_LIFETIME_S = LIFETIME_S + 1.2
TOKEN_TTL_S = 4

JANE = harness.IdpUser("jane", "jane-pw", "jane@example.com", groups=("zerotrust-users",))
GINA = harness.IdpUser("gina", "gina-pw", "gina@example.com", groups=("zerotrust-users",))
ERIN = harness.IdpUser("erin", "erin-pw", "erin@example.com", groups=("zerotrust-users",))


@pytest.fixture(scope="module")
def session_objects(scenario_objects: t.Callable[[str], harness.AppliedObjects]) -> harness.AppliedObjects:
    return scenario_objects("short_session")


@pytest.fixture(scope="module")
def session_stack(session_objects: harness.AppliedObjects, start_stack: StackStarter) -> Iterator[harness.LoginStack]:
    # Tokens shorter-lived than the session, as at Entra ID: only refreshes keep it going.
    settings = harness.IdpSettings(access_ttl=f"{TOKEN_TTL_S}s")
    with start_stack(session_objects, users=[JANE, GINA, ERIN], idp_settings=settings) as running:
        yield running


def refresh_grants(stack: harness.LoginStack, subject: str | None = None) -> list[harness.TokenRequest]:
    return [
        r
        for r in stack.token_requests()
        if r.grant_type == "refresh_token" and (subject is None or r.subject == subject)
    ]


def test_the_deployment_carries_the_short_session_flags(session_objects: harness.AppliedObjects) -> None:
    assert harness.deployed_flag(session_objects.deployment, "--cookie-expire") == [f"{LIFETIME_S}s"]
    assert harness.deployed_flag(session_objects.deployment, "--cookie-refresh") == [f"{REFRESH_S}s"]
    (scope,) = harness.deployed_flag(session_objects.deployment, "--scope")
    assert "offline_access" in scope.split()


def test_login_gets_a_refresh_token_from_the_idp(session_stack: harness.LoginStack) -> None:
    browser = session_stack.browser()
    before = len(session_stack.token_requests())
    assert echoed(browser.navigate("/", credentials=JANE.credentials))["upstream"] == "colors-web"
    (redeem,) = session_stack.token_requests()[before:]
    assert (redeem.grant_type, redeem.status, redeem.subject) == ("authorization_code", 200, "jane")
    assert redeem.refresh_token_issued, "no refresh token: the scope lacks offline_access"


def test_after_the_refresh_interval_the_session_is_refreshed_at_the_idp(
    session_stack: harness.LoginStack, session_objects: harness.AppliedObjects
) -> None:
    browser = session_stack.browser()
    name = cookie_name(session_objects)
    assert echoed(browser.navigate("/", credentials=JANE.credentials))["upstream"] == "colors-web"
    first_cookie = browser.cookie(name)
    before = len(refresh_grants(session_stack))

    assert echoed(browser.get("/"))["upstream"] == "colors-web"
    assert len(refresh_grants(session_stack)) == before, "refreshed before the interval"

    time.sleep(PAST_REFRESH_S)
    response = browser.get("/")
    assert echoed(response)["upstream"] == "colors-web"
    new = refresh_grants(session_stack)[before:]
    assert [(r.status, r.subject) for r in new] == [(200, "jane")]
    # The refreshed session is saved: a new cookie, whose lifetime starts now.
    assert browser.cookie(name) not in (None, first_cookie)


def test_an_idle_session_ends_after_the_lifetime(
    session_stack: harness.LoginStack, session_objects: harness.AppliedObjects
) -> None:
    browser = session_stack.browser()
    name = cookie_name(session_objects)
    assert echoed(browser.navigate("/", credentials=JANE.credentials))["upstream"] == "colors-web"
    old_cookie = browser.cookie(name)
    assert old_cookie

    time.sleep(PAST_LIFETIME_S)
    response = browser.get("/")
    assert sent_to_login(response, session_stack.host), hops(browser)
    # Not only the browser's doing (the cookie's Max-Age): oauth2-proxy refuses the old cookie.
    browser.set_cookie(name, old_cookie)
    assert browser.get("/oauth2/auth").status_code == 401
    assert sent_to_login(browser.get("/"), session_stack.host), hops(browser)


def test_an_active_session_lives_on_through_refreshes(session_stack: harness.LoginStack) -> None:
    """The lifetime counts from the last refresh: a user who keeps working is not logged out
    while the IdP keeps confirming them every refresh interval."""
    browser = session_stack.browser()
    assert echoed(browser.navigate("/", credentials=JANE.credentials))["upstream"] == "colors-web"
    before = len(refresh_grants(session_stack))
    started = time.monotonic()
    while time.monotonic() - started < LIFETIME_S + 3:
        time.sleep(1.5)
        assert echoed(browser.get("/"))["upstream"] == "colors-web", hops(browser)
    # Past the session lifetime and twice the tokens' lifetime, on refreshed tokens.
    assert time.monotonic() - started > max(LIFETIME_S, 2 * TOKEN_TTL_S)
    assert len(refresh_grants(session_stack)) - before >= 3


def test_a_user_removed_from_the_group_loses_access_at_the_next_refresh(
    session_stack: harness.LoginStack, session_objects: harness.AppliedObjects
) -> None:
    browser = session_stack.browser()
    assert echoed(browser.navigate("/", credentials=GINA.credentials))["upstream"] == "colors-web"
    session_stack.change_idp_user("gina", groups=["former-staff"])
    # Until the refresh, oauth2-proxy goes by the groups in the cookie: the window is one interval.
    assert echoed(browser.get("/"))["upstream"] == "colors-web"

    time.sleep(PAST_REFRESH_S)
    response = browser.get("/")
    assert sent_to_login(response, session_stack.host), hops(browser)
    assert [r.status for r in refresh_grants(session_stack, "gina")] == [200]
    # The browser may keep a cookie (nginx passes on only the first of oauth2-proxy's two
    # Set-Cookie lines: the refreshed session, not its removal), but it no longer opens the app.
    assert sent_to_login(browser.get("/"), session_stack.host), hops(browser)
    # Logging in again: the IdP signs her in, oauth2-proxy refuses her.
    again = browser.navigate("/", credentials=GINA.credentials)
    assert again.status_code == 403, hops(browser)
    assert urllib.parse.urlsplit(again.url).path == "/oauth2/callback"


def test_a_disabled_user_loses_access_at_the_next_refresh(session_stack: harness.LoginStack) -> None:
    browser = session_stack.browser()
    assert echoed(browser.navigate("/", credentials=ERIN.credentials))["upstream"] == "colors-web"
    before = len(refresh_grants(session_stack))
    session_stack.change_idp_user("erin", disabled=True)

    time.sleep(PAST_REFRESH_S)
    response = browser.get("/")
    assert sent_to_login(response, session_stack.host), hops(browser)
    statuses = {r.status for r in refresh_grants(session_stack)[before:]}
    assert statuses == {400}, "oauth2-proxy did not try to refresh, or the IdP let it"  # invalid_grant
    form = browser.navigate("/", credentials=ERIN.credentials)
    assert form.status_code == 401, hops(browser)  # the IdP's login form refuses her
