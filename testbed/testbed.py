"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake Nodes that run Pods), built by testbed/build.

    testbed/testbed up [--lifetime 4h]   start it (just report when it already runs)
    testbed/testbed down                 stop what `up` started (by recorded PID), remove the state
    testbed/testbed status               print what runs (exit 1 when not up)
    testbed/testbed env                  print `export KUBECONFIG=...` and friends, for eval

State (certificates, kubeconfig, logs, audit log, etcd data, state.json) lives in
$ZEROTRUST_AKS_TESTBED_DIR, default ${ZEROTRUST_AKS_CACHE:-$HOME/.cache/zerotrust-aks}/testbed.
Every process runs under coreutils `timeout`, so it dies by itself after the lifetime
($ZEROTRUST_AKS_TESTBED_LIFETIME or --lifetime, default 4h) even if `down` is never called.

Python 3 standard library plus `cryptography` (from the repository's .venv: the script
re-executes itself with .venv/bin/python when `cryptography` is missing).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

TESTBED_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTBED_DIR.parent

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - depends on the interpreter
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).resolve() != venv_python.resolve():
        os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])  # noqa: S606
    sys.exit("testbed: needs the Python package 'cryptography' (run scripts/bootstrap to make .venv)")

CLUSTER_NAME = "zerotrust-aks-testbed"
SERVICE_CIDR = "10.96.0.0/16"
# kwok hands out Pod IPs from POD_CIDR; Nodes get NODE_NET addresses. Data only: no traffic
# ever goes to them (no kubelet, no container runtime, no routes).
POD_CIDR = "10.244.0.0/24"
NODE_NET = "10.240.0."
FAKE_NODES = ("kwok-node-0", "kwok-node-1")
DEFAULT_LIFETIME = "4h"
MARKER = ".zerotrust-aks-testbed"  # in every state dir `up` made; nothing else is ever removed
# Start order; `down` stops in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def cache_dir() -> Path:
    return Path(os.environ.get("ZEROTRUST_AKS_CACHE") or Path.home() / ".cache" / "zerotrust-aks")


def state_dir() -> Path:
    return Path(os.environ.get("ZEROTRUST_AKS_TESTBED_DIR") or cache_dir() / "testbed")


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class TestbedError(Exception):
    pass


# --------------------------------------------------------------------------- tools


def tool_path(tool: str) -> Path:
    """The cached binary of TOOL, as testbed/build names it (built on demand)."""
    build = str(TESTBED_DIR / "build")
    found = subprocess.run([build, "--print-path", tool], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        log(f"{tool} is not built yet: running testbed/build (a cold build takes a while)")
        subprocess.run([build, tool], check=True)
        found = subprocess.run([build, "--print-path", tool], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


# --------------------------------------------------------------------------- PKI


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key: Any) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class PKI:
    """A throw-away CA and the certificates the control plane needs (ECDSA P-256: fast to make)."""

    def __init__(self, directory: Path, lifetime: datetime.timedelta) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        # Outlive the processes by a day: nothing here must expire during a run.
        self.not_after = self.not_before + lifetime + datetime.timedelta(days=1)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name(f"{CLUSTER_NAME}-ca")
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        _write_key(self.dir / "ca.key", self.ca_key)
        _write_cert(self.dir / "ca.crt", self.ca_cert)

    def issue(
        self,
        name: str,
        cn: str,
        org: str | None = None,
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.ca_key, hashes.SHA256())
        key_path, cert_path = self.dir / f"{name}.key", self.dir / f"{name}.crt"
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return cert_path, key_path

    def service_account_keys(self) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private, public = self.dir / "sa.key", self.dir / "sa.pub"
        _write_key(private, key)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return private, public


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    # JSON is YAML: no YAML library needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


# Metadata (verb, user, user agent, object reference, response code) is enough to count API
# requests per object; RequestReceived is omitted so that every request is exactly one event.
# Health probes and Lease renewals (leader election, kwok's node heartbeats) are dropped: they
# are background noise, not requests a role or a test makes.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: None
    resources:
      - group: coordination.k8s.io
        resources: [leases]
  - level: Metadata
"""


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def proc_cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def proc_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def is_ours(pid: int, binary: str) -> bool:
    """PID still runs the process we started (guards against PID reuse)."""
    return proc_alive(pid) and binary in proc_cmdline(pid)


def start(name: str, binary: Path, args: list[str], lifetime: str, state: Path) -> dict[str, Any]:
    """Start BINARY under `timeout LIFETIME` in its own session, output to logs/NAME.log."""
    logfile = state / "logs" / f"{name}.log"
    cmd = ["timeout", "--signal=TERM", "--kill-after=30s", lifetime, str(binary), *args]
    (state / "logs" / f"{name}.cmd").write_text(" ".join(cmd) + "\n")
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state,
        )
    # Until the child has exec'd `timeout`, /proc/PID/cmdline is still this script's, and
    # is_ours() would take the new process for one that already exited.
    deadline = time.monotonic() + 10
    while proc.poll() is None and str(binary) not in proc_cmdline(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"name": name, "pid": proc.pid, "binary": str(binary), "log": str(logfile)}


def stop(entry: dict[str, Any], grace: float = 20.0) -> None:
    """SIGTERM the recorded `timeout` process (it forwards the signal to its child), wait;
    SIGKILL whatever of the two still runs after GRACE seconds."""
    pid = entry["pid"]
    if not is_ours(pid, entry["binary"]):
        return
    victims = [pid] + [c for c in proc_children(pid) if is_ours(c, entry["binary"])]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(proc_alive(p) for p in victims):
        time.sleep(0.1)
    for p in victims:
        if proc_alive(p):
            log(f"{entry['name']} (pid {p}) ignored SIGTERM for {grace:.0f} s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    while any(proc_alive(p) for p in victims):
        time.sleep(0.1)


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


# --------------------------------------------------------------------------- API access


class Api:
    def __init__(self, server: str, pki_dir: Path) -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self.ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        # S310: the URL is always https://127.0.0.1:<port>/... built by this script.
        req = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


def fake_node(name: str, address: str) -> dict[str, Any]:
    """A Node that kwok manages. No kwok taint: ordinary Pods (the collection's Deployments)
    schedule onto it without tolerations. ADDRESS is data only: nothing listens there."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "kubeProxyVersion": "fake",
                "kubeletVersion": "fake",
                "operatingSystem": "linux",
            },
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "phase": "Running",
        },
    }


# --------------------------------------------------------------------------- commands


def load_state(state: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((state / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return info


def running(info: dict[str, Any]) -> dict[str, bool]:
    return {p["name"]: is_ours(p["pid"], p["binary"]) for p in info["processes"]}


def parse_lifetime(text: str) -> datetime.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return datetime.timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return datetime.timedelta(seconds=float(text))
    except (ValueError, IndexError):
        raise TestbedError(f"bad lifetime {text!r}: use e.g. 90m, 4h, 3600") from None


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
    print(f"  kubeconfig: {info['kubeconfig']}")
    print(f"  audit log:  {info['audit_log']}")


def cmd_up(args: argparse.Namespace) -> int:
    state = state_dir()
    info = load_state(state)
    if info:
        alive = running(info)
        if all(alive.values()):
            print_status(info)
            return 0
        log("a previous testbed is only partly running: stopping it and starting afresh")
        down(state, info)

    lifetime_text = args.lifetime or os.environ.get("ZEROTRUST_AKS_TESTBED_LIFETIME") or DEFAULT_LIFETIME
    lifetime = parse_lifetime(lifetime_text)
    t0 = time.monotonic()
    bins = {
        t: tool_path(t)
        for t in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "kwok-stages",
            "kubectl",
        )
    }

    remove_state(state)
    (state / "logs").mkdir(parents=True)
    (state / MARKER).write_text("made by testbed/testbed up; `testbed/testbed down` removes this folder\n")
    state.chmod(0o700)
    pki = PKI(state / "pki", lifetime)
    api_cert, api_key = pki.issue(
        "apiserver",
        "kube-apiserver",
        server=True,
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
    )
    sa_key, sa_pub = pki.service_account_keys()
    clients = {
        "admin": ("zerotrust-aks-admin", "system:masters"),
        "controller-manager": ("system:kube-controller-manager", None),
        "scheduler": ("system:kube-scheduler", None),
        # kwok writes Node and Pod status of every fake node: it is cluster admin here.
        "kwok": ("kwok", "system:masters"),
    }
    # kwok's port is its own server (healthz, metrics): on loopback too, not the default :10247.
    ports = {name: free_port() for name in COMPONENTS}
    ports["etcd-peer"] = free_port()
    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    kubeconfigs: dict[str, Path] = {}
    for name, (cn, org) in clients.items():
        cert, key = pki.issue(name, cn, org, client=True)
        kubeconfigs[name] = state / ("kubeconfig" if name == "admin" else f"{name}.kubeconfig")
        write_kubeconfig(kubeconfigs[name], server, pki.dir / "ca.crt", cert, key, cn)
    audit_policy = state / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY)
    audit_log = state / "audit.log"

    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    argv = {
        "etcd": [
            "--name=testbed",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testbed={peer_url}",
            "--initial-cluster-state=new",
            # Throw-away data: durability costs seconds per test on a shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={api_cert}",
            f"--tls-private-key-file={api_key}",
            f"--client-ca-file={pki.dir / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # Default admission plugins (PodSecurity, ServiceAccount, ...) plus NodeRestriction.
            "--enable-admission-plugins=NodeRestriction",
            # Privileged Pods must reach PodSecurity admission rather than fail validation.
            "--allow-privileged=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            # The `kubernetes` Service's Endpoints may not hold a loopback address.
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=2",
            "--audit-log-mode=blocking",
            "--profiling=false",
        ],
        "kube-controller-manager": [
            f"--kubeconfig={kubeconfigs['controller-manager']}",
            f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
            f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-controller-manager']}",
            f"--cert-dir={state / 'kube-controller-manager'}",
            # All default controllers: service-account tokens, namespace deletion,
            # Deployments/ReplicaSets, garbage collection, root CA publisher, ...
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={pki.dir / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kube-scheduler": [
            f"--kubeconfig={kubeconfigs['scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['kube-scheduler']}",
            f"--cert-dir={state / 'kube-scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kwok": [
            f"--kubeconfig={kubeconfigs['kwok']}",
            # kwok's "fast" Stages (from its source, by testbed/build): Nodes Ready with lease
            # heartbeats, Pods Running and Ready at once. An explicit config also keeps a
            # user's ~/.kwok/kwok.yaml out.
            f"--config={bins['kwok-stages']}",
            # Only the Nodes this script creates (annotation kwok.x-k8s.io/node=fake).
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.240.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports['kwok']}",
        ],
    }

    info = {
        "state_dir": str(state),
        "server": server,
        "kubeconfig": str(kubeconfigs["admin"]),
        "audit_log": str(audit_log),
        "ports": ports,
        "lifetime": lifetime_text,
        "started_at": time.time(),
        "expires_at": time.time() + lifetime.total_seconds(),
        "processes": [],
        "binaries": {k: str(v) for k, v in bins.items()},
    }
    api = Api(server, pki.dir)

    def save() -> None:
        (state / "state.json").write_text(json.dumps(info, indent=2) + "\n")

    def fail(component: str, why: str) -> int:
        entry = next((p for p in info["processes"] if p["name"] == component), None)
        log(f"FAILED: {why}")
        if entry:
            log(f"last lines of {entry['log']}:\n{tail(entry['log'])}")
        down(state, info, keep_logs=True)
        log(f"stopped what had started; logs kept in {state / 'logs'}")
        return 1

    def launch(name: str) -> None:
        info["processes"].append(start(name, bins[name], argv[name], lifetime_text, state))
        save()  # record each PID at once: an interrupted `up` is still cleaned up by `down`

    def wait_for(component: str, what: str, probe: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in info["processes"]:
                if not is_ours(p["pid"], p["binary"]):
                    fail(p["name"], f"{p['name']} exited while waiting for {what}")
                    return False
            try:
                if probe():
                    log(f"{what}: ok ({time.monotonic() - t0:.1f} s)")
                    return True
            except OSError:
                pass
            time.sleep(0.25)
        fail(component, f"timed out after {timeout:.0f} s waiting for {what}")
        return False

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as r:  # noqa: S310 (http://127.0.0.1)
            return bool(json.loads(r.read()).get("health") == "true")

    def apiserver_ready() -> bool:
        status, _body = api.request("GET", "/readyz")
        return status == 200

    def default_service_account() -> bool:
        status, _body = api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    def nodes_ready() -> bool:
        for node in FAKE_NODES:
            status, body = api.request("GET", f"/api/v1/nodes/{node}")
            if status != 200:
                return False
            conditions = {c["type"]: c["status"] for c in body.get("status", {}).get("conditions", [])}
            if conditions.get("Ready") != "True":
                return False
        return True

    log(f"starting the testbed in {state} (lifetime {lifetime_text})")
    launch("etcd")
    if not wait_for("etcd", "etcd /health", etcd_healthy, 60):
        return 1
    launch("kube-apiserver")
    if not wait_for("kube-apiserver", "kube-apiserver /readyz", apiserver_ready, 120):
        return 1
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        launch(name)
    for index, node in enumerate(FAKE_NODES):
        status, body = api.request("POST", "/api/v1/nodes", fake_node(node, f"{NODE_NET}{index + 10}"))
        if status not in (201, 409):
            return fail("kube-apiserver", f"creating Node {node}: HTTP {status} {body}")
    if not wait_for(
        "kube-controller-manager", "ServiceAccount default/default (controller-manager)", default_service_account, 120
    ):
        return 1
    if not wait_for("kwok", f"fake Nodes {', '.join(FAKE_NODES)} Ready (kwok)", nodes_ready, 120):
        return 1
    save()
    log(f"up in {time.monotonic() - t0:.1f} s")
    print_status(info)
    return 0


def down(state: Path, info: dict[str, Any], keep_logs: bool = False) -> None:
    for entry in reversed(info["processes"]):
        stop(entry)
    if keep_logs:
        (state / "state.json").unlink(missing_ok=True)
        shutil.rmtree(state / "etcd", ignore_errors=True)
    else:
        remove_state(state)


def remove_state(state: Path) -> None:
    """Remove STATE, but only a folder `up` made: ZEROTRUST_AKS_TESTBED_DIR may point anywhere."""
    if not state.exists():
        return
    if any(state.iterdir()) and not (state / MARKER).exists():
        raise TestbedError(f"{state} is not empty and was not made by `testbed up` (no {MARKER}): not removing it")
    shutil.rmtree(state)


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
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `testbed status | head -1` is no error
    parser = argparse.ArgumentParser(
        prog="testbed/testbed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the testbed (report when it already runs)")
    up.add_argument(
        "--lifetime",
        help=f"processes stop by themselves after this "
        f"(e.g. 90m, 4h; env ZEROTRUST_AKS_TESTBED_LIFETIME; default {DEFAULT_LIFETIME})",
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


if __name__ == "__main__":
    sys.exit(main())
