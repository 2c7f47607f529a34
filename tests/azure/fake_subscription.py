"""The subscription the azure tests deploy into: ids, names and the deployer's credential in the fake.

A module of its own (not conftest.py) so the tests can import these values: importing from
conftest.py is fragile, as several suites have one and whichever is first on sys.path wins.
"""

from __future__ import annotations

TENANT = "11111111-2222-3333-4444-555555555555"
SUBSCRIPTION = "66666666-7777-8888-9999-000000000000"
DEPLOYER_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
DEPLOYER_SECRET = "deployer-secret-" + "x9Q2"  # the fake's only credential, checked never to be printed
RESOURCE_GROUP = "rg-zerotrust"
CLUSTER = "aks-zerotrust"
CLUSTER_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    f"/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}"
)
# playbooks/azure.yml alone (test_azure_layer.py) and site.yml (test_site_end_to_end.py) each
# make their own vault.
KEYVAULT = "zt-aks-kv-test"
SITE_KEYVAULT = "zt-aks-kv-site"
SITE_HOST = "colors.example.com"
# Directory objects seeded in the fake (Graph refuses assignments to principals that do not exist).
GROUP_COLORS = "3f0c8a56-6a3e-4f39-9d5b-1f1b7e0c2d4a"
GROUP_OPS = "7b2e9d14-0c55-4a8e-b3f1-5e6d7c8b9a01"
USER_ALICE = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
SECOND_HOST = "shop.colors.example.com"
