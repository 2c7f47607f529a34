# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests: the apply engine applies a webhook configuration before the Ingresses and waits for
its CA bundle in between (scripted API; no server)."""

from __future__ import annotations

import copy
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import (
    WEBHOOK_COLLECTIONS,
    EngineError,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import Response
from ansible_collections.zerotrust.aks.tests.unit.plugins.module_utils.test_k8s_apply_engine import (
    DISCOVERY,
    OWNER,
    FakeApi,
    engine,
    namespace,
)

WEBHOOK_DISCOVERY = copy.deepcopy(DISCOVERY)
WEBHOOK_DISCOVERY["/apis"]["items"] += [
    {
        "metadata": {"name": "admissionregistration.k8s.io"},
        "versions": [
            {
                "version": "v1",
                "resources": [
                    {
                        "resource": "validatingwebhookconfigurations",
                        "responseKind": {"kind": "ValidatingWebhookConfiguration"},
                        "scope": "Cluster",
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
                "resources": [{"resource": "ingresses", "responseKind": {"kind": "Ingress"}, "scope": "Namespaced"}],
            }
        ],
    },
]

INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "web", "namespace": "colors"},
    "spec": {"rules": [{"host": "colors.example.com"}]},
}


def webhook_configuration(ca_bundle: str = "") -> dict[str, t.Any]:
    client_config: dict[str, t.Any] = {"service": {"name": "admission", "namespace": "ingress"}}
    if ca_bundle:
        client_config["caBundle"] = ca_bundle
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "ingress-admission"},
        "webhooks": [{"name": "validate.nginx.ingress.kubernetes.io", "clientConfig": client_config}],
    }


class WebhookApi(FakeApi):  # type: ignore[misc]  # FakeApi comes from the collection path, untyped here
    """FakeApi with the webhook and Ingress kinds, and a watch that shows the CA bundle written
    (as ingress-nginx's admission-patch Job does), or nothing at all."""

    def __init__(self, bundle_appears: bool = True) -> None:
        super().__init__({"colors": {"zerotrust.aks/owned-by": OWNER}}, lambda path, body: 200)
        self.bundle_appears = bundle_appears
        self.watches: list[str] = []

    def request(self, method: str, path: str, *, query: t.Any = None, body: t.Any = None, **kwargs: t.Any) -> Response:
        if path in WEBHOOK_DISCOVERY:
            self.requests += 1
            self.calls.append((method, path, dict(query or {}), body))
            return Response(200, {}, WEBHOOK_DISCOVERY[path])
        return super().request(method, path, query=query, body=body, **kwargs)

    def watch(self, path: str, query: t.Mapping[str, t.Any], seconds: int) -> t.Iterator[dict[str, t.Any]]:
        self.requests += 1
        self.watches.append(path)
        self.calls.append(("WATCH", path, dict(query), None))
        if self.bundle_appears:
            written = webhook_configuration(ca_bundle="LS0tLS1CRUdJTi0tLS0t")
            written["metadata"]["resourceVersion"] = "200"
            yield {"type": "MODIFIED", "object": written}


def applied(api: FakeApi) -> list[str]:
    return [path.rsplit("/", 2)[-2] for method, path, _q, _b in api.calls if method == "PATCH"]


def test_webhook_first_then_its_ca_bundle_then_the_ingresses() -> None:
    api = WebhookApi()
    run = engine(api)
    run.present([INGRESS, webhook_configuration(), namespace("colors")], [], {})
    order = [c[0] + " " + c[1].rsplit("/", 2)[-2] for c in api.calls if c[0] in ("PATCH", "WATCH")]
    assert order == [
        "PATCH namespaces",
        "PATCH validatingwebhookconfigurations",
        "WATCH v1",  # /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations
        "PATCH ingresses",
    ]
    assert api.watches == [WEBHOOK_COLLECTIONS["ValidatingWebhookConfiguration"]]
    assert [(w["kind"], w["name"]) for w in run.waited["webhooks"]] == [
        ("ValidatingWebhookConfiguration", "ingress-admission")
    ]


def test_a_configuration_that_brings_its_ca_bundle_needs_no_wait() -> None:
    api = WebhookApi(bundle_appears=False)
    run = engine(api)
    run.present([INGRESS, webhook_configuration(ca_bundle="LS0tLS1CRUdJTi0tLS0t")], [], {})
    assert api.watches == []
    assert applied(api)[-1] == "ingresses"
    assert "webhooks" not in run.waited


def test_no_ca_bundle_in_time_fails_naming_the_webhook_and_applies_no_ingress() -> None:
    api = WebhookApi(bundle_appears=False)
    run = engine(api, wait_timeout=1)
    with pytest.raises(EngineError) as failure:
        run.present([INGRESS, webhook_configuration()], [], {})
    message = str(failure.value)
    assert "CA bundle of ValidatingWebhookConfiguration ingress-admission" in message
    assert "validate.nginx.ingress.kubernetes.io" in message and "admission-patch Job" in message
    assert "the objects of kind Ingress were not applied" in message and "cainjector" not in message
    assert "ingresses" not in applied(api)


@pytest.mark.parametrize("options", [{"check_mode": True}, {"wait": False}])
def test_no_wait_in_check_mode_or_without_wait(options: dict[str, t.Any]) -> None:
    api = WebhookApi(bundle_appears=False)
    run = engine(api, **options)
    run.present([INGRESS, webhook_configuration()], [], {})
    assert api.watches == []
