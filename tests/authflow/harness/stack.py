"""The whole login flow running: the IdP, oauth2-proxy, stand-in upstreams and nginx."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import typing as t
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from testkit.pki import write_private
from testkit.ports import free_port
from testkit.process import ManagedProcess

from .browser import ScriptedBrowser
from .ingress_nginx import backend_key, servers_from_ingresses, service_key
from .nginx_conf import nginx_config
from .oauth2_proxy import Invocation, oauth2_proxy_invocation
from .objects import AppliedObjects, UnsupportedObject, container_of, secret_value
from .tls import write_test_pki, write_tls_secret_files
from .upstream import EchoUpstream


@dataclass(frozen=True)
class IdpUser:
    """One user of the test IdP: ``groups`` and ``roles`` become the id_token's claims of those names."""

    username: str = "jane"
    password: str = "correct horse battery staple"  # noqa: S105 - a test user of a test IdP
    email: str = "jane@example.com"
    groups: tuple[str, ...] = ("zerotrust-users",)
    roles: tuple[str, ...] = ()

    @property
    def credentials(self) -> tuple[str, str]:
        return self.username, self.password

    def as_json(self) -> dict[str, t.Any]:
        """The entry of the IdP's ``--users-file``."""
        return {
            "username": self.username,
            "password": self.password,
            "email": self.email,
            "groups": list(self.groups),
            "roles": list(self.roles),
        }


@dataclass(frozen=True)
class IdpSettings:
    """Token lifetimes of the test IdP (Go durations); the defaults are mockoidc's."""

    access_ttl: str = "10m"
    refresh_ttl: str = "1h"


@dataclass(frozen=True)
class Binaries:
    oauth2_proxy: str
    idp: str
    nginx: str = "/usr/sbin/nginx"


def idp_argv(
    binary: str,
    *,
    listen: str,
    issuer_file: Path,
    client_id: str,
    client_secret: str,
    users_file: Path,
    settings: IdpSettings | None = None,
) -> list[str]:
    """The testbed IdP (testbed/idp: mockoidc with a login form) for one client and the users in
    ``users_file`` (see :func:`write_users_file`)."""
    settings = settings or IdpSettings()
    return [
        binary,
        f"--listen={listen}",
        f"--issuer-file={issuer_file}",
        f"--client-id={client_id}",
        f"--client-secret={client_secret}",
        f"--users-file={users_file}",
        f"--access-ttl={settings.access_ttl}",
        f"--refresh-ttl={settings.refresh_ttl}",
    ]


def start_idp(
    binary: str,
    work_dir: Path,
    log_dir: Path,
    *,
    client_id: str,
    client_secret: str,
    users: Sequence[IdpUser],
    settings: IdpSettings | None,
    lifetime_s: float,
    processes: list[ManagedProcess],
) -> str:
    """Start the IdP on a free 127.0.0.1 port (appended to PROCESSES at once, so the caller stops
    it even when a wait fails) and wait until it serves discovery; returns its issuer URL."""
    issuer_file = work_dir / "issuer"
    idp = ManagedProcess(
        "idp",
        idp_argv(
            binary,
            listen=f"127.0.0.1:{free_port()}",
            issuer_file=issuer_file,
            client_id=client_id,
            client_secret=client_secret,
            users_file=write_users_file(work_dir / "idp-users.json", users),
            settings=settings,
        ),
        log_dir,
        inherit_env=False,
        lifetime=lifetime_s,
    )
    processes.append(idp)
    idp.wait_until(lambda: issuer_file.exists() and issuer_file.read_text().strip() != "", what="listening")
    issuer_url = issuer_file.read_text().strip()
    idp.wait_until(lambda: http_ok(issuer_url + "/.well-known/openid-configuration"), what="serving discovery")
    return issuer_url


def write_users_file(path: Path, users: Sequence[IdpUser]) -> Path:
    """The IdP's ``--users-file`` for ``users`` (passwords inside: written owner-only)."""
    names = [user.username for user in users]
    if not users or len(set(names)) != len(names):
        raise ValueError(f"the IdP needs users with distinct names, got {names}")
    return write_private(path, json.dumps([user.as_json() for user in users], indent=2).encode())


@dataclass(frozen=True)
class TokenRequest:
    """One call of the IdP's token endpoint (testbed/idp's ``/testbed/token-requests``)."""

    grant_type: str
    status: int
    subject: str
    refresh_token_issued: bool


@dataclass
class LoginStack:
    """The running login flow: nginx (the ingress), oauth2-proxy, the IdP and stand-in upstreams."""

    host: str  # the main host (zerotrust_aks_host)
    hosts: list[str]  # every host the Ingresses serve, main host first
    nginx_port: int
    ca_file: Path
    issuer_url: str
    oauth2_proxy_address: str
    invocation: Invocation
    upstreams: dict[str, EchoUpstream]  # by service_key()
    users: dict[str, IdpUser]  # by username, in the order given
    nginx_conf: Path
    log_dir: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def user(self) -> IdpUser:
        """The first user (the one a test means when it does not care who logs in)."""
        return next(iter(self.users.values()))

    def browser(self) -> ScriptedBrowser:
        return ScriptedBrowser(self.hosts, self.nginx_port, self.ca_file)

    def change_idp_user(self, username: str, **change: t.Any) -> None:
        """Change a user at the IdP while sessions are open (``groups``, ``roles``, ``disabled``);
        the IdP answers the next refresh with the change. The stack's ``users`` keep the original."""
        base = self.issuer_url.removesuffix("/oidc")
        requests.post(f"{base}/testbed/users/{username}", json=change, timeout=5).raise_for_status()

    def token_requests(self) -> list[TokenRequest]:
        """Every call of the IdP's token endpoint so far, oldest first."""
        base = self.issuer_url.removesuffix("/oidc")
        answer = requests.get(f"{base}/testbed/token-requests", timeout=5)
        answer.raise_for_status()
        return [
            TokenRequest(e["grant_type"], e["status"], e.get("subject", ""), e["refresh_token_issued"])
            for e in answer.json()
        ]

    def check_running(self) -> None:
        for process in self.processes:
            process.check_running()


def oauth2_proxy_service_key(deployment: Mapping[str, t.Any], service_name: str | None = None) -> str:
    """service_key() of the Service in front of the Deployment (same name unless told; port 4180)."""
    meta = deployment["metadata"]
    return service_key(service_name or meta["name"], 4180, meta["namespace"])


@contextlib.contextmanager
def login_stack(
    objects: AppliedObjects,
    binaries: Binaries,
    work_dir: Path,
    *,
    users: Sequence[IdpUser] = (IdpUser(),),
    idp_settings: IdpSettings | None = None,
    stand_in_services: Sequence[str] = (),
    oauth2_proxy_service: str | None = None,
    lifetime_s: int = 600,
    ingress_class: str = "nginx",
) -> Iterator[LoginStack]:
    """Start the IdP, oauth2-proxy (from the Deployment), stand-in upstreams and nginx (from the
    Ingresses); stop all of them on exit.

    Every backend Service the Ingresses route to gets an :class:`EchoUpstream`, except the
    oauth2-proxy Service, which is the real oauth2-proxy. ``stand_in_services`` (service keys) get
    one too even when no Ingress routes to them, so a test can prove that nothing reaches them.
    """
    log_dir = work_dir / "logs"
    state_dir = work_dir / "nginx"
    for sub in ("", "client-body", "proxy-temp", "fastcgi-temp", "uwsgi-temp", "scgi-temp"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    deployment = objects.deployment
    client_id = secret_value(objects.secrets, *_env_secret_ref(deployment, "OAUTH2_PROXY_CLIENT_ID"))
    client_secret = secret_value(objects.secrets, *_env_secret_ref(deployment, "OAUTH2_PROXY_CLIENT_SECRET"))
    processes: list[ManagedProcess] = []
    upstreams: dict[str, EchoUpstream] = {}
    try:
        # The IdP first: oauth2-proxy reads the issuer's discovery document when it starts.
        issuer_url = start_idp(
            binaries.idp,
            work_dir,
            log_dir,
            client_id=client_id,
            client_secret=client_secret,
            users=users,
            settings=idp_settings,
            lifetime_s=lifetime_s,
            processes=processes,
        )

        oauth2_proxy_address = f"127.0.0.1:{free_port()}"
        invocation = oauth2_proxy_invocation(
            deployment, objects.secrets, binary=binaries.oauth2_proxy, http_address=oauth2_proxy_address,
            issuer_url=issuer_url,
        )  # fmt: skip
        proxy = ManagedProcess(
            "oauth2-proxy", invocation.argv, log_dir, env=invocation.env, inherit_env=False, lifetime=lifetime_s
        )
        processes.append(proxy)
        proxy.wait_until(lambda: http_ok(f"http://{oauth2_proxy_address}/ping"), what="answering /ping")

        addresses = {oauth2_proxy_service_key(deployment, oauth2_proxy_service): oauth2_proxy_address}
        referenced = {
            backend_key(ing, p["backend"])
            for ing in objects.ingresses
            if ing["spec"].get("ingressClassName") == ingress_class
            for rule in ing["spec"].get("rules") or []
            for p in rule["http"]["paths"]
        }
        for key in sorted((referenced | set(stand_in_services)) - set(addresses)):
            upstreams[key] = EchoUpstream(key.split(".")[0]).start()
            addresses[key] = upstreams[key].address

        host, hosts = objects.host, objects.hosts
        pki = write_test_pki(work_dir / "pki", hosts)
        certificates: dict[str, tuple[Path, Path]] = {}
        for ing in objects.ingresses:
            for entry in ing["spec"].get("tls") or []:
                key = f"{ing['metadata']['namespace']}/{entry['secretName']}"
                if key in objects.tls_secrets:
                    certificates[key] = write_tls_secret_files(
                        objects.tls_secrets[key], work_dir / "tls", key.replace("/", "_")
                    )
                else:
                    certificates[key] = (pki["site.crt"], pki["site.key"])

        nginx_port = free_port()
        servers = servers_from_ingresses(
            objects.ingresses, addresses, certificates, objects.controller_config, ingress_class
        )
        # Our certificates chain to the test CA; a Secret's certificate (the tls role signs it
        # itself) is its own trust anchor: the browser trusts all of them.
        anchors = dict.fromkeys(
            pki["ca"] if server.certificate.is_relative_to(work_dir / "pki") else server.certificate
            for server in servers
        )
        ca_file = work_dir / "trusted.pem"
        ca_file.write_text("".join(anchor.read_text() for anchor in anchors))
        conf = state_dir / "nginx.conf"
        conf.write_text(
            nginx_config(
                servers,
                listen=f"127.0.0.1:{nginx_port}",
                state_dir=state_dir,
                default_certificate=(pki["default.crt"], pki["default.key"]),
                controller_config=objects.controller_config,
                run_as_root=os.geteuid() == 0,
            )
        )
        nginx_argv = [binaries.nginx, "-p", str(state_dir), "-c", str(conf), "-e", str(state_dir / "error.log")]
        test = subprocess.run([*nginx_argv, "-t"], capture_output=True, text=True, timeout=30, check=False)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t rejects {conf}:\n{test.stderr}")
        nginx = ManagedProcess(
            "nginx", [*nginx_argv, "-g", "daemon off;"], log_dir, inherit_env=False, lifetime=lifetime_s
        )
        processes.append(nginx)
        nginx.wait_until(lambda: _accepts(nginx_port), what=f"listening on 127.0.0.1:{nginx_port}")

        yield LoginStack(
            host=host,
            hosts=hosts,
            nginx_port=nginx_port,
            ca_file=ca_file,
            issuer_url=issuer_url,
            oauth2_proxy_address=oauth2_proxy_address,
            invocation=invocation,
            upstreams=upstreams,
            users={user.username: user for user in users},
            nginx_conf=conf,
            log_dir=log_dir,
            processes=processes,
        )
    finally:
        for process in reversed(processes):
            process.stop()
        for upstream in upstreams.values():
            upstream.stop()


def _env_secret_ref(deployment: Mapping[str, t.Any], env_name: str, container: str = "oauth2-proxy") -> tuple[str, str]:
    for entry in container_of(deployment, container).get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if entry["name"] == env_name and ref:
            return ref["name"], ref["key"]
    raise UnsupportedObject(f"container {container!r} has no env {env_name} from a secretKeyRef")


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_ok(url: str, **kwargs: t.Any) -> bool:
    return requests.get(url, timeout=2, allow_redirects=False, **kwargs).status_code == 200
