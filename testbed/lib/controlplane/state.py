"""Where the testbed keeps its state, what state.json holds, and the tools it runs."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testkit.process import is_ours

TESTBED_DIR = Path(__file__).resolve().parents[2]  # testbed/
CLUSTER_NAME = "zerotrust-aks-testbed"
DEFAULT_LIFETIME = "4h"
MARKER = ".zerotrust-aks-testbed"  # in every state dir `up` made; nothing else is ever removed
# Start order; `down` stops in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = (*COMPONENTS, "kwok-stages", "kubectl")
# Started only when asked (`up --traefik`, `up --cert-manager`), after the others.
OPTIONAL_COMPONENTS = ("traefik", "cert-manager")
OPTIONAL_TOOLS = {"traefik": ("traefik", "traefik-crds"), "cert-manager": ("cert-manager",)}


class TestbedError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("ZEROTRUST_AKS_CACHE") or Path.home() / ".cache" / "zerotrust-aks")


def state_dir() -> Path:
    return Path(os.environ.get("ZEROTRUST_AKS_TESTBED_DIR") or cache_dir() / "testbed")


def tool_path(tool: str) -> Path:
    """The cached binary of TOOL, as testbed/build names it (built on demand)."""
    build = str(TESTBED_DIR / "build")
    found = subprocess.run([build, "--print-path", tool], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        log(f"{tool} is not built yet: running testbed/build (a cold build takes a while)")
        subprocess.run([build, tool], check=True)
        found = subprocess.run([build, "--print-path", tool], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def parse_lifetime(text: str) -> datetime.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return datetime.timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return datetime.timedelta(seconds=float(text))
    except (ValueError, IndexError):
        raise TestbedError(f"bad lifetime {text!r}: use e.g. 90m, 4h, 3600") from None


# state.json: {"state_dir", "server", "kubeconfig", "audit_log", "ports": {name: port},
#  "lifetime", "started_at", "expires_at", "processes": [{"name", "pid", "binary", "log"}],
#  "binaries": {tool: path}}


def load_state(state: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((state / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return info


def save_state(state: Path, info: dict[str, Any]) -> None:
    (state / "state.json").write_text(json.dumps(info, indent=2) + "\n")


def running(info: dict[str, Any]) -> dict[str, bool]:
    return {p["name"]: is_ours(p["pid"], p["binary"]) for p in info["processes"]}


def make_state_dir(state: Path) -> None:
    remove_state(state)
    (state / "logs").mkdir(parents=True)
    (state / MARKER).write_text("made by testbed/testbed up; `testbed/testbed down` removes this folder\n")
    state.chmod(0o700)


def remove_state(state: Path) -> None:
    """Remove STATE, but only a folder `up` made: ZEROTRUST_AKS_TESTBED_DIR may point anywhere."""
    if not state.exists():
        return
    if any(state.iterdir()) and not (state / MARKER).exists():
        raise TestbedError(f"{state} is not empty and was not made by `testbed up` (no {MARKER}): not removing it")
    shutil.rmtree(state)
