"""Test-only shim: give azure.azcollection 3.12 the function its `cloud_environment` URL path calls.

azure.azcollection documents `cloud_environment` as a cloud name *or a metadata discovery
URL*, and for a URL calls `azure.cli.core.cloud.get_cloud_from_metadata_endpoint`, which
azure-cli-core (2.75, pinned by azure.azcollection) does not have: any URL fails with
AttributeError. The tests need the URL form to point every client at the fake Azure, so
this file, put on PYTHONPATH by tests/azure only, adds that function, built from
azure-cli-core's own metadata parser. Nothing in the collection depends on it; real runs
use a named cloud (AzureCloud, AzureChinaCloud, AzureUSGovernment).
"""

from __future__ import annotations

import json
import urllib.request

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
