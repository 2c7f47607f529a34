"""Every flag the rendered oauth2-proxy Deployment passes exists in the pinned binary.

oauth2-proxy refuses an unknown flag at startup, so a flag renamed or removed upstream would
crash-loop the pod on the next version bump. The rendered args (role defaults, and everything
switched on) are checked against the ``--help`` of the binary testbed/build makes from the
version testbed/versions.env pins, which must be the release the role deploys.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t

import pytest
import yaml
from support.playbook import REPO, run_playbook, without_cluster_access

from . import harness

INVENTORIES = REPO / "tests" / "render" / "inventory"
ROLE_DEFAULTS = REPO / "roles" / "oauth2_proxy" / "defaults" / "main.yml"
# One "--name" per line of pflag's usage: "      --cookie-expire duration   expire timeframe ...".
HELP_FLAG = re.compile(r"^\s+(--[a-z0-9][a-z0-9-]*)\b", re.MULTILINE)
# The render inventories may leave authorization open; name somebody (aks: an app role value).
ALLOWED = {
    "aks": {"zerotrust_aks_allowed_groups": ["colors.user"]},
    "local": {"zerotrust_aks_allowed_groups": ["colors-users"]},
}
# Every optional flag on: federated client authentication, token headers (an app asking for
# both), a second host, trusted proxies, email domains, the groups claim with Graph overage,
# a backend logout URL, and the extra args the guard lets through when listed.
MAXIMAL: dict[str, dict[str, t.Any]] = {
    "aks": {
        "zerotrust_aks_identity_mode": "workload",
        "zerotrust_aks_client_auth": "federated",
        "zerotrust_aks_groups_claim": "groups",
        "zerotrust_aks_allowed_groups": ["0f0e0d0c-0b0a-0908-0706-050403020100"],
        "zerotrust_aks_email_domains": ["example.com"],
        "zerotrust_aks_apps": [
            {
                "name": "shop",
                "namespace": "shop",
                "port": 8080,
                "host": "shop.aks.render.test",
                "allowed_groups": ["0f0e0d0c-0b0a-0908-0706-050403020101"],
                "headers": ["user", "access_token", "authorization"],
            }
        ],
        "oauth2_proxy_trusted_proxy_ips": ["10.244.0.0/16"],
        "oauth2_proxy_skip_provider_button": True,
        "oauth2_proxy_extra_args": ["--skip-auth-route=GET=^/healthz$"],
        "oauth2_proxy_allow_overrides": ["--skip-auth-route"],
    },
    "local": {
        "oauth2_proxy_backend_logout_url": "https://idp.render.test/dex/logout?id_token_hint={id_token}",
        "oauth2_proxy_trusted_proxy_ips": ["10.244.0.0/16", "fd00:10::/56"],
        "zerotrust_aks_apps": [
            {
                "name": "shop",
                "namespace": "shop",
                "port": 8080,
                "host": "shop.render.test",
                "allowed_groups": ["shop-admins"],
                "headers": ["user", "access_token", "authorization"],
            }
        ],
    },
}
CASES = [(profile, "defaults") for profile in ("local", "aks")] + [(profile, "maximal") for profile in MAXIMAL]


def help_flags(binary: str) -> set[str]:
    """The flag names the binary's --help lists (pflag prints usage to stderr and exits 0)."""
    result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30, check=False)
    flags = set(HELP_FLAG.findall(result.stdout + result.stderr))
    assert len(flags) > 100, f"--help listed only {sorted(flags)}; exit {result.returncode}\n{result.stderr}"
    return flags


def flag_names(args: list[str]) -> list[str]:
    """ "--name" of every argument (the role emits only --name=value and bare --name)."""
    names = []
    for arg in args:
        assert arg.startswith("--"), f"{arg!r}: the role emits only --name[=value] arguments"
        names.append(arg.split("=", 1)[0])
    return names


@pytest.fixture(scope="module")
def known_flags(binaries: harness.Binaries) -> set[str]:
    return help_flags(binaries.oauth2_proxy)


@pytest.fixture(scope="module")
def rendered_args(
    ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> t.Callable[[str, str], list[str]]:
    env = without_cluster_access(ansible_env, tmp_path_factory.mktemp("no-kube") / "does-not-exist")
    cache: dict[tuple[str, str], list[str]] = {}

    def render(profile: str, variant: str) -> list[str]:
        if (profile, variant) not in cache:
            out = tmp_path_factory.mktemp(f"flags-{profile}-{variant}") / "out"
            values = {**ALLOWED[profile], **(MAXIMAL[profile] if variant == "maximal" else {})}
            run_playbook(
                REPO / "playbooks" / "cluster.yml",
                "-e",
                json.dumps(values),
                env=env,
                inventory=[INVENTORIES / f"{profile}.yml"],
                extra_vars={"zerotrust_aks_render_dir": str(out)},
                timeout=600,
            )
            (path,) = out.glob("*-oauth2-proxy-deployment-oauth2-proxy.yaml")
            deployment = yaml.safe_load(path.read_text())
            containers = deployment["spec"]["template"]["spec"]["containers"]
            (container,) = [c for c in containers if c["name"] == "oauth2-proxy"]
            cache[(profile, variant)] = list(container["args"])
        return cache[(profile, variant)]

    return render


def test_the_binary_is_the_release_the_role_deploys(binaries: harness.Binaries) -> None:
    tag = yaml.safe_load(ROLE_DEFAULTS.read_text())["oauth2_proxy_image_tag"]
    result = subprocess.run([binaries.oauth2_proxy, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.split()[:2] == ["oauth2-proxy", tag], result.stdout


@pytest.mark.parametrize(("profile", "variant"), CASES, ids=[f"{p}-{v}" for p, v in CASES])
def test_every_rendered_flag_exists_in_the_pinned_binary(
    known_flags: set[str], rendered_args: t.Callable[[str, str], list[str]], profile: str, variant: str
) -> None:
    names = flag_names(rendered_args(profile, variant))
    unknown = sorted({name for name in names if name not in known_flags})
    assert not unknown, f"oauth2-proxy would refuse {unknown} and crash-loop"


def test_the_maximal_renders_use_every_optional_flag(rendered_args: t.Callable[[str, str], list[str]]) -> None:
    """The maximal inventories really switch the optional flags on (or the check above proves little)."""
    names = set(flag_names(rendered_args("aks", "maximal"))) | set(flag_names(rendered_args("local", "maximal")))
    for flag in (
        "--entra-id-federated-token-auth",
        "--pass-access-token",
        "--set-authorization-header",
        "--backend-logout-url",
        "--trusted-proxy-ip",
        "--allowed-group",
        "--oidc-groups-claim",
        "--whitelist-domain",
        "--cookie-expire",
        "--cookie-refresh",
        "--skip-auth-route",
    ):
        assert flag in names, flag


def test_a_renamed_flag_is_caught(known_flags: set[str]) -> None:
    """The check above can fail: a flag oauth2-proxy does not know is reported."""
    renamed = ["--provider=oidc", "--entra-id-federated-token=true", "--cookie-expire=8h"]
    unknown = [name for name in flag_names(renamed) if name not in known_flags]
    assert unknown == ["--entra-id-federated-token"]


def test_help_parsing_reads_pflag_usage() -> None:
    usage = (
        "Usage of oauth2-proxy:\n"
        "      --cookie-expire duration     expire timeframe for cookie (default 168h0m0s)\n"
        "      --cookie-httponly            set HttpOnly cookie flag (default true)\n"
    )
    assert set(HELP_FLAG.findall(usage)) == {"--cookie-expire", "--cookie-httponly"}
