# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for zerotrust.aks.k8s_apply as Ansible runs it: argument checks and the messages a
user sees when the connection is wrong (no kubeconfig, refused, 401). A real API server is
tests/testbed/test_k8s_apply.py's job."""

from __future__ import annotations

import json
import socket
import threading
import typing as t
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from ansible_collections.zerotrust.aks.plugins.modules import k8s_apply
from ansible_collections.zerotrust.aks.tests.unit.plugins.modules import utils

SECRET_VALUE = "never-show-this-9f8e7d"  # noqa: S105 - a test value that must never be echoed
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "colors"}}


@pytest.fixture(autouse=True)
def no_ambient_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No kubeconfig, K8S_AUTH_* or in-cluster settings from the machine running the tests."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in __import__("os").environ if n.startswith("K8S_AUTH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def run_module(capsys: pytest.CaptureFixture[str], **args: t.Any) -> dict[str, t.Any]:
    args.setdefault("owner", "colors")
    result: dict[str, t.Any] = utils.run_module(k8s_apply.main, capsys, **args)
    return result


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
            }
        )
    )
    return path


def test_refuses_secret_objects_and_points_to_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {}}
    result = run_module(capsys, objects=[NAMESPACE, secret], secret_values={"x": SECRET_VALUE})
    assert result["rc"] == 1
    assert "objects[1] is a Secret ('s'): give Secrets as secrets (specs)" in result["msg"]
    assert SECRET_VALUE not in json.dumps(result)


@pytest.mark.parametrize("owner", ["", "-x", "a" * 64, "has space", "x/y"])
def test_owner_must_be_a_label_value(capsys: pytest.CaptureFixture[str], owner: str) -> None:
    result = run_module(capsys, owner=owner)
    assert result["rc"] == 1 and "owner must be a Kubernetes label value" in result["msg"]


def test_secret_values_must_be_strings_and_are_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(capsys, secret_values={"a": 12345, "b": SECRET_VALUE})
    assert result["rc"] == 1 and result["msg"] == "secret_values.a must be a string, got int"
    assert SECRET_VALUE not in json.dumps(result)


def test_values_from_secret_values_are_masked_and_literal_ones_are_not(capsys: pytest.CaptureFixture[str]) -> None:
    """A literal value is a non-secret such as a client id; masking it would hide every occurrence
    of that text (often the stack's own name) in the output."""
    spec = {"namespace": "n", "name": "s", "data": {"k": {"value": "zerotrust-aks"}, "v": {"value_from": "x"}}}
    result = run_module(capsys, secrets=[spec], secret_values={"x": SECRET_VALUE}, owner="not valid!")
    assert result["rc"] == 1
    assert SECRET_VALUE not in json.dumps(result)
    assert "zerotrust-aks" in json.dumps(result["invocation"])


def test_no_kubeconfig_names_the_file_and_what_to_set(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing-kubeconfig"
    result = run_module(capsys, kubeconfig=str(missing), objects=[NAMESPACE])
    assert result["rc"] == 1
    assert result["msg"] == (
        f"cannot configure the Kubernetes connection: kubeconfig {missing} (from the kubeconfig option (or "
        "K8S_AUTH_KUBECONFIG)) does not exist; set the kubeconfig option, K8S_AUTH_KUBECONFIG or KUBECONFIG, "
        "or host with api_key or a client certificate"
    )
    default = run_module(capsys, objects=[NAMESPACE])
    assert "/home/.kube/config (from the default location) does not exist" in default["msg"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_names_server_kubeconfig_context_and_cause(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = write_kubeconfig(tmp_path / "kc", server)
    result = run_module(capsys, kubeconfig=str(config), objects=[NAMESPACE])
    assert result["rc"] == 1
    assert result["msg"].startswith(
        f"cannot connect to the Kubernetes API server {server} (kubeconfig {config}, context 'dev'): "
    )
    assert "Connection refused" in result["msg"]
    assert "not-a-real-token" not in json.dumps(result)
    assert result["requests"] == 1 and result["objects"] == []


@pytest.fixture
def unauthorized_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                }
            ).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: t.Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_rejected_credentials_give_the_api_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, unauthorized_server: str
) -> None:
    config = write_kubeconfig(tmp_path / "kc", unauthorized_server)
    result = run_module(capsys, kubeconfig=str(config), context="dev", objects=[NAMESPACE])
    assert result["msg"] == (
        f"the Kubernetes API server {unauthorized_server} (kubeconfig {config}, context 'dev') refused "
        "GET /api: HTTP 401 Unauthorized: Unauthorized"
    )


def test_awx_style_environment_connects_without_a_kubeconfig(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, unauthorized_server: str
) -> None:
    monkeypatch.setenv("K8S_AUTH_HOST", unauthorized_server)
    monkeypatch.setenv("K8S_AUTH_API_KEY", "awx-token-value")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "false")
    result = run_module(capsys, objects=[NAMESPACE])
    assert result["msg"].startswith(f"the Kubernetes API server {unauthorized_server} (the host option")
    assert "awx-token-value" not in json.dumps(result)


def test_in_memory_kubeconfig_credentials_are_masked_but_not_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, unauthorized_server: str
) -> None:
    config = json.loads(write_kubeconfig(tmp_path / "kc", unauthorized_server).read_text())
    config["users"][0]["user"]["token"] = "in-memory-token-0a1b2c"  # noqa: S105 - a test value
    result = run_module(capsys, kubeconfig=config, objects=[NAMESPACE])
    assert result["msg"] == (
        f"the Kubernetes API server {unauthorized_server} (the in-memory kubeconfig, context 'dev') refused "
        "GET /api: HTTP 401 Unauthorized: Unauthorized"
    )
    output = json.dumps(result)
    assert "in-memory-token-0a1b2c" not in output
    assert '"kind": "Config"' in output, "only credentials are masked, not every string of the kubeconfig"


@pytest.fixture
def scripted_cluster(monkeypatch: pytest.MonkeyPatch) -> t.Any:
    """The module talking to the engine tests' scripted API: the stack's namespace 'colors' is
    applied, 'old-demo' is owned but no longer applied, and each holds an owned ConfigMap."""
    from ansible_collections.zerotrust.aks.tests.unit.plugins.module_utils.test_k8s_apply_engine import FakeApi

    owned = {"zerotrust.aks/owned-by": "colors"}
    api = FakeApi({"colors": owned, "old-demo": owned}, lambda path, body: 200)
    api.lists = {
        "/api/v1/configmaps": [
            {"metadata": {"name": "settings", "namespace": ns, "uid": f"u-{ns}", "labels": owned}}
            for ns in ("colors", "old-demo")
        ]
    }
    api.close = lambda: None
    monkeypatch.setattr(k8s_apply, "resolve", lambda params, environ: None)
    monkeypatch.setattr(k8s_apply, "Client", lambda connection: api)
    return api


def test_prune_deletes_what_is_no_longer_applied_and_warns_about_the_namespace(
    capsys: pytest.CaptureFixture[str], scripted_cluster: t.Any
) -> None:
    result = run_module(capsys, objects=[NAMESPACE])
    assert result["rc"] == 0 and result["changed"] is True
    assert result["counts"] == {"created": 0, "configured": 0, "unchanged": 1}
    assert {(p["namespace"], p["name"]) for p in result["pruned"]} == {("colors", "settings"), ("old-demo", "settings")}
    assert result["unused_namespaces"] == ["old-demo"]
    assert "pruning never deletes a Namespace" in json.dumps(result["warnings"])


def test_prune_false_lists_and_deletes_nothing(capsys: pytest.CaptureFixture[str], scripted_cluster: t.Any) -> None:
    result = run_module(capsys, objects=[NAMESPACE], prune=False)
    assert result["rc"] == 0 and result["changed"] is False
    assert result["pruned"] == [] and result["unused_namespaces"] == []
    assert not any(c[0] == "DELETE" or (c[2] or {}).get("labelSelector") for c in scripted_cluster.calls)
