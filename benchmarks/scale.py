"""How the cost of the cluster layer grows with the number of protected apps, against kubectl.

For N in 1, 10 and 50 (``--apps``), the stack protects N apps of its user (``zerotrust_aks_apps``,
demo apps off): N namespaces, made beforehand like a user's existing apps, each with one
protected Ingress (and the site's TLS Secret) added by the collection. For each N, in one run:

  1. the collection: ``ansible-playbook playbooks/cluster.yml`` on a fresh private testbed
     (first converge), then again (no-op);
  2. kubectl: ``kubectl apply --server-side -f <rendered manifests>`` plus ``kubectl wait`` for the
     Deployments, on another fresh testbed, then again.

The manifests kubectl gets are the collection's own render mode with the same variables (render
mode writes no Secret; the collection also applies its Secrets). The app namespaces are created
before each contender's clock starts, with the same kubectl call for both.

Printed as a Markdown table (ratios against kubectl at the same N, measured in this run) and
written as JSON to --output. The ratio is what should not grow with N.

Usage: .venv/bin/python benchmarks/scale.py [--apps 1 10 50] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cluster_layer import INVENTORY, REPO, benchmark_env, measure, ratio, run, testbed


def apps(count: int) -> list[dict[str, Any]]:
    """``count`` protected apps, half of them with an app-level group on top of the site's."""
    return [
        {
            "name": f"app-{index:02d}",
            "namespace": f"bench-app-{index:02d}",
            "service": f"app-{index:02d}",
            "port": 80,
            "path": f"/app-{index:02d}",
            **({"allowed_groups": [f"team-{index:02d}"]} if index % 2 else {}),
        }
        for index in range(1, count + 1)
    ]


def namespaces_command(kubectl: str, count: int) -> list[str]:
    names = [app["namespace"] for app in apps(count)]
    script = " && ".join(f"{kubectl} create namespace {name} -o name" for name in names)
    return ["bash", "-c", script]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--output", type=Path, default=REPO / "build" / "benchmark-scale.json")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zt-bench-scale-"))
    state = work / "testbed"
    env = benchmark_env(state)
    kubectl = run([str(REPO / "testbed" / "build"), "--print-path", "kubectl"], env).stdout.strip()
    audit = state / "audit.log"
    results: dict[str, Any] = {}
    try:
        for count in options.apps:
            variables = work / f"apps-{count}.json"
            variables.write_text(json.dumps({"zerotrust_aks_demo_apps": False, "zerotrust_aks_apps": apps(count)}))
            playbook = ["ansible-playbook", "playbooks/cluster.yml", *INVENTORY, "-e", f"@{variables}"]
            render_dir = work / f"render-{count}"
            run_results: dict[str, Any] = {}

            # inventories/testbed keeps the client secret in the testbed's state folder: up first.
            testbed(env, "up", "--lifetime", "30m")
            run([*playbook, "-e", f"zerotrust_aks_render_dir={render_dir}"], env)
            objects = len(list(render_dir.glob("*.yaml")))
            print(f"{count} apps: {objects} rendered objects", flush=True)
            run(namespaces_command(kubectl, count), env)
            run_results["collection_first"] = measure("collection first", playbook, env, audit)
            run_results["collection_noop"] = measure("collection no-op ", playbook, env, audit)
            testbed(env, "down")

            testbed(env, "up", "--lifetime", "30m")
            run(namespaces_command(kubectl, count), env)
            apply = [kubectl, "apply", "--server-side", "--field-manager=benchmark", "-f", str(render_dir)]
            wait = [kubectl, "wait", "deployment", "--all", "--all-namespaces", "--for=condition=Available"]
            script = ["bash", "-c", f"{' '.join(apply)} && {' '.join(wait)}"]
            run_results["kubectl_first"] = measure("kubectl first   ", script, env, audit)
            run_results["kubectl_noop"] = measure("kubectl no-op    ", script, env, audit)
            testbed(env, "down")
            for value in run_results.values():
                value.pop("stdout", None)
            results[str(count)] = {"objects": objects, **run_results}
    finally:
        subprocess.run([str(REPO / "testbed" / "testbed"), "down"], env=env, cwd=REPO, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("Protected apps; ratios against kubectl at the same N, in this run")
    print(
        "| apps | rendered objects | collection first | collection no-op | kubectl first | kubectl no-op "
        "| first ÷ kubectl | no-op ÷ kubectl | requests per object (first / no-op) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for count, row in results.items():
        first, noop = row["collection_first"], row["collection_noop"]
        k_first, k_noop = row["kubectl_first"], row["kubectl_noop"]
        applied = row["objects"] + first["secrets_applied"]
        print(
            f"| {count} | {row['objects']} | {first['seconds']:.2f} s | {noop['seconds']:.2f} s "
            f"| {k_first['seconds']:.2f} s | {k_noop['seconds']:.2f} s "
            f"| {ratio(first['seconds'], k_first['seconds'])} | {ratio(noop['seconds'], k_noop['seconds'])} "
            f"| {first['requests'] / applied:.2f} / {noop['requests'] / applied:.2f} |"
        )
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=2))
    print(f"written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
