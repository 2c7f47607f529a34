"""Run the fake by hand (testkit, its PKI, comes from testbed/lib)::

cd tests/azure && PYTHONPATH=../../testbed/lib ../../.venv/bin/python -m fake_azure --help
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from . import rbac
from .server import FakeAzure


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Azure until it is interrupted or its lifetime ends.")
    parser.add_argument("--workdir", type=Path, required=True, help="where to write the CA and endpoints.json")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="seconds before the fake stops by itself")
    parser.add_argument("--tenant-id", default="11111111-2222-3333-4444-555555555555")
    parser.add_argument("--subscription-id", default="66666666-7777-8888-9999-000000000000")
    parser.add_argument("--client-id", default="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    parser.add_argument("--client-secret", default="fake-deployer-secret")
    parser.add_argument("--resource-group", default="rg-zerotrust")
    parser.add_argument("--cluster", default="aks-zerotrust")
    args = parser.parse_args()
    fake = FakeAzure(
        args.workdir,
        tenant_id=args.tenant_id,
        subscription_id=args.subscription_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        lifetime=args.lifetime,
    ).start()
    fake.add_resource_group(args.resource_group)
    fake.add_cluster(args.resource_group, args.cluster)
    # The deployer's documented roles (docs/AZURE.md), as the tests give them.
    group_id = f"/subscriptions/{fake.subscription_id}/resourceGroups/{args.resource_group}"
    for role in ("Contributor", "User Access Administrator"):
        rbac.grant(fake, fake.deployer_object_id, role, group_id)
    (args.workdir / "endpoints.json").write_text(
        json.dumps(
            {
                "metadata": fake.base_url,
                "graph": fake.graph_url,
                "ca_file": str(fake.ca_file),
                "hosts_file": str(fake.hosts_file),
            },
            indent=2,
        )
    )
    print(
        f"fake Azure: metadata {fake.base_url}, Graph {fake.graph_url}, CA {fake.ca_file}; vault names resolve "
        f"through {fake.hosts_file} (set ZEROTRUST_AKS_FAKE_AZURE_HOSTS to it, PYTHONPATH to tests/azure/shim)",
        flush=True,
    )
    stopped = threading.Event()

    def wait_for_lifetime() -> None:
        if fake._timer:
            fake._timer.join()
        stopped.set()

    threading.Thread(target=wait_for_lifetime, daemon=True).start()
    try:
        stopped.wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
