"""Test-only shim, on PYTHONPATH of the processes tests/azure starts (never shipped):

1. the fake Azure's DNS: names ending in ``.fake.test`` resolve only from the fake's hosts file;
2. azure.azcollection 3.12's missing `get_cloud_from_metadata_endpoint`.

1. DNS. The file named by ZEROTRUST_AKS_FAKE_AZURE_HOSTS (written by the fake,
``FakeAzure.hosts_file``) has one ``name address not-before`` line per name, not-before being an
epoch time. Before it, or for a name not in the file, ``socket.getaddrinfo`` fails with
EAI_NONAME as a resolver does for a name that does not exist (yet): this is how a new vault's
hostname behaves on Azure for a while after the vault is created (fake_azure/server.py,
``register_vault_host``). Other names resolve as usual.

2. azure.azcollection documents `cloud_environment` as a cloud name *or a metadata discovery
URL*, and for a URL calls `azure.cli.core.cloud.get_cloud_from_metadata_endpoint`, which
azure-cli-core (2.75, pinned by azure.azcollection) does not have: any URL fails with
AttributeError. The tests need the URL form to point every client at the fake Azure, so
this file, put on PYTHONPATH by tests/azure only, adds that function, built from
azure-cli-core's own metadata parser. Nothing in the collection depends on it; real runs
use a named cloud (AzureCloud, AzureChinaCloud, AzureUSGovernment).
"""

from __future__ import annotations

import json
import os
import socket
import time
import typing as t
import urllib.request

HOSTS_ENV = "ZEROTRUST_AKS_FAKE_AZURE_HOSTS"
FAKE_SUFFIX = ".fake.test"
_real_getaddrinfo = socket.getaddrinfo


def _fake_address(name: str) -> str | None:
    """The address of a ``.fake.test`` name, if the fake's hosts file publishes it by now."""
    path = os.environ.get(HOSTS_ENV)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as hosts:
            lines = hosts.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[0] == name:
            return fields[1] if time.time() >= float(fields[2]) else None
    return None


def _getaddrinfo(host: t.Any, port: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.rstrip(".").lower().endswith(FAKE_SUFFIX):
        address = _fake_address(name.rstrip(".").lower())
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return _real_getaddrinfo(address, port, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo

try:
    from azure.cli.core import cloud as _cloud
except ImportError:  # not an azure interpreter
    _cloud = None


def _get_cloud_from_metadata_endpoint(arm_endpoint: str, name: str | None = None, session: object = None):  # type: ignore[no-untyped-def]
    url = arm_endpoint.rstrip("/")
    if "/metadata/endpoints" not in url:
        url += "/metadata/endpoints?api-version=2019-05-01"
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - https URL from the test fixture
        clouds = json.loads(answer.read())
    if isinstance(clouds, dict):
        clouds = [clouds]
    chosen = next((c for c in clouds if name is None or c.get("name") == name), clouds[0])
    return _cloud._arm_to_cli_mapper(chosen)


if _cloud is not None and not hasattr(_cloud, "get_cloud_from_metadata_endpoint"):
    _cloud.get_cloud_from_metadata_endpoint = _get_cloud_from_metadata_endpoint
