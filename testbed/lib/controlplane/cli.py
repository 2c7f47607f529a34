"""The commands: up, down, status, env (see the package docstring)."""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from testkit.process import is_ours, stop_recorded, tail

from .components import TRAEFIK_ENTRYPOINTS
from .state import (
    DEFAULT_LIFETIME,
    TestbedError,
    load_state,
    log,
    remove_state,
    running,
    state_dir,
)
from .up import CertManagerOptions, Run, StartFailed, TraefikOptions, prepare, up

USAGE = """A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake Nodes that run Pods), built by testbed/build.

    testbed/testbed up [--lifetime 4h]   start it (just report when it already runs)
        [--traefik [--traefik-crds] [--traefik-ports WEB,WEBSECURE]]
                                         and Traefik (Gateway API + CRD providers) against it
        [--cert-manager [--cert-manager-crds]]
                                         and cert-manager's controllers (testbed/certmanager)
    testbed/testbed down                 stop what `up` started (by recorded PID), remove the state
    testbed/testbed status               print what runs (exit 1 when not up)
    testbed/testbed env                  print `export KUBECONFIG=...` and friends, for eval

State (certificates, kubeconfig, logs, audit log, etcd data, state.json) lives in
$ZEROTRUST_AKS_TESTBED_DIR, default ${ZEROTRUST_AKS_CACHE:-$HOME/.cache/zerotrust-aks}/testbed.
Every process runs under coreutils `timeout`, so it dies by itself after the lifetime
($ZEROTRUST_AKS_TESTBED_LIFETIME or --lifetime, default 4h) even if `down` is never called.
Ports come from below the kernel's ephemeral range (testkit.ports); a component whose port was
taken before it could bind it is started again on a new one.
"""


def print_status(info: dict[str, Any]) -> None:
    alive = running(info)
    left = info["expires_at"] - time.time()
    print(
        f"testbed {info['state_dir']}: API server {info['server']}, "
        f"{'all' if all(alive.values()) else 'NOT all'} processes up, "
        f"they stop by themselves in {max(left, 0) / 60:.0f} min"
    )
    for p in info["processes"]:
        port = info["ports"].get(p["name"], "")
        print(
            f"  {p['name']:<24} pid {p['pid']:<8} {'running' if alive[p['name']] else 'STOPPED':<8} "
            f"{'127.0.0.1:' + str(port) if port else '':<16} {p['log']}"
        )
    if "traefik" in alive:
        ports = info["ports"]
        entrypoints = ", ".join(f"{ep} 127.0.0.1:{ports[p]}" for ep, p in TRAEFIK_ENTRYPOINTS.items())
        print(f"  traefik entrypoints: {entrypoints}; /ping on 127.0.0.1:{ports['traefik']}")
    print(f"  kubeconfig: {info['kubeconfig']}")
    print(f"  audit log:  {info['audit_log']}")


def down(state: Path, info: dict[str, Any], keep_logs: bool = False) -> None:
    """Stop the recorded processes (only those still ours), last started first; remove STATE."""
    for entry in reversed(info["processes"]):
        stop_recorded(entry["pid"], entry["binary"], name=entry["name"])
    if keep_logs:
        (state / "state.json").unlink(missing_ok=True)
        shutil.rmtree(state / "etcd", ignore_errors=True)
    else:
        remove_state(state)


def fail(run: Run, error: StartFailed) -> int:
    log(f"FAILED: {error}")
    entry = next((p for p in run.info["processes"] if p["name"] == error.component), None)
    if entry:
        log(f"last lines of {entry['log']}:\n{tail(entry['log'])}")
    down(run.state, run.info, keep_logs=True)
    log(f"stopped what had started; logs kept in {run.state / 'logs'}")
    return 1


def traefik_options(args: argparse.Namespace) -> TraefikOptions | None:
    if not args.traefik:
        if args.traefik_crds or args.traefik_ports:
            raise TestbedError("--traefik-crds and --traefik-ports go with --traefik")
        return None
    ports: dict[str, int] = {}
    if args.traefik_ports:
        try:
            web, websecure = (int(p) for p in args.traefik_ports.split(","))
        except ValueError:
            raise TestbedError(f"--traefik-ports {args.traefik_ports!r}: give WEB,WEBSECURE, e.g. 8000,8443") from None
        ports = {TRAEFIK_ENTRYPOINTS["web"]: web, TRAEFIK_ENTRYPOINTS["websecure"]: websecure}
    return TraefikOptions(apply_crds=args.traefik_crds, ports=ports)


def cmd_up(args: argparse.Namespace) -> int:
    state = state_dir()
    info = load_state(state)
    options = traefik_options(args)
    if args.cert_manager_crds and not args.cert_manager:
        raise TestbedError("--cert-manager-crds goes with --cert-manager")
    cm_options = CertManagerOptions(apply_crds=args.cert_manager_crds) if args.cert_manager else None
    if info:
        alive = running(info)
        if all(alive.values()):
            print_status(info)
            if options and "traefik" not in alive:
                log("the testbed runs without Traefik: `testbed/testbed down`, then `up --traefik`")
                return 1
            if cm_options and "cert-manager" not in alive:
                log("the testbed runs without cert-manager: `testbed/testbed down`, then `up --cert-manager`")
                return 1
            return 0
        log("a previous testbed is only partly running: stopping it and starting afresh")
        down(state, info)
    lifetime = args.lifetime or os.environ.get("ZEROTRUST_AKS_TESTBED_LIFETIME") or DEFAULT_LIFETIME
    run = prepare(state, lifetime, options, cm_options)
    try:
        up(run)
    except StartFailed as e:
        return fail(run, e)
    except BaseException:  # a bug or Ctrl-C: leave nothing running either
        down(run.state, run.info, keep_logs=True)
        raise
    print_status(run.info)
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    state = state_dir()
    info = load_state(state)
    if not info:
        print(f"testbed: nothing to stop ({state / 'state.json'} does not exist)")
        return 0
    names = ", ".join(p["name"] for p in info["processes"] if is_ours(p["pid"], p["binary"]))
    down(state, info)
    print(f"testbed: stopped {names or 'nothing (all had exited)'}; removed {state}")
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    info = load_state(state_dir())
    if not info:
        print(f"testbed: not up ({state_dir()})")
        return 1
    print_status(info)
    return 0 if all(running(info).values()) else 1


def cmd_env(_args: argparse.Namespace) -> int:
    state = state_dir()
    info = load_state(state)
    if not info:
        print(f"testbed: not up ({state}): run testbed/testbed up", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={info['kubeconfig']}")
    print(f"export ZEROTRUST_AKS_TESTBED_DIR={state}")
    print(f"export ZEROTRUST_AKS_TESTBED_AUDIT_LOG={info['audit_log']}")
    print(f"export ZEROTRUST_AKS_KUBECTL={info['binaries']['kubectl']}")
    if any(p["name"] == "traefik" for p in info["processes"]):
        ports = info["ports"]
        # A Gateway listener binds to the entrypoint with its port: these are the ports to use.
        print(f"export ZEROTRUST_AKS_TRAEFIK_WEB_PORT={ports[TRAEFIK_ENTRYPOINTS['web']]}")
        print(f"export ZEROTRUST_AKS_TRAEFIK_WEBSECURE_PORT={ports[TRAEFIK_ENTRYPOINTS['websecure']]}")
        print(f"export ZEROTRUST_AKS_TRAEFIK_PING_URL=http://127.0.0.1:{ports['traefik']}/ping")
    if any(p["name"] == "cert-manager" for p in info["processes"]):
        print(
            f"export ZEROTRUST_AKS_CERT_MANAGER_METRICS_URL=http://127.0.0.1:{info['ports']['cert-manager-metrics']}/metrics"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `testbed status | head -1` is no error
    parser = argparse.ArgumentParser(
        prog="testbed/testbed", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="start the testbed (report when it already runs)")
    up_parser.add_argument(
        "--lifetime",
        help=f"processes stop by themselves after this "
        f"(e.g. 90m, 4h; env ZEROTRUST_AKS_TESTBED_LIFETIME; default {DEFAULT_LIFETIME})",
    )
    up_parser.add_argument(
        "--traefik",
        action="store_true",
        help="also start Traefik (testbed/build traefik) with its Gateway API and Kubernetes CRD providers",
    )
    up_parser.add_argument(
        "--traefik-crds",
        action="store_true",
        help="apply the Gateway API standard and traefik.io CRDs before Traefik starts "
        "(without: whoever deploys the edge applies them; Traefik waits for them)",
    )
    up_parser.add_argument(
        "--traefik-ports",
        metavar="WEB,WEBSECURE",
        help="fixed ports of the web and websecure entrypoints (e.g. 8000,8443: a Gateway's listener "
        "ports must equal them); default: picked like every other port",
    )
    up_parser.add_argument(
        "--cert-manager",
        action="store_true",
        help="also start cert-manager's controllers (testbed/build cert-manager), as the testbed's admin",
    )
    up_parser.add_argument(
        "--cert-manager-crds",
        action="store_true",
        help="apply the cert-manager CRDs of roles/cert_manager before it starts (without: it waits for them)",
    )
    sub.add_parser("down", help="stop the processes `up` started and remove the state")
    sub.add_parser("status", help="print what runs; exit 1 when not up")
    sub.add_parser("env", help="print shell exports (KUBECONFIG, ...)")
    args = parser.parse_args(argv)
    handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}[args.command]
    try:
        if args.command in ("up", "down"):
            # Two `up`s (or an `up` and a `down`) on one state dir would remove each other's
            # files: serialise them; the second `up` then finds the testbed up and reports.
            lock_path = state_dir().with_name(state_dir().name + ".lock")
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log(f"another `testbed {args.command}` runs on {state_dir()}: waiting for it")
                    fcntl.flock(lock, fcntl.LOCK_EX)
                return handler(args)
        return handler(args)
    except TestbedError as e:
        log(str(e))
        return 2
