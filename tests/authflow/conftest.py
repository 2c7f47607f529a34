"""Fixtures of the auth-flow suite: the applied objects, the tool binaries and the running stack.

Where the objects come from:
- default: the cluster layer rendered with the local render inventory
  (``tests/render/inventory/local.yml``) plus Secrets generated here — render mode writes no
  Secret, so the values are made up for the run;
- a scenario (``scenario_objects("apps")``): the same render with the extra vars of
  ``tests/authflow/scenarios/<name>.yml`` on top (more apps, app roles, short sessions);
- ``ZEROTRUST_AKS_AUTHFLOW_KUBECONFIG=/path/to/kubeconfig``: read back from that API server
  (``harness.objects_from_cluster``), e.g. the testbed after a converge. A suite that has its own
  cluster fixture overrides ``applied_objects`` instead (a fixture of the same name in its
  conftest.py returning ``harness.objects_from_cluster(kubeconfig)``).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import fcntl
import os
import secrets
import shutil
import subprocess
import typing as t
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from support.playbook import REPO, run_playbook, without_cluster_access

from . import harness

RENDER_INVENTORY = REPO / "tests" / "render" / "inventory" / "local.yml"
SCENARIOS = Path(__file__).parent / "scenarios"
CACHE = Path(os.environ.get("ZEROTRUST_AKS_CACHE", Path.home() / ".cache" / "zerotrust-aks"))
# The API: no Ingress may route to it. A stand-in answers at its Service address, so a route
# added by mistake would show up as a request it received.
COLORS_API_SERVICE = harness.service_key("colors-api", 80, "colors-api")
# Values of the generated Secrets, by the env variable of oauth2-proxy that reads them.
# 32 random bytes, base64url without padding: a cookie secret oauth2-proxy accepts.
_GENERATED: dict[str, t.Callable[[], str]] = {
    "OAUTH2_PROXY_CLIENT_ID": lambda: "zerotrust-aks-authflow",
    "OAUTH2_PROXY_CLIENT_SECRET": lambda: secrets.token_urlsafe(24),
    "OAUTH2_PROXY_COOKIE_SECRET": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
}


def generated_secrets(deployment: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """One Secret per secretKeyRef of the oauth2-proxy container, with made-up values."""
    namespace = deployment["metadata"]["namespace"]
    data: dict[str, dict[str, str]] = {}
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "oauth2-proxy")
    for entry in container.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            if entry["name"] not in _GENERATED:
                raise AssertionError(f"no generator for env {entry['name']} (Secret {ref['name']})")
            data.setdefault(ref["name"], {})[ref["key"]] = _GENERATED[entry["name"]]()
    return {name: harness.make_secret(namespace, name, values) for name, values in data.items()}


def render_cluster_layer(
    ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, name: str, vars_files: Sequence[Path] = ()
) -> Path:
    """The cluster layer rendered (no API server) with the local render inventory (+ vars files)."""
    env = without_cluster_access(ansible_env, tmp_path_factory.mktemp("no-kube") / "does-not-exist")
    out = tmp_path_factory.mktemp(name) / "out"
    run_playbook(
        REPO / "playbooks" / "cluster.yml",
        env=env,
        inventory=[RENDER_INVENTORY],
        extra_vars_files=vars_files,
        extra_vars={"zerotrust_aks_render_dir": str(out)},
    )
    return out


def objects_with_generated_secrets(render_dir: Path) -> harness.AppliedObjects:
    objects = harness.objects_from_render(render_dir, {})
    return dataclasses.replace(objects, secrets=generated_secrets(dict(objects.deployment)))


@pytest.fixture(scope="session")
def rendered_cluster_layer(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cluster layer rendered (no API server) with the local render inventory."""
    return render_cluster_layer(ansible_env, tmp_path_factory, "authflow-render")


@pytest.fixture(scope="session")
def scenario_objects(
    ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], harness.AppliedObjects]:
    """``scenario_objects(name)``: the objects rendered with ``scenarios/<name>.yml`` as extra vars.

    The first call renders every scenario at once (one ansible-playbook each, in parallel: a
    render is mostly Ansible's start-up and waiting), later calls take the result.
    """
    rendered: dict[str, harness.AppliedObjects] = {}

    def render(name: str) -> Path:
        return render_cluster_layer(ansible_env, tmp_path_factory, f"authflow-{name}", [SCENARIOS / f"{name}.yml"])

    def objects(name: str) -> harness.AppliedObjects:
        if not (SCENARIOS / f"{name}.yml").is_file():
            raise LookupError(f"no scenario {name!r} in {SCENARIOS}")
        if not rendered:
            names = sorted(path.stem for path in SCENARIOS.glob("*.yml"))
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
                for scenario, render_dir in zip(names, pool.map(render, names), strict=True):
                    rendered[scenario] = objects_with_generated_secrets(render_dir)
        return rendered[name]

    return objects


@pytest.fixture(scope="session")
def applied_objects(request: pytest.FixtureRequest) -> harness.AppliedObjects:
    """The oauth2-proxy Deployment + its Secrets and the Ingresses the login flow is built from."""
    kubeconfig = os.environ.get("ZEROTRUST_AKS_AUTHFLOW_KUBECONFIG")
    if kubeconfig:
        return harness.objects_from_cluster(kubeconfig)
    render_dir: Path = request.getfixturevalue("rendered_cluster_layer")
    return objects_with_generated_secrets(render_dir)


def _tool_path(tool: str) -> Path | None:
    result = subprocess.run(
        [str(REPO / "testbed" / "build"), "--print-path", tool], capture_output=True, text=True, check=False
    )
    return Path(result.stdout.strip()) if result.returncode == 0 else None


@pytest.fixture(scope="session")
def binaries() -> harness.Binaries:
    """oauth2-proxy and the IdP from testbed/build (built now if missing), Debian's nginx."""
    missing = [tool for tool in ("oauth2-proxy", "idp") if _tool_path(tool) is None]
    if missing:
        CACHE.mkdir(parents=True, exist_ok=True)
        # One Go build at a time on this machine: pytest sessions wait for each other here.
        with (CACHE / "authflow-build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            still_missing = [tool for tool in missing if _tool_path(tool) is None]
            if still_missing:
                subprocess.run([str(REPO / "testbed" / "build"), *still_missing], check=True, timeout=3600)
    oauth2_proxy, idp = _tool_path("oauth2-proxy"), _tool_path("idp")
    assert oauth2_proxy and idp, "testbed/build did not produce oauth2-proxy and idp"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not Path("/usr/lib/nginx/modules/ngx_http_set_misc_module.so").exists():
        pytest.fail("Debian's nginx (with the set-misc module) is missing: run scripts/install-system-packages")
    return harness.Binaries(oauth2_proxy=str(oauth2_proxy), idp=str(idp), nginx=nginx)


StackStarter = Callable[..., AbstractContextManager[harness.LoginStack]]


@pytest.fixture(scope="session")
def start_stack(binaries: harness.Binaries, tmp_path_factory: pytest.TempPathFactory) -> StackStarter:
    """``with start_stack(objects, users=[...], idp_settings=...) as stack:`` — the login flow
    for ``objects`` with these IdP users (default: one user in ``zerotrust-users``)."""

    def start(
        objects: harness.AppliedObjects,
        *,
        users: Sequence[harness.IdpUser] = (harness.IdpUser(),),
        idp_settings: harness.IdpSettings | None = None,
    ) -> AbstractContextManager[harness.LoginStack]:
        return harness.login_stack(
            objects,
            binaries,
            tmp_path_factory.mktemp("authflow"),
            users=users,
            idp_settings=idp_settings,
            stand_in_services=[COLORS_API_SERVICE],
            lifetime_s=600,
        )

    return start


@pytest.fixture(scope="module")
def stack(applied_objects: harness.AppliedObjects, start_stack: StackStarter) -> Iterator[harness.LoginStack]:
    """IdP, oauth2-proxy, stand-in upstreams and nginx running; stopped after the module."""
    with start_stack(applied_objects) as running:
        yield running


@pytest.fixture(scope="session")
def colors_api_service() -> str:
    """service_key() of the colors-api Service, which no Ingress may route to."""
    return COLORS_API_SERVICE


@pytest.fixture
def browser(stack: harness.LoginStack) -> harness.ScriptedBrowser:
    """A fresh scripted browser (no cookies) for the running stack."""
    stack.check_running()
    return stack.browser()
