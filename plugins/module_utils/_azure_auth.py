# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of this collection's Azure modules: azure.azcollection's options and credential rules, quickly.

The modules accept the options of the ``azure.azcollection.azure`` documentation fragment and
resolve the credential by azure.azcollection's rules (``AzureRMAuth``: O(auth_source), module
parameters before ``AZURE_*`` environment variables, then a profile in ``~/.azure/credentials``,
then the Azure CLI, or managed identity).

What differs is the cost. Importing ``azure_rm_common`` imports every Azure SDK client
azure.azcollection supports: about 3 s of CPU per module run before the first request, which
is most of a task's time here (the Azure modules only use their own REST client). So the two
common cases are resolved here with ``azure.identity`` alone:

* a service principal secret (C(client_id), C(secret), C(tenant)) and
* a user and password (C(ad_user), C(password), optional C(client_id)/C(tenant)),

each from the module parameters or the ``AZURE_*`` environment (what an AWX/Automation
Platform Azure credential injects). Every other source (managed identity, Azure CLI, a
credentials-file profile, a certificate) is handed to azure.azcollection's ``AzureRMAuth``
itself, so it behaves exactly as it does there.
"""

from __future__ import annotations

import json
import os
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

try:
    from azure.identity import ClientSecretCredential, UsernamePasswordCredential

    HAS_AZURE_IDENTITY = True
    AZURE_IDENTITY_ERROR = ""
except ImportError as exc:  # pragma: no cover - azure.azcollection's requirements include it
    HAS_AZURE_IDENTITY = False
    AZURE_IDENTITY_ERROR = str(exc)

# azure.azcollection's common options (its azure_rm_common.AZURE_COMMON_ARGS), documented by its
# ``azure.azcollection.azure`` fragment.
AZURE_AUTH_ARGS: dict[str, dict[str, t.Any]] = dict(
    auth_source=dict(
        type="str",
        choices=["auto", "cli", "env", "credential_file", "msi"],
        fallback=(env_fallback, ["ANSIBLE_AZURE_AUTH_SOURCE"]),
        default="auto",
    ),
    profile=dict(type="str"),
    subscription_id=dict(type="str"),
    client_id=dict(type="str", no_log=True),
    secret=dict(type="str", no_log=True),
    tenant=dict(type="str", no_log=True),
    ad_user=dict(type="str", no_log=True),
    password=dict(type="str", no_log=True),
    cloud_environment=dict(type="str", default="AzureCloud"),
    cert_validation_mode=dict(type="str", choices=["validate", "ignore"]),
    api_profile=dict(type="str", default="latest"),
    adfs_authority_url=dict(type="str", default=None),
    log_mode=dict(type="str", no_log=True),
    log_path=dict(type="str", no_log=True),
    x509_certificate_path=dict(type="path", no_log=True),
    thumbprint=dict(type="str", no_log=True),
    disable_instance_discovery=dict(type="bool", default=False),
)
AZURE_AUTH_REQUIRED_IF = [("log_mode", "file", ["log_path"])]

# azure_rm_common.AZURE_CREDENTIAL_ENV_MAPPING: option -> environment variable name
ENVIRONMENT = dict(
    profile="AZURE_PROFILE",
    subscription_id="AZURE_SUBSCRIPTION_ID",
    client_id="AZURE_CLIENT_ID",
    secret="AZURE_SECRET",  # noqa: S106 - a variable name
    tenant="AZURE_TENANT",
    ad_user="AZURE_AD_USER",
    password="AZURE_PASSWORD",  # noqa: S106 - a variable name
    cloud_environment="AZURE_CLOUD_ENVIRONMENT",
    cert_validation_mode="AZURE_CERT_VALIDATION_MODE",
    adfs_authority_url="AZURE_ADFS_AUTHORITY_URL",
    x509_certificate_path="AZURE_X509_CERTIFICATE_PATH",
    thumbprint="AZURE_THUMBPRINT",
    disable_instance_discovery="AZURE_DISABLE_INSTANCE_DISCOVERY",
)
# The Azure CLI's public client id, azure.azcollection's default for a user and password without one.
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
# ARM's cloud metadata, the list format azure-cli reads:
# https://learn.microsoft.com/rest/api/resources/get-metadata-endpoints
METADATA_API_VERSION = "2019-05-01"
METADATA_TIMEOUT = 30


class AzureAuthError(Exception):
    """A credential or cloud that cannot be resolved; the text names the setting, never a secret."""


@dataclass
class CloudEndpoints:
    resource_manager: str
    active_directory: str
    microsoft_graph_resource_id: str


@dataclass
class CloudSuffixes:
    keyvault_dns: str


@dataclass
class Cloud:
    """The parts of a cloud the modules use, shaped like azure-cli's ``Cloud``."""

    name: str
    endpoints: CloudEndpoints
    suffixes: CloudSuffixes


@dataclass
class AzureAuth:
    """What the modules read from ``self.azure_auth``, as on azure.azcollection's ``AzureRMAuth``."""

    azure_credential_track2: t.Any
    _cloud_environment: t.Any
    subscription_id: str | None
    source: str = "parameters"


def known_clouds() -> dict[str, t.Any]:
    """azure-cli's named clouds (AzureCloud, AzureChinaCloud, AzureUSGovernment, ...) by name, as azure.azcollection."""
    from azure.cli.core import cloud as cli_cloud  # small: azure-cli-core's cloud table only

    return {item.name: item for item in vars(cli_cloud).values() if isinstance(item, cli_cloud.Cloud)}


def cloud_from_metadata(url: str) -> Cloud:
    """A cloud described by ARM's metadata endpoint at ``url`` (azure.azcollection's URL form of cloud_environment)."""
    endpoint = url.rstrip("/")
    if "/metadata/endpoints" not in endpoint:
        endpoint += f"/metadata/endpoints?api-version={METADATA_API_VERSION}"
    try:
        with open_url(endpoint, timeout=METADATA_TIMEOUT, http_agent="zerotrust.aks") as answer:
            clouds = json.loads(answer.read())
    except (OSError, ValueError, UrlsConnectionError) as exc:
        raise AzureAuthError(f"cloud_environment {url} could not be resolved: {exc}") from None
    if isinstance(clouds, dict):
        clouds = [clouds]
    host = urlsplit(url).hostname
    chosen: t.Any = next(
        (item for item in clouds if urlsplit(str(item.get("resourceManager", ""))).hostname == host),
        clouds[0] if clouds else None,
    )
    try:
        return Cloud(
            name=str(chosen["name"]),
            endpoints=CloudEndpoints(
                resource_manager=str(chosen["resourceManager"]),
                active_directory=str(chosen["authentication"]["loginEndpoint"]),
                microsoft_graph_resource_id=str(chosen["microsoftGraphResourceId"]),
            ),
            suffixes=CloudSuffixes(keyvault_dns=str(chosen["suffixes"]["keyVaultDns"])),
        )
    except (KeyError, TypeError) as exc:
        raise AzureAuthError(f"cloud_environment {url}: the metadata has no {exc}") from None


def resolve_cloud(raw: str | None) -> t.Any:
    """azure.azcollection's rule: empty is AzureCloud, a known name is that cloud, a URL is read from its metadata."""
    clouds = known_clouds()
    if not raw:
        return clouds["AzureCloud"]
    if raw in clouds:
        return clouds[raw]
    if not urlsplit(raw).scheme:
        raise AzureAuthError(f"cloud_environment must be an endpoint discovery URL or one of {sorted(clouds)}")
    return cloud_from_metadata(raw)


def _environment_credentials() -> dict[str, t.Any]:
    return {key: os.environ.get(name) for key, name in ENVIRONMENT.items()}


def quick_credentials(params: t.Mapping[str, t.Any], is_ad_resource: bool) -> dict[str, t.Any] | None:
    """The credential settings when they are a secret or a password from parameters or environment; else None.

    ``source`` says where they came from, ``kind`` which of the two they are.

    Follows ``AzureRMAuth._get_credentials``: with O(auth_source=auto), a O(profile) parameter
    wins, then O(client_id) or O(ad_user) parameters, then the environment (which needs
    ``AZURE_SUBSCRIPTION_ID`` unless the module needs no subscription, and reads a profile when
    ``AZURE_PROFILE`` is set). None hands the resolution to ``AzureRMAuth``.
    """
    source = params.get("auth_source") or "auto"
    if source not in ("auto", "env"):
        return None
    if source == "auto" and params.get("profile") is not None:
        return None
    if source == "auto" and (params.get("client_id") or params.get("ad_user")):
        found = {key: params.get(key) for key in ENVIRONMENT}
        found["source"] = "parameters"
    else:
        found = _environment_credentials()
        if found["profile"]:
            return None
        if found["subscription_id"] is None and not is_ad_resource:
            return None
        found["source"] = "environment"
    if found.get("client_id") and found.get("secret") and found.get("tenant"):
        found["kind"] = "secret"
    elif found.get("ad_user") and found.get("password"):
        found["kind"] = "password"
    else:
        return None  # a certificate, or something missing: AzureRMAuth handles or explains it
    return found


def quick_auth(params: t.Mapping[str, t.Any], is_ad_resource: bool) -> AzureAuth | None:
    """The credential and cloud for a secret or a password, or None to let azure.azcollection resolve them."""
    found = quick_credentials(params, is_ad_resource)
    if found is None:
        return None
    mode = params.get("cert_validation_mode") or found.get("cert_validation_mode") or "validate"
    if mode not in ("validate", "ignore"):
        raise AzureAuthError(f"invalid cert_validation_mode: {mode}")
    disable_discovery = bool(params.get("disable_instance_discovery")) or boolean(
        found.get("disable_instance_discovery") or False, strict=False
    )
    # A parameter source carries the cloud_environment parameter (default AzureCloud); the
    # environment carries AZURE_CLOUD_ENVIRONMENT or nothing (AzureCloud).
    cloud = resolve_cloud(found.get("cloud_environment"))
    authority = found.get("adfs_authority_url") or cloud.endpoints.active_directory
    credential: t.Any
    if found["kind"] == "secret":
        credential = ClientSecretCredential(
            client_id=found["client_id"],
            client_secret=found["secret"],
            tenant_id=found["tenant"],
            authority=authority,
            disable_instance_discovery=disable_discovery,
        )
    else:
        credential = UsernamePasswordCredential(
            username=found["ad_user"],
            password=found["password"],
            tenant_id=found.get("tenant") or "organizations",
            client_id=found.get("client_id") or AZURE_CLI_CLIENT_ID,
            authority=authority,
            disable_instance_discovery=disable_discovery,
        )
    return AzureAuth(credential, cloud, found.get("subscription_id"), source=str(found["source"]))


class AzureModule:
    """A drop-in for ``AzureRMModuleBase`` in this collection's modules: same options, ``fail``, ``exec_module``.

    Sets ``module``, ``check_mode``, ``azure_auth`` (``azure_credential_track2``,
    ``_cloud_environment``, ``subscription_id``) and ``subscription_id``, then calls
    ``exec_module(**params)`` and exits with what it returns.
    """

    def __init__(
        self,
        derived_arg_spec: dict[str, t.Any],
        supports_check_mode: bool = False,
        supports_tags: bool = False,
        is_ad_resource: bool = False,
        **module_kwargs: t.Any,
    ) -> None:
        spec: dict[str, t.Any] = dict(AZURE_AUTH_ARGS)
        if supports_tags:
            spec.update(tags=dict(type="dict"), append_tags=dict(type="bool", default=True))
        spec.update(derived_arg_spec)
        required_if = list(AZURE_AUTH_REQUIRED_IF) + list(module_kwargs.pop("required_if", None) or [])
        self.module = AnsibleModule(
            argument_spec=spec, supports_check_mode=supports_check_mode, required_if=required_if, **module_kwargs
        )
        if not HAS_AZURE_IDENTITY:
            self.module.fail_json(msg=missing_required_lib("azure-identity"), exception=AZURE_IDENTITY_ERROR)
        self.check_mode = self.module.check_mode
        try:
            auth = quick_auth(self.module.params, is_ad_resource)
        except AzureAuthError as exc:
            self.fail(str(exc))
        self.azure_auth: t.Any = auth if auth is not None else self._azcollection_auth(is_ad_resource)
        self.subscription_id: str | None = self.azure_auth.subscription_id
        result = self.exec_module(**self.module.params)
        self.module.exit_json(**result)

    def _azcollection_auth(self, is_ad_resource: bool) -> t.Any:
        """azure.azcollection's own resolution, for managed identity, the CLI, profiles and certificates."""
        try:
            from ansible_collections.azure.azcollection.plugins.module_utils.azure_rm_common import AzureRMAuth
        except ImportError as exc:
            self.fail(missing_required_lib("azure.azcollection"), exception=str(exc))
        return AzureRMAuth(fail_impl=self.fail, is_ad_resource=is_ad_resource, **self.module.params)

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        raise NotImplementedError

    def fail(self, msg: str, **kwargs: t.Any) -> t.NoReturn:
        self.module.fail_json(msg=msg, **kwargs)
        raise AssertionError("unreachable")  # fail_json exits
