"""With no cluster to reach, the cluster layer fails on its first cluster contact and says why:
which kubeconfig it read and what went wrong, not "the output has been hidden"."""

from __future__ import annotations

import secrets
from pathlib import Path

from support.playbook import run_playbook

STACK = {
    "zerotrust_aks_platform": "local",
    "zerotrust_aks_host": "colors.errors.test",
    "zerotrust_aks_oidc_issuer_url": "https://idp.errors.test",
    "zerotrust_aks_client_id": "errors-test",
    "zerotrust_aks_allowed_groups": ["zerotrust-users"],
    "zerotrust_aks_render_dir": "",
}


def test_no_kubeconfig_names_the_file_and_the_cause(ansible_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    env = {k: v for k, v in ansible_env.items() if not k.startswith("K8S_AUTH_")}
    env["KUBECONFIG"] = str(missing)
    client_secret = secrets.token_urlsafe(24)
    run = run_playbook(
        "playbooks/cluster.yml",
        env=env,
        extra_vars={**STACK, "zerotrust_aks_client_secret": client_secret},
        verbosity=3,
        must_succeed=False,
    )
    assert run.returncode != 0
    assert str(missing) in run.output, run.describe()
    assert "output has been hidden" not in run.output
    assert client_secret not in run.output


def test_an_unreachable_api_server_names_the_server_and_the_cause(ansible_env: dict[str, str], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    # A port nothing listens on: connection refused at once.
    kubeconfig.write_text(
        """apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:9"}
users:
  - name: nobody
    user: {token: not-a-token}
contexts:
  - name: nowhere
    context: {cluster: nowhere, user: nobody}
current-context: nowhere
"""
    )
    env = {k: v for k, v in ansible_env.items() if not k.startswith("K8S_AUTH_")}
    env["KUBECONFIG"] = str(kubeconfig)
    run = run_playbook(
        "playbooks/cluster.yml",
        env=env,
        extra_vars={**STACK, "zerotrust_aks_client_secret": secrets.token_urlsafe(24)},
        must_succeed=False,
    )
    assert run.returncode != 0
    assert "127.0.0.1:9" in run.output, run.describe()
    assert "nowhere" in run.output, run.describe()
    assert "output has been hidden" not in run.output
