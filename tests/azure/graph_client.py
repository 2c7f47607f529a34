"""A client of the fake's Graph and ARM endpoints over HTTPS, as a tool other than the collection
(an administrator's script, the portal) would call them."""

from __future__ import annotations

import typing as t

import requests
from fake_azure import FakeAzure
from fake_subscription import DEPLOYER_ID, DEPLOYER_SECRET, TENANT


class Client:
    def __init__(self, fake: FakeAzure, base: str, audience: str) -> None:
        token = requests.post(
            f"{fake.base_url}/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": DEPLOYER_ID,
                "client_secret": DEPLOYER_SECRET,
                "scope": audience + ".default",
            },
            verify=str(fake.ca_file),
            timeout=10,
        ).json()["access_token"]
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.ca_file = str(fake.ca_file)

    def __call__(self, method: str, path: str, body: t.Any = None, **params: str) -> requests.Response:
        # verify per request: a REQUESTS_CA_BUNDLE in the environment would override Session.verify.
        return self.session.request(method, self.base + path, json=body, params=params, timeout=10, verify=self.ca_file)
