# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for k8s_apply's connection settings and discovery parsing (no API server)."""

# ruff: noqa: S105  (the tokens here are test strings, not credentials)

from __future__ import annotations

import base64
import json
import sys
import typing as t
from pathlib import Path

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_connection as connection
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_discovery import (
    Discovery,
    Resource,
    crd_resources,
    is_established,
    parse_aggregated,
    parse_resource_list,
)

CA_PEM = "-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


def kubeconfig(tmp_path: Path, user: dict[str, t.Any], name: str = "config", current: str = "main") -> Path:
    path = tmp_path / name
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://10.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode(),
                },
            }
        ],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": user}],
    }
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


def test_kubeconfig_with_a_token(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "tok"})
    conn = connection.resolve({"kubeconfig": str(path)}, {})
    assert conn.host == "https://10.0.0.1:6443"
    assert conn.token == "tok" and conn.ca_data == CA_PEM
    assert conn.source == f"kubeconfig {path}, context 'main'"


def test_kubeconfig_from_environment_and_relative_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = kubeconfig(tmp_path, {"tokenFile": "token", "client-certificate": "c.pem", "client-key": "k.pem"})
    conn = connection.resolve({}, {"KUBECONFIG": f"{tmp_path / 'missing'}:{path}"})
    assert conn.token == "from-file"
    assert conn.cert_file == str(tmp_path / "c.pem") and conn.key_file == str(tmp_path / "k.pem")
    assert connection.resolve({}, {"K8S_AUTH_KUBECONFIG": str(path)}).token == "from-file"


def test_explicit_options_and_awx_environment_override_the_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "tok"})
    conn = connection.resolve({"kubeconfig": str(path), "validate_certs": False, "api_key": "other"}, {})
    assert conn.verify is False and conn.token == "other"
    # What AWX's Kubernetes bearer token credential injects: no kubeconfig is read at all.
    awx = {
        "K8S_AUTH_HOST": "https://aks.example:443/",
        "K8S_AUTH_API_KEY": "awx-token",
        "K8S_AUTH_VERIFY_SSL": "false",
        "K8S_AUTH_SSL_CA_CERT": "/tmp/ca.pem",
        "KUBECONFIG": str(tmp_path / "does-not-exist"),
    }
    conn = connection.resolve({}, awx)
    assert (conn.host, conn.token, conn.verify, conn.ca_file) == (
        "https://aks.example:443",
        "awx-token",
        False,
        "/tmp/ca.pem",
    )
    assert "host option" in conn.source


def test_impersonation_from_environment() -> None:
    env = {"K8S_AUTH_HOST": "https://h", "K8S_AUTH_API_KEY": "t", "K8S_AUTH_IMPERSONATE_GROUPS": "a,b,"}
    assert connection.resolve({}, env).headers == {"Impersonate-Group": ["a", "b"]}


def test_missing_kubeconfig_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(connection.ConnectionConfigError) as info:
        connection.resolve({"kubeconfig": str(missing)}, {})
    assert str(info.value).startswith(f"kubeconfig {missing} (from the kubeconfig option (or K8S_AUTH_KUBECONFIG))")
    with pytest.raises(connection.ConnectionConfigError, match="from KUBECONFIG"):
        connection.resolve({}, {"KUBECONFIG": str(missing)})


def test_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "tok"})
    with pytest.raises(connection.ConnectionConfigError) as info:
        connection.resolve({"kubeconfig": str(path), "context": "prod"}, {})
    assert str(info.value) == f"kubeconfig {path}, context 'prod': no such context (contexts: main)"


def test_exec_credential_plugin(tmp_path: Path) -> None:
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, os\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': 'exec-' + os.environ['EXTRA']}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script)],
            "env": [{"name": "EXTRA", "value": "ok"}],
        }
    }
    assert connection.resolve({"kubeconfig": str(kubeconfig(tmp_path, user))}, {}).token == "exec-ok"


def test_failing_exec_plugin_names_the_command(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('login required')"]}}
    with pytest.raises(connection.ConnectionConfigError, match="exited 1: login required"):
        connection.resolve({"kubeconfig": str(kubeconfig(tmp_path, user))}, {})


def test_in_memory_kubeconfig(tmp_path: Path) -> None:
    document = json.loads(kubeconfig(tmp_path, {"token": "mem"}).read_text())
    conn = connection.resolve({"kubeconfig": document}, {})
    assert conn.token == "mem" and conn.source == "the in-memory kubeconfig, context 'main'"


def test_kubeconfig_option_is_not_no_log_so_errors_can_name_the_path() -> None:
    spec = connection.auth_argument_spec()
    assert spec["kubeconfig"]["no_log"] is False
    assert spec["api_key"]["no_log"] is True and spec["password"]["no_log"] is True


AGGREGATED_APIS = {
    "kind": "APIGroupDiscoveryList",
    "apiVersion": "apidiscovery.k8s.io/v2",
    "items": [
        {
            "metadata": {"name": "apps"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "deployments",
                            "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                            "scope": "Namespaced",
                            "subresources": [{"subresource": "scale", "responseKind": {"kind": "Scale"}}],
                        }
                    ],
                }
            ],
        },
        {
            "metadata": {"name": "networking.k8s.io"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "ingressclasses",
                            "responseKind": {"group": "networking.k8s.io", "version": "v1", "kind": "IngressClass"},
                            "scope": "Cluster",
                        }
                    ],
                }
            ],
        },
    ],
}
AGGREGATED_API = {
    "kind": "APIGroupDiscoveryList",
    "items": [
        {
            "metadata": {},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {"resource": "namespaces", "responseKind": {"kind": "Namespace"}, "scope": "Cluster"},
                        {"resource": "configmaps", "responseKind": {"kind": "ConfigMap"}, "scope": "Namespaced"},
                    ],
                }
            ],
        }
    ],
}


def test_parse_aggregated_discovery() -> None:
    assert parse_aggregated(AGGREGATED_APIS) == [
        Resource("apps/v1", "Deployment", "deployments", True),
        Resource("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    ]
    assert parse_aggregated(AGGREGATED_API)[0] == Resource("v1", "Namespace", "namespaces", False)


def test_parse_classic_resource_list_skips_subresources() -> None:
    document = {
        "kind": "APIResourceList",
        "groupVersion": "apps/v1",
        "resources": [
            {"name": "deployments", "kind": "Deployment", "namespaced": True},
            {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
        ],
    }
    assert parse_resource_list(document) == [Resource("apps/v1", "Deployment", "deployments", True)]


def test_resource_paths() -> None:
    deployments = Resource("apps/v1", "Deployment", "deployments", True)
    assert deployments.path("ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    assert deployments.path() == "/apis/apps/v1/deployments"
    assert Resource("v1", "Namespace", "namespaces", False).path("", "x") == "/api/v1/namespaces/x"


class FakeClient:
    """Answers GET requests from a path -> body table; counts them like Client does."""

    def __init__(self, answers: dict[str, t.Any]) -> None:
        self.answers = answers
        self.requests = 0
        self.paths: list[str] = []

    def request(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        self.requests += 1
        self.paths.append(path)
        if path not in self.answers:
            raise ApiError(method, path, 404, b'{"kind":"Status","reason":"NotFound","message":"nope"}')

        class Answer:
            body = self.answers[path]

        return Answer()


def test_discovery_uses_two_aggregated_requests() -> None:
    client = FakeClient({"/api": AGGREGATED_API, "/apis": AGGREGATED_APIS})
    discovery = Discovery(client)
    discovery.load()
    assert discovery.get("apps/v1", "Deployment") == Resource("apps/v1", "Deployment", "deployments", True)
    assert discovery.get("example.com/v1", "Widget") is None
    assert client.requests == 2


def test_discovery_falls_back_to_classic_per_group_version() -> None:
    client = FakeClient(
        {
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/apps": {},
            "/apis/apps/v1": {
                "groupVersion": "apps/v1",
                "resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True}],
            },
        }
    )
    discovery = Discovery(client)
    discovery.load()
    assert not discovery.aggregated
    assert discovery.get("apps/v1", "Deployment") is not None
    assert discovery.get("apps/v1", "StatefulSet") is None  # same group version: no second request
    assert discovery.get("example.com/v1", "Widget") is None  # 404: not served
    assert client.paths == ["/api", "/apis/apps/v1", "/apis/example.com/v1"]


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Cluster",
        "versions": [{"name": "v1", "served": True}, {"name": "v0", "served": False}],
    },
    "status": {"conditions": [{"type": "Established", "status": "True"}]},
}


def test_crd_resources_and_established() -> None:
    assert crd_resources(CRD) == [Resource("example.com/v1", "Widget", "widgets", False)]
    assert is_established(CRD)
    assert not is_established({"status": {"conditions": [{"type": "Established", "status": "False"}]}})
