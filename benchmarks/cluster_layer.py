"""Benchmark the cluster layer against two baselines applying the same objects, in one run.

Each contender gets a fresh private testbed (its own state dir, brought up and down here) for
its first converge, then a no-op re-run on the same testbed:
  1. the collection: ansible-playbook playbooks/cluster.yml (local profile on the testbed);
  2. kubectl: `kubectl apply --server-side -f <rendered manifests>` plus `kubectl wait` for the
     Deployments (what the playbook also waits for);
  3. the hand-written playbook users would otherwise write: one kubernetes.core.k8s task per
     rendered object (server-side apply, `wait` on Deployments, the Ingresses last).
The manifests come from the collection's own render mode with the same variables. kubectl and
the hand-written playbook apply no Secrets (render mode writes none); the collection also builds
and applies its Secrets, which count as objects in its requests-per-object figure.

Measured: wall time, API requests (from the testbed's audit log: requests by the admin user,
i.e. the client under test; controllers and kwok are other users), and the peak resident memory
of the client's whole process tree (sampled from /proc every 20 ms). Results are printed as a
Markdown table and written as JSON to --output.

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
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
ADMIN_USER = "zerotrust-aks-admin"
# The local profile applied to a testbed, as scripts/demo and the Molecule testbed scenario do.
INVENTORY = ["-i", "inventories/local", "-i", "inventories/testbed"]
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def run(command: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        rss[int(entry.name)] = int(statm[1]) * PAGE_KB
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    """Run ``command``; return its wall time, the peak RSS of its process tree, and its result."""
    start = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kb(process.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate(timeout=900)
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stdout[-4000:]}\n{stderr[-4000:]}")
    return seconds, peak, result


def audit_events(path: Path, since_line: int) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()[since_line:]
    return [event for event in map(json.loads, lines) if event.get("user", {}).get("username") == ADMIN_USER]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def measure(label: str, command: list[str], env: dict[str, str], audit: Path) -> dict[str, Any]:
    before = line_count(audit)
    seconds, peak_kb, result = timed(command, env)
    time.sleep(1.5)  # the audit backend writes asynchronously
    events = audit_events(audit, before)
    verbs = Counter(event["verb"] for event in events)
    secrets = {
        (event["objectRef"].get("namespace"), event["objectRef"].get("name"))
        for event in events
        if event["verb"] == "patch" and event.get("objectRef", {}).get("resource") == "secrets"
    }
    print(f"  {label}: {seconds:6.2f} s, {len(events)} API requests {dict(verbs)}, peak RSS {peak_kb // 1024} MiB")
    return {
        "seconds": round(seconds, 2),
        "requests": len(events),
        "verbs": dict(verbs),
        "peak_rss_mib": round(peak_kb / 1024, 1),
        "secrets_applied": len(secrets),
        "stdout": result.stdout,
    }


def benchmark_env(state: Path) -> dict[str, str]:
    """This process's environment with .venv first and a private testbed in STATE as the cluster."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ZEROTRUST_AKS_TESTBED_DIR=str(state),
        KUBECONFIG=str(state / "kubeconfig"),
        K8S_AUTH_KUBECONFIG=str(state / "kubeconfig"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def testbed(env: dict[str, str], *args: str) -> None:
    run([str(REPO / "testbed" / "testbed"), *args], env)


def naive_playbook(files: list[Path], path: Path) -> None:
    """What users write without the collection: one kubernetes.core.k8s task per object,
    Deployments waited for, Ingresses (and the webhook registration) after them."""
    late = ("Ingress", "ValidatingWebhookConfiguration")
    kinds = {file: yaml.safe_load(file.read_text())["kind"] for file in files}
    tasks = []
    for file in [f for f in files if kinds[f] not in late] + [f for f in files if kinds[f] in late]:
        task: dict[str, Any] = {
            "state": "present",
            "src": str(file),
            "apply": True,
            "server_side_apply": {"field_manager": "naive", "force_conflicts": True},
        }
        if kinds[file] == "Deployment":
            task.update(wait=True, wait_timeout=300)
        tasks.append({"name": f"Apply {file.name}", "kubernetes.core.k8s": task})
    play = [
        {
            "name": "Apply the stack one object at a time",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": tasks,
        }
    ]
    path.write_text(yaml.safe_dump(play, sort_keys=False))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=REPO / "build" / "benchmark-cluster-layer.json")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zt-bench-"))
    state = work / "testbed"
    render_dir = work / "render"
    env = benchmark_env(state)
    kubectl = run([str(REPO / "testbed" / "build"), "--print-path", "kubectl"], env).stdout.strip()
    playbook = ["ansible-playbook", "playbooks/cluster.yml", *INVENTORY]
    results: dict[str, Any] = {}
    audit = state / "audit.log"
    try:
        # inventories/testbed keeps the client secret in the testbed's state folder: up first.
        testbed(env, "up", "--lifetime", "30m")
        # The manifests the baselines get: the playbook's own render mode, same variables.
        run([*playbook, "-e", f"zerotrust_aks_render_dir={render_dir}"], env)
        files = sorted(render_dir.glob("*.yaml"))
        objects = len(files)
        print(f"{objects} rendered objects (the collection also applies its Secrets)", flush=True)

        print("ansible-playbook playbooks/cluster.yml")
        results["collection_first"] = measure("first converge", playbook, env, audit)
        results["collection_noop"] = measure("no-op re-run  ", playbook, env, audit)
        testbed(env, "down")

        testbed(env, "up", "--lifetime", "30m")
        apply = [kubectl, "apply", "--server-side", "--field-manager=benchmark", "-f", str(render_dir)]
        wait = [kubectl, "wait", "deployment", "--all", "--all-namespaces", "--for=condition=Available"]
        script = ["bash", "-c", f"{' '.join(apply)} && {' '.join(wait)}"]
        print("kubectl apply --server-side -f <render dir> && kubectl wait")
        results["kubectl_first"] = measure("first apply   ", script, env, audit)
        results["kubectl_noop"] = measure("no-op re-apply", script, env, audit)
        testbed(env, "down")

        testbed(env, "up", "--lifetime", "30m")
        naive = work / "naive.yml"
        naive_playbook(files, naive)
        print("hand-written playbook: one kubernetes.core.k8s task per object")
        command = ["ansible-playbook", str(naive), "-i", "inventories/testbed"]
        results["naive_first"] = measure("first converge", command, env, audit)
        results["naive_noop"] = measure("no-op re-run  ", command, env, audit)
    finally:
        subprocess.run([str(REPO / "testbed" / "testbed"), "down"], env=env, cwd=REPO, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    rows = {
        "collection": "`ansible-playbook playbooks/cluster.yml`",
        "naive": "one `kubernetes.core.k8s` task per object",
        "kubectl": "`kubectl apply --server-side` + `kubectl wait`",
    }
    kubectl_first, kubectl_noop = results["kubectl_first"]["seconds"], results["kubectl_noop"]["seconds"]
    print()
    print(f"{objects} objects; ratios against kubectl in the same run")
    print(
        "| | first | no-op | first / kubectl | no-op / kubectl "
        "| requests per object (first / no-op) | peak RSS (first) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary: dict[str, Any] = {"objects": objects}
    for key, label in rows.items():
        first, noop = results[f"{key}_first"], results[f"{key}_noop"]
        # The collection also applies its Secrets: they count as objects for it.
        applied = objects + first["secrets_applied"]
        print(
            f"| {label} | {first['seconds']:.2f} s | {noop['seconds']:.2f} s "
            f"| {ratio(first['seconds'], kubectl_first)} | {ratio(noop['seconds'], kubectl_noop)} "
            f"| {first['requests'] / applied:.2f} / {noop['requests'] / applied:.2f} "
            f"| {first['peak_rss_mib']:.0f} MiB |"
        )
        summary[key] = {
            "first_ratio": round(first["seconds"] / kubectl_first, 2),
            "noop_ratio": round(noop["seconds"] / kubectl_noop, 2),
            "objects_applied": applied,
            "first_requests_per_object": round(first["requests"] / applied, 2),
            "noop_requests_per_object": round(noop["requests"] / applied, 2),
        }
    for value in results.values():
        value.pop("stdout", None)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps({"summary": summary, "runs": results}, indent=2))
    print(f"written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
