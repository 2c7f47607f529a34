"""`testbed up --cert-manager --cert-manager-crds`: cert-manager's controllers (testbed/certmanager)
started with the control plane, on loopback only, stopped by `down`.

A testbed of its own (its own state dir), so the session's testbed keeps running without one.
What the controller does with the collection's objects is tests/gateway/test_cert_manager.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from testkit.process import alive, listening_ports, session_members

from .conftest import TESTBED

ISSUER_NAME = "testbed-up-selfsigned"
ISSUER = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "ClusterIssuer",
    "metadata": {"name": ISSUER_NAME},
    "spec": {"selfSigned": {}},
}


def test_up_runs_cert_manager_on_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "ZEROTRUST_AKS_TESTBED_DIR": str(tmp_path / "state")}

    def testbed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TESTBED), *args], env=env, capture_output=True, text=True, timeout=600, check=False)

    up = testbed("up", "--lifetime", "10m", "--cert-manager", "--cert-manager-crds")
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads((tmp_path / "state" / "state.json").read_text())
        (entry,) = [p for p in info["processes"] if p["name"] == "cert-manager"]
        ports = {info["ports"]["cert-manager"], info["ports"]["cert-manager-metrics"]}
        assert listening_ports(session_members(entry["pid"])) == ports
        with open(f"/proc/{entry['pid']}/net/tcp") as table:  # the namespace's IPv4 listeners
            ours = [line.split() for line in table.read().splitlines()[1:] if line.split()[3] == "0A"]
        bound = {int(cols[1].split(":")[1], 16): cols[1].split(":")[0] for cols in ours}
        assert {bound[port] for port in ports} == {"0100007F"}, "cert-manager should listen on 127.0.0.1 only"

        exports = dict(line.removeprefix("export ").split("=", 1) for line in testbed("env").stdout.splitlines())
        with urllib.request.urlopen(exports["ZEROTRUST_AKS_CERT_MANAGER_METRICS_URL"], timeout=5) as r:  # noqa: S310
            assert b"certmanager_clock_time_seconds" in r.read()

        kubectl = [exports["ZEROTRUST_AKS_KUBECTL"], f"--kubeconfig={exports['KUBECONFIG']}"]
        subprocess.run(
            [*kubectl, "apply", "-f", "-"], input=json.dumps(ISSUER), text=True, check=True, capture_output=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = subprocess.run(
                [*kubectl, "get", "clusterissuer", ISSUER_NAME, "-o", "json"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            conditions = json.loads(got.stdout).get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"ClusterIssuer not Ready after 30 s; cert-manager's log: {entry['log']}")
    finally:
        down = testbed("down")
    assert down.returncode == 0, down.stderr
    assert "cert-manager" in down.stdout
    assert not alive(entry["pid"])
