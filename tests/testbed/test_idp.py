"""testbed/idp, our OIDC IdP: discovery, the login form, the code flow, refresh and the claims."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import typing as t
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT = ("zerotrust-aks", "client-secret-for-tests")
USER = ("jane", "pw")  # login, password
REDIRECT = "http://127.0.0.1:9/oauth2/callback"
USERS: list[dict[str, t.Any]] = [
    {"username": "alice", "password": "alice-pw", "email": "alice@example.com", "groups": ["shop-admins"], "roles": []},
    {"username": "bob", "password": "bob-pw", "email": "bob@example.com", "groups": [], "roles": ["colors.user"]},
]
ACCESS_TTL_S = 3


def start_idp(tmp_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    build = REPO_ROOT / "testbed" / "build"
    subprocess.run([str(build), "idp"], check=True, capture_output=True)
    binary = subprocess.run([str(build), "--print-path", "idp"], check=True, capture_output=True, text=True)
    issuer_file = tmp_dir / "issuer"
    command = [
        "timeout",
        "300",
        binary.stdout.strip(),
        "--listen=127.0.0.1:0",
        f"--issuer-file={issuer_file}",
        f"--client-id={CLIENT[0]}",
        f"--client-secret={CLIENT[1]}",
        *args,
    ]
    idp = subprocess.Popen(command, stderr=(tmp_dir / "idp.log").open("wb"))
    deadline = time.monotonic() + 10
    while not issuer_file.exists() or not issuer_file.read_text().strip():
        assert idp.poll() is None and time.monotonic() < deadline, (tmp_dir / "idp.log").read_text()
        time.sleep(0.05)
    return idp


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The single-user flags (what testbed/README.md shows)."""
    tmp_dir = tmp_path_factory.mktemp("idp")
    single = ["--username", USER[0], "--password", USER[1], "--email=jane@example.com", "--groups=admins,users"]
    with start_idp(tmp_dir, *single) as idp:
        yield (tmp_dir / "issuer").read_text().strip()
        idp.terminate()


@pytest.fixture(scope="module")
def multi_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two users from --users-file, short-lived access tokens."""
    tmp_dir = tmp_path_factory.mktemp("idp-users")
    users_file = tmp_dir / "users.json"
    users_file.write_text(json.dumps(USERS))
    with start_idp(tmp_dir, f"--users-file={users_file}", f"--access-ttl={ACCESS_TTL_S}s") as idp:
        yield (tmp_dir / "issuer").read_text().strip()
        idp.terminate()


def authorize(issuer: str, scope: str = "openid email groups", **form: str) -> requests.Response:
    query = {
        "client_id": CLIENT[0],
        "response_type": "code",
        "scope": scope,
        "state": "st",
        "redirect_uri": REDIRECT,
    }
    return requests.post(f"{issuer}/authorize", data={**query, **form}, allow_redirects=False, timeout=5)


def claims_of(jwt: str) -> dict[str, t.Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, t.Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def code_flow(issuer: str, login: str, password: str, scope: str = "openid email groups") -> dict[str, t.Any]:
    response = authorize(issuer, scope, login=login, password=password)
    assert response.status_code == 302, response.text
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    token = requests.post(f"{issuer}/token", data=data, auth=CLIENT, timeout=5)
    assert token.status_code == 200, token.text
    answer: dict[str, t.Any] = token.json()
    return answer


def token_requests(issuer: str) -> list[dict[str, t.Any]]:
    base = issuer.removesuffix("/oidc")
    answer: list[dict[str, t.Any]] = requests.get(f"{base}/testbed/token-requests", timeout=5).json()
    return answer


# ---- single user (the flags testbed/README.md documents) ------------------------------------


def test_discovery_names_the_issuer_and_endpoints(issuer: str) -> None:
    doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == issuer
    assert doc["token_endpoint"] == f"{issuer}/token"
    assert issuer.startswith("http://127.0.0.1:")
    assert "offline_access" in doc["scopes_supported"]
    assert "refresh_token" in doc["grant_types_supported"]


def test_login_form_rejects_a_wrong_password(issuer: str) -> None:
    form = requests.get(f"{issuer}/authorize", params={"state": "st"}, timeout=5)
    assert form.status_code == 200
    assert 'name="password"' in form.text
    assert authorize(issuer, login=USER[0], password=USER[1] + "-wrong").status_code == 401


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_code_flow_returns_an_id_token_for_the_static_user(issuer: str, client_auth: str) -> None:
    login = authorize(issuer, login=USER[0], password=USER[1])
    assert login.status_code == 302
    location = urlsplit(login.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    params = parse_qs(location.query)
    assert params["state"] == ["st"]
    data = {"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": REDIRECT}
    if client_auth == "client_secret_post":
        data.update(client_id=CLIENT[0], client_secret=CLIENT[1])
        token = requests.post(f"{issuer}/token", data=data, timeout=5)
    else:
        token = requests.post(f"{issuer}/token", data=data, auth=CLIENT, timeout=5)
    assert token.status_code == 200, token.text
    claims = claims_of(token.json()["id_token"])
    assert claims["iss"] == issuer
    assert claims["aud"] == [CLIENT[0]]
    assert claims["sub"] == USER[0]
    assert claims["email"] == "jane@example.com"
    assert claims["groups"] == ["admins", "users"]
    assert "roles" not in claims
    # OAuth 2 (RFC 6749 5.1): seconds; mockoidc alone sends nanoseconds.
    assert token.json()["expires_in"] == 600


# ---- several users, claims, refresh -----------------------------------------------------------


@pytest.mark.parametrize("user", USERS, ids=[u["username"] for u in USERS])
def test_each_user_gets_their_own_groups_and_roles_claims(multi_issuer: str, user: dict[str, t.Any]) -> None:
    tokens = code_flow(multi_issuer, user["username"], user["password"], "openid email profile")
    claims = claims_of(tokens["id_token"])
    assert claims["sub"] == user["username"]
    assert claims["email"] == user["email"]
    assert claims["preferred_username"] == user["username"]
    # Absent, not empty, when the user has none (as Entra ID omits roles nobody assigned).
    assert claims.get("groups", []) == user["groups"]
    assert claims.get("roles", []) == user["roles"]
    info = requests.get(
        f"{multi_issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=5
    )
    assert info.status_code == 200, info.text
    assert info.json().get("groups", []) == user["groups"]
    assert info.json().get("roles", []) == user["roles"]
    assert info.json()["sub"] == user["username"]


def test_a_password_of_another_user_is_refused(multi_issuer: str) -> None:
    other_users_password = USERS[1]["password"]
    assert authorize(multi_issuer, login="alice", password=other_users_password).status_code == 401


def test_refresh_token_only_with_offline_access(multi_issuer: str) -> None:
    assert "refresh_token" not in code_flow(multi_issuer, "alice", "alice-pw", "openid email")
    assert code_flow(multi_issuer, "alice", "alice-pw", "openid email offline_access")["refresh_token"]


def test_a_refresh_grant_renews_an_expired_session(multi_issuer: str) -> None:
    tokens = code_flow(multi_issuer, "bob", "bob-pw", "openid email offline_access")
    assert tokens["expires_in"] == ACCESS_TTL_S
    first = claims_of(tokens["id_token"])
    assert first["exp"] - first["iat"] == ACCESS_TTL_S
    time.sleep(ACCESS_TTL_S + 1.1)
    expired = requests.get(
        f"{multi_issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=5
    )
    assert expired.status_code == 401
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = requests.post(f"{multi_issuer}/token", data=data, auth=CLIENT, timeout=5)
    assert refreshed.status_code == 200, refreshed.text
    claims = claims_of(refreshed.json()["id_token"])
    assert claims["sub"] == "bob"
    assert claims["roles"] == ["colors.user"]
    assert claims["exp"] > first["exp"]
    log = token_requests(multi_issuer)
    assert log[-1]["grant_type"] == "refresh_token"
    assert log[-1]["status"] == 200
    assert log[-1]["subject"] == "bob"


def test_a_forged_refresh_token_is_refused(multi_issuer: str) -> None:
    tokens = code_flow(multi_issuer, "alice", "alice-pw", "openid offline_access")
    header, payload, signature = tokens["refresh_token"].split(".")
    forged = ".".join([header, payload, signature[::-1]])
    data = {"grant_type": "refresh_token", "refresh_token": forged}
    assert requests.post(f"{multi_issuer}/token", data=data, auth=CLIENT, timeout=5).status_code == 401
    assert token_requests(multi_issuer)[-1] | {"time": None} == {
        "time": None, "grant_type": "refresh_token", "status": 401, "refresh_token_issued": False,
    }  # fmt: skip


def test_users_file_and_single_user_flags_exclude_each_other(tmp_path: Path) -> None:
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(USERS))
    build = REPO_ROOT / "testbed" / "build"
    binary = subprocess.run([str(build), "--print-path", "idp"], check=True, capture_output=True, text=True)
    result = subprocess.run(
        [binary.stdout.strip(), f"--users-file={users_file}", "--username=jane"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--users-file replaces --username" in result.stderr


def change_user(issuer: str, username: str, **change: t.Any) -> requests.Response:
    base = issuer.removesuffix("/oidc")
    return requests.post(f"{base}/testbed/users/{username}", json=change, timeout=5)


def test_a_group_change_shows_in_the_next_refresh_and_disabling_revokes(tmp_path: Path) -> None:
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps(USERS))
    with start_idp(tmp_path, f"--users-file={users_file}") as idp:
        issuer = (tmp_path / "issuer").read_text().strip()
        alice = USERS[0]
        tokens = code_flow(issuer, alice["username"], alice["password"], "openid offline_access")
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

        assert change_user(issuer, "alice", groups=["other"]).status_code == 200
        refreshed = requests.post(f"{issuer}/token", data=refresh, auth=CLIENT, timeout=5)
        assert refreshed.status_code == 200, refreshed.text
        assert claims_of(refreshed.json()["id_token"])["groups"] == ["other"]

        assert change_user(issuer, "alice", disabled=True).status_code == 200
        revoked = requests.post(f"{issuer}/token", data=refresh, auth=CLIENT, timeout=5)
        assert (revoked.status_code, revoked.json()["error"]) == (400, "invalid_grant")
        assert authorize(issuer, login=alice["username"], password=alice["password"]).status_code == 401
        assert change_user(issuer, "nobody", groups=[]).status_code == 404
        idp.terminate()
