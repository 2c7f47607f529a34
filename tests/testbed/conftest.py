"""Fixtures for the testbed suite: a running local control plane (testbed/testbed up).

The session fixture reuses a testbed that is already up (and leaves it running); otherwise it
brings one up (building the Go tools first if the cache is empty) and takes it down at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client import ApiException

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTBED = REPO_ROOT / "testbed" / "testbed"


@dataclass(frozen=True)
class LocalTestbed:
    state_dir: Path
    kubeconfig: Path
    audit_log: Path
    kubectl: Path
    info: dict[str, Any]
    api: client.ApiClient

    def kubectl_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )


def _testbed(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TESTBED), *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="session")
def testbed() -> Iterator[LocalTestbed]:
    brought_up = False
    if _testbed("status", check=False).returncode != 0:
        # Output goes to the terminal: a cold build shows its progress.
        subprocess.run(
            [str(TESTBED), "up", "--lifetime", os.environ.get("ZEROTRUST_AKS_TESTBED_LIFETIME", "2h")], check=True
        )
        brought_up = True
    exports = dict(line.removeprefix("export ").split("=", 1) for line in _testbed("env").stdout.splitlines())
    state_dir = Path(exports["ZEROTRUST_AKS_TESTBED_DIR"])
    info = json.loads((state_dir / "state.json").read_text())
    api: client.ApiClient = config.new_client_from_config(config_file=exports["KUBECONFIG"])  # type: ignore[no-untyped-call]
    try:
        yield LocalTestbed(
            state_dir=state_dir,
            kubeconfig=Path(exports["KUBECONFIG"]),
            audit_log=Path(exports["ZEROTRUST_AKS_TESTBED_AUDIT_LOG"]),
            kubectl=Path(exports["ZEROTRUST_AKS_KUBECTL"]),
            info=info,
            api=api,
        )
    finally:
        api.close()  # type: ignore[no-untyped-call]
        if brought_up:
            _testbed("down")


@pytest.fixture
def core(testbed: LocalTestbed) -> client.CoreV1Api:
    return client.CoreV1Api(testbed.api)


@pytest.fixture
def apps(testbed: LocalTestbed) -> client.AppsV1Api:
    return client.AppsV1Api(testbed.api)


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Return PROBE's first truthy result; fail the test with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[Callable[..., str]]:
    """Factory: make a uniquely named Namespace (with LABELS); each is deleted after the test."""
    made: list[str] = []

    def make(prefix: str = "tb", labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        made.append(name)
        # The ServiceAccount admission plugin rejects Pods until the controller made `default`.
        wait_until(
            f"ServiceAccount {name}/default",
            lambda: _exists(core.read_namespaced_service_account, "default", name),
            timeout=30,
        )
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


def _exists(read: Callable[..., Any], *args: Any) -> bool:
    try:
        read(*args)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True
