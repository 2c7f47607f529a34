"""Benchmark the cluster layer against `kubectl apply` of the same manifests, in one run.

On a private testbed (its own state dir, brought up and down here):
  1. ansible-playbook playbooks/cluster.yml, first converge, then a no-op re-run;
  2. a fresh testbed; `kubectl apply --server-side -f <rendered manifests>` plus
     `kubectl wait` for the Deployments (what the playbook also waits for), first and no-op.
API requests are counted from the testbed's audit log (requests by the admin user, i.e. the
client under test; controllers and kwok are other users). Results are printed as a table and
written as JSON to --output.

Usage: .venv/bin/python benchmarks/cluster_layer.py [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
ADMIN_USER = "zerotrust-aks-admin"
# The local profile applied to a testbed, as scripts/demo and the Molecule testbed scenario do.
INVENTORY = ["-i", "inventories/local", "-i", "inventories/testbed"]


def run(command: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.monotonic()
    result = run(command, env)
    return time.monotonic() - start, result


def audit_events(path: Path, since_line: int) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()[since_line:]
    return [event for event in map(json.loads, lines) if event.get("user", {}).get("username") == ADMIN_USER]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def measure(label: str, command: list[str], env: dict[str, str], audit: Path) -> dict[str, Any]:
    before = line_count(audit)
    seconds, result = timed(command, env)
    time.sleep(1.5)  # the audit backend writes asynchronously
    events = audit_events(audit, before)
    verbs = Counter(event["verb"] for event in events)
    print(f"  {label}: {seconds:6.2f} s, {len(events)} API requests {dict(verbs)}", flush=True)
    return {"seconds": round(seconds, 2), "requests": len(events), "verbs": dict(verbs), "stdout": result.stdout}


def testbed(env: dict[str, str], *args: str) -> None:
    run([str(REPO / "testbed" / "testbed"), *args], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "build" / "benchmark-cluster-layer.json")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zt-bench-"))
    state = work / "testbed"
    render_dir = work / "render"
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ZEROTRUST_AKS_TESTBED_DIR=str(state),
        KUBECONFIG=str(state / "kubeconfig"),
        K8S_AUTH_KUBECONFIG=str(state / "kubeconfig"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="8",
    )
    kubectl = run([str(REPO / "testbed" / "build"), "--print-path", "kubectl"], env).stdout.strip()
    playbook = ["ansible-playbook", "playbooks/cluster.yml", *INVENTORY]
    results: dict[str, Any] = {}
    try:
        # inventories/testbed keeps the client secret in the testbed's state folder: up first.
        testbed(env, "up", "--lifetime", "30m")
        # The manifests kubectl gets: the playbook's own render mode, same variables.
        run([*playbook, "-e", f"zerotrust_aks_render_dir={render_dir}"], env)
        files = sorted(render_dir.glob("*.yaml"))
        objects = len(files)
        print(f"{objects} rendered objects (+ Secrets the playbook applies and render mode omits)")

        audit = state / "audit.log"
        print("ansible-playbook playbooks/cluster.yml")
        results["ansible_first"] = measure("first converge", playbook, env, audit)
        results["ansible_noop"] = measure("no-op re-run  ", playbook, env, audit)
        testbed(env, "down")

        testbed(env, "up", "--lifetime", "30m")
        apply = [kubectl, "apply", "--server-side", "--field-manager=benchmark", "-f", str(render_dir)]
        wait = [kubectl, "wait", "deployment", "--all", "--all-namespaces", "--for=condition=Available"]
        script = ["bash", "-c", f"{' '.join(apply)} && {' '.join(wait)}"]
        print("kubectl apply --server-side -f <render dir> && kubectl wait")
        results["kubectl_first"] = measure("first apply   ", script, env, audit)
        results["kubectl_noop"] = measure("no-op re-apply", script, env, audit)
    finally:
        subprocess.run([str(REPO / "testbed" / "testbed"), "down"], env=env, cwd=REPO, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    summary = {
        "objects": objects,
        "noop_ratio": round(results["ansible_noop"]["seconds"] / results["kubectl_noop"]["seconds"], 2),
        "first_ratio": round(results["ansible_first"]["seconds"] / results["kubectl_first"]["seconds"], 2),
        "ansible_noop_requests_per_object": round(results["ansible_noop"]["requests"] / objects, 2),
        "ansible_first_requests_per_object": round(results["ansible_first"]["requests"] / objects, 2),
        "kubectl_noop_requests_per_object": round(results["kubectl_noop"]["requests"] / objects, 2),
    }
    print(json.dumps(summary, indent=2))
    print("Slowest tasks of the no-op re-run (profile_tasks):")
    tail = results["ansible_noop"]["stdout"].splitlines()
    print("\n".join(line for line in tail[-12:] if line.strip()))
    for value in results.values():
        value.pop("stdout", None)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    print(f"written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
