"""testbed/idp, our OIDC IdP: discovery, the login form, and the code flow a client runs."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT = ("zerotrust-aks", "client-secret-for-tests")
USER = ("jane", "pw")  # login, password
REDIRECT = "http://127.0.0.1:9/oauth2/callback"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    build = REPO_ROOT / "testbed" / "build"
    subprocess.run([str(build), "idp"], check=True, capture_output=True)
    binary = subprocess.run([str(build), "--print-path", "idp"], check=True, capture_output=True, text=True)
    issuer_file = tmp_path_factory.mktemp("idp") / "issuer"
    command = [
        "timeout",
        "300",
        binary.stdout.strip(),
        "--listen=127.0.0.1:0",
        f"--issuer-file={issuer_file}",
        f"--client-id={CLIENT[0]}",
        f"--client-secret={CLIENT[1]}",
        f"--username={USER[0]}",
        f"--password={USER[1]}",
        "--email=jane@example.com",
        "--groups=admins,users",
    ]
    with subprocess.Popen(command) as idp:
        deadline = time.monotonic() + 10
        while not issuer_file.exists() or not issuer_file.read_text().strip():
            assert idp.poll() is None and time.monotonic() < deadline, "the IdP did not start"
            time.sleep(0.05)
        yield issuer_file.read_text().strip()
        idp.terminate()


def authorize(issuer: str, **form: str) -> requests.Response:
    query = {
        "client_id": CLIENT[0],
        "response_type": "code",
        "scope": "openid email groups",
        "state": "st",
        "redirect_uri": REDIRECT,
    }
    return requests.post(f"{issuer}/authorize", data={**query, **form}, allow_redirects=False, timeout=5)


def test_discovery_names_the_issuer_and_endpoints(issuer: str) -> None:
    doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == issuer
    assert doc["token_endpoint"] == f"{issuer}/token"
    assert issuer.startswith("http://127.0.0.1:")


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
    payload = token.json()["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == issuer
    assert claims["aud"] == [CLIENT[0]]
    assert claims["email"] == "jane@example.com"
    assert claims["groups"] == ["admins", "users"]
