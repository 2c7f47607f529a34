# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for _azure_auth: azure.azcollection's credential rules without importing its SDK clients."""

from __future__ import annotations

import json
import os
import sys
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from unittest import mock

import pytest

# ansible-test's units environment has no azure SDKs: skipped there, run by scripts/test units' second step.
pytest.importorskip("azure.identity", reason="needs azure.azcollection's Python requirements (scripts/test units)")
pytest.importorskip("azure.cli.core", reason="needs azure.azcollection's Python requirements (scripts/test units)")
from ansible_collections.zerotrust.aks.plugins.module_utils import _azure_auth as auth
from ansible_collections.zerotrust.aks.plugins.modules import azure_context_info
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules.azure_http import jwt
from azure.core.credentials import AccessToken
from azure.identity import ClientSecretCredential

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT = "00000000-0000-0000-0000-0000000000cc"
SECRET = "not-a-secret-value"  # noqa: S105
CLAIMS = {"tid": TENANT, "oid": "99999999-8888-7777-6666-555555555555", "idtyp": "app", "appid": CLIENT}


def params(**values: t.Any) -> dict[str, t.Any]:
    """Module parameters as AnsibleModule fills them: every option, defaults applied."""
    filled = {name: spec.get("default") for name, spec in auth.AZURE_AUTH_ARGS.items()}
    filled.update(values)
    return filled


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> t.Callable[..., None]:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "ANSIBLE_AZURE_")):
            monkeypatch.delenv(name)

    def set_environment(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_environment


def test_the_environment_service_principal_of_an_awx_credential(environment: t.Callable[..., None]) -> None:
    environment(AZURE_CLIENT_ID=CLIENT, AZURE_SECRET=SECRET, AZURE_TENANT=TENANT, AZURE_SUBSCRIPTION_ID=SUBSCRIPTION)
    with mock.patch.object(auth, "ClientSecretCredential") as credential:
        resolved = auth.quick_auth(params(), is_ad_resource=False)
    assert resolved is not None
    assert resolved.subscription_id == SUBSCRIPTION
    assert resolved.source == "environment"
    assert resolved._cloud_environment.name == "AzureCloud"
    credential.assert_called_once_with(
        client_id=CLIENT,
        client_secret=SECRET,
        tenant_id=TENANT,
        authority=resolved._cloud_environment.endpoints.active_directory,
        disable_instance_discovery=False,
    )
    assert "login.microsoftonline.com" in resolved._cloud_environment.endpoints.active_directory


def test_parameters_win_over_the_environment(environment: t.Callable[..., None]) -> None:
    environment(AZURE_CLIENT_ID="env-client", AZURE_SECRET=SECRET + "-env", AZURE_TENANT="env-tenant")
    with mock.patch.object(auth, "ClientSecretCredential") as credential:
        resolved = auth.quick_auth(
            params(client_id=CLIENT, secret=SECRET, tenant=TENANT, subscription_id=SUBSCRIPTION), False
        )
    assert resolved is not None and resolved.source == "parameters"
    assert credential.call_args.kwargs["client_id"] == CLIENT
    assert credential.call_args.kwargs["tenant_id"] == TENANT


def test_a_user_and_password_without_tenant_signs_in_to_organizations_with_the_cli_client(
    environment: t.Callable[..., None],
) -> None:
    """AWX's user/password Azure credential injects no tenant and no client id."""
    environment(AZURE_AD_USER="ops@example.com", AZURE_PASSWORD=SECRET, AZURE_SUBSCRIPTION_ID=SUBSCRIPTION)
    with mock.patch.object(auth, "UsernamePasswordCredential") as credential:
        resolved = auth.quick_auth(params(), False)
    assert resolved is not None
    kwargs = credential.call_args.kwargs
    assert kwargs["tenant_id"] == "organizations"
    assert kwargs["client_id"] == auth.AZURE_CLI_CLIENT_ID
    assert kwargs["username"] == "ops@example.com"


@pytest.mark.parametrize(
    ("given", "env"),
    [
        pytest.param({"auth_source": "msi"}, {}, id="managed identity"),
        pytest.param({"auth_source": "cli"}, {}, id="azure cli"),
        pytest.param({"auth_source": "credential_file"}, {}, id="credentials file"),
        pytest.param({"profile": "work"}, {}, id="profile parameter"),
        pytest.param({}, {"AZURE_PROFILE": "work"}, id="profile in the environment"),
        pytest.param({}, {}, id="nothing given: credentials file, then the cli"),
        pytest.param(
            {},
            {"AZURE_CLIENT_ID": CLIENT, "AZURE_SECRET": SECRET, "AZURE_TENANT": TENANT},
            id="environment without subscription",
        ),
        pytest.param(
            {"client_id": CLIENT, "tenant": TENANT, "thumbprint": "ab", "x509_certificate_path": "/c.pem"},
            {},
            id="certificate",
        ),
    ],
)
def test_everything_else_is_left_to_azure_azcollection(
    environment: t.Callable[..., None], given: dict[str, t.Any], env: dict[str, str]
) -> None:
    environment(**env)
    assert auth.quick_auth(params(**given), is_ad_resource=False) is None


def test_a_module_without_subscription_takes_environment_credentials_without_one(
    environment: t.Callable[..., None],
) -> None:
    environment(AZURE_CLIENT_ID=CLIENT, AZURE_SECRET=SECRET, AZURE_TENANT=TENANT)
    resolved = auth.quick_auth(params(), is_ad_resource=True)
    assert resolved is not None and resolved.subscription_id is None
    assert isinstance(resolved.azure_credential_track2, ClientSecretCredential)


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False), ("", False)])
def test_instance_discovery_from_the_environment(environment: t.Callable[..., None], text: str, expected: bool) -> None:
    environment(
        AZURE_AD_USER="ops@example.com",
        AZURE_PASSWORD=SECRET,
        AZURE_SUBSCRIPTION_ID=SUBSCRIPTION,
        AZURE_DISABLE_INSTANCE_DISCOVERY=text,
    )
    with mock.patch.object(auth, "UsernamePasswordCredential") as credential:
        auth.quick_auth(params(), False)
    assert credential.call_args.kwargs["disable_instance_discovery"] is expected


@pytest.mark.parametrize("name", ["AzureChinaCloud", "AzureUSGovernment"])
def test_a_named_cloud_sets_authority_and_endpoints(environment: t.Callable[..., None], name: str) -> None:
    environment(AZURE_CLIENT_ID=CLIENT, AZURE_SECRET=SECRET, AZURE_TENANT=TENANT, AZURE_SUBSCRIPTION_ID=SUBSCRIPTION)
    environment(AZURE_CLOUD_ENVIRONMENT=name)
    with mock.patch.object(auth, "ClientSecretCredential") as credential:
        resolved = auth.quick_auth(params(), False)
    assert resolved is not None
    cloud = resolved._cloud_environment
    assert cloud.name == name
    assert "management.azure.com" not in cloud.endpoints.resource_manager
    assert credential.call_args.kwargs["authority"] == cloud.endpoints.active_directory


def test_an_unknown_cloud_name_is_refused_with_the_names_allowed() -> None:
    with pytest.raises(auth.AzureAuthError, match=r"cloud_environment must be .*AzureChinaCloud"):
        auth.resolve_cloud("AzureMoonCloud")


class Metadata(BaseHTTPRequestHandler):
    """ARM's ``/metadata/endpoints`` list.

    https://learn.microsoft.com/rest/api/resources/get-metadata-endpoints
    """

    clouds: t.ClassVar[list[dict[str, t.Any]]] = []

    def do_GET(self) -> None:
        body = json.dumps(self.clouds).encode()
        self.send_response(200 if self.path.startswith("/metadata/endpoints?api-version=") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: t.Any) -> None:
        pass


@pytest.fixture
def metadata_server() -> t.Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    Metadata.clouds = [
        {
            "name": "Other",
            "resourceManager": "https://management.other.test/",
            "authentication": {"loginEndpoint": "https://login.other.test"},
            "microsoftGraphResourceId": "https://graph.other.test/",
            "suffixes": {"keyVaultDns": "vault.other.test"},
        },
        {
            "name": "Stack",
            "resourceManager": url + "/",
            "authentication": {"loginEndpoint": "https://login.stack.test"},
            "microsoftGraphResourceId": "https://graph.stack.test/",
            "suffixes": {"keyVaultDns": "vault.stack.test"},
        },
    ]
    yield url
    server.shutdown()
    server.server_close()


def test_a_cloud_url_is_read_from_its_metadata_endpoint(metadata_server: str) -> None:
    cloud = auth.resolve_cloud(metadata_server)
    assert cloud.name == "Stack"
    assert cloud.endpoints.resource_manager == metadata_server + "/"
    assert cloud.endpoints.active_directory == "https://login.stack.test"
    assert cloud.endpoints.microsoft_graph_resource_id == "https://graph.stack.test/"
    assert cloud.suffixes.keyvault_dns == "vault.stack.test"


def test_an_unreachable_cloud_url_names_the_setting() -> None:
    with pytest.raises(auth.AzureAuthError, match=r"cloud_environment http://127\.0\.0\.1:9/ could not be resolved"):
        auth.resolve_cloud("http://127.0.0.1:9/")


def test_a_module_never_imports_azure_rm_common_for_a_secret(
    environment: t.Callable[..., None], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of this base class: the AWX credential's secret resolves without azure.azcollection's SDK imports."""
    environment(AZURE_CLIENT_ID=CLIENT, AZURE_SECRET=SECRET, AZURE_TENANT=TENANT, AZURE_SUBSCRIPTION_ID=SUBSCRIPTION)
    name = "ansible_collections.azure.azcollection.plugins.module_utils.azure_rm_common"
    monkeypatch.delitem(sys.modules, name, raising=False)
    with mock.patch.object(ClientSecretCredential, "get_token", return_value=AccessToken(jwt(CLAIMS), 4102444800)):
        result = utils.run_module(azure_context_info.main, capsys)
    assert result["rc"] == 0, result
    assert result["subscription_id"] == SUBSCRIPTION
    assert name not in sys.modules


@pytest.fixture
def azcollection_home(
    environment: t.Callable[..., None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> t.Callable[..., None]:
    """An empty HOME for azure.azcollection's own resolution (its ~/.azure/credentials); returns ``environment``."""
    pytest.importorskip("ansible_collections.azure.azcollection.plugins.module_utils.azure_rm_common")
    monkeypatch.setenv("HOME", str(tmp_path))
    return environment


def test_a_credentials_file_profile_is_resolved_by_azure_azcollection(
    azcollection_home: t.Callable[..., None], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".azure").mkdir()
    (tmp_path / ".azure" / "credentials").write_text(
        f"[work]\nsubscription_id={SUBSCRIPTION}\nclient_id={CLIENT}\nsecret={SECRET}\ntenant={TENANT}\n"
    )
    with mock.patch.object(ClientSecretCredential, "get_token", return_value=AccessToken(jwt(CLAIMS), 4102444800)):
        result = utils.run_module(azure_context_info.main, capsys, auth_source="credential_file", profile="work")
    assert result["rc"] == 0, result
    assert result["subscription_id"] == SUBSCRIPTION
    assert SECRET not in json.dumps(result)


def test_a_missing_credential_fails_with_azure_azcollection_s_explanation(
    azcollection_home: t.Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    azcollection_home(AZURE_CLIENT_ID=CLIENT, AZURE_SUBSCRIPTION_ID=SUBSCRIPTION)  # no secret, no tenant
    result = utils.run_module(azure_context_info.main, capsys)
    assert result["rc"] == 1
    assert "Failed to authenticate with provided credentials" in result["msg"]
