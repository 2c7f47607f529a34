# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests: cert-manager installed in the same run as its Certificates and issuers (scripted
API; no server). The API server refuses cert-manager objects until the webhook runs and the
cainjector has written the caBundle of both of cert-manager's webhook configurations, so the engine
applies them after the rollouts, after the configurations, and after both CA bundles."""

from __future__ import annotations

import copy
import json
import typing as t

import pytest
from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_apply
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import (
    DEFAULT_APPLY_AFTER_ROLLOUT,
    WEBHOOK_COLLECTIONS,
    EngineError,
    Options,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import ApiError, Response
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_teardown import kinds_to_list, prune
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL
from ansible_collections.zerotrust.aks.tests.unit.plugins.module_utils.test_k8s_apply_engine import (
    DISCOVERY,
    OWNER,
    FakeApi,
    engine,
    namespace,
)

CM_NS = "cert-manager"
CA_BUNDLE = "LS0tLS1CRUdJTi0tLS0t"
VALIDATING = WEBHOOK_COLLECTIONS["ValidatingWebhookConfiguration"]
MUTATING = WEBHOOK_COLLECTIONS["MutatingWebhookConfiguration"]
CERT_MANAGER_KINDS = {"certificates", "issuers", "clusterissuers"}


def _group(name: str, *resources: tuple[str, str, str]) -> dict[str, t.Any]:
    return {
        "metadata": {"name": name},
        "versions": [
            {
                "version": "v1",
                "resources": [
                    {"resource": plural, "responseKind": {"kind": kind}, "scope": scope}
                    for plural, kind, scope in resources
                ],
            }
        ],
    }


CM_DISCOVERY = copy.deepcopy(DISCOVERY)
CM_DISCOVERY["/apis"]["items"] += [
    _group("apps", ("deployments", "Deployment", "Namespaced")),
    _group(
        "admissionregistration.k8s.io",
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", "Cluster"),
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", "Cluster"),
    ),
    _group(
        "cert-manager.io",
        ("certificates", "Certificate", "Namespaced"),
        ("issuers", "Issuer", "Namespaced"),
        ("clusterissuers", "ClusterIssuer", "Cluster"),
    ),
]


def deployment(name: str) -> dict[str, t.Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": CM_NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}}},
    }


def webhook_configuration(kind: str, ca_bundle: str = "") -> dict[str, t.Any]:
    """cert-manager's two configurations: same name, CA bundle from the cainjector."""
    client_config: dict[str, t.Any] = {"service": {"name": "cert-manager-webhook", "namespace": CM_NS}}
    if ca_bundle:
        client_config["caBundle"] = ca_bundle
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": "cert-manager-webhook",
            "annotations": {"cert-manager.io/inject-ca-from-secret": f"{CM_NS}/cert-manager-webhook-ca"},
        },
        "webhooks": [{"name": "webhook.cert-manager.io", "clientConfig": client_config}],
    }


def cert_manager_object(kind: str, name: str, ns: str = "", **spec: t.Any) -> dict[str, t.Any]:
    metadata = {"name": name, "namespace": ns} if ns else {"name": name}
    return {"apiVersion": "cert-manager.io/v1", "kind": kind, "metadata": metadata, "spec": spec}


def tls_objects() -> list[dict[str, t.Any]]:
    """The tls role's CA chain and site Certificate (issuer_create: ca), and an Issuer."""
    return [
        cert_manager_object("Certificate", "colors-site", "colors", secretName="colors-tls"),
        cert_manager_object("ClusterIssuer", "colors-ca", ca={"secretName": "colors-ca"}),
        cert_manager_object("Certificate", "colors-ca", CM_NS, isCA=True, secretName="colors-ca"),
        cert_manager_object("ClusterIssuer", "colors-selfsigned", selfSigned={}),
        cert_manager_object("Issuer", "colors-local", "colors", selfSigned={}),
    ]


def install_objects() -> list[dict[str, t.Any]]:
    """What the cert_manager role adds (the part the order depends on)."""
    return [
        namespace(CM_NS),
        deployment("cert-manager-webhook"),
        deployment("cert-manager-cainjector"),
        webhook_configuration("ValidatingWebhookConfiguration"),
        webhook_configuration("MutatingWebhookConfiguration"),
    ]


class CertManagerApi(FakeApi):  # type: ignore[misc]  # FakeApi comes from the collection path, untyped here
    """FakeApi with the kinds of a cert-manager install. Watches show each Deployment rolled out
    and each webhook configuration with the CA bundle the cainjector writes (unless told not to).
    REFUSE answers the first N PATCHes of a cert-manager object with what the API server says when
    it cannot call the webhook yet."""

    def __init__(
        self,
        namespaces: dict[str, dict[str, str]] | None = None,
        bundle_appears: bool = True,
        refuse: int = 0,
        refusal: tuple[int, str] = (500, 'Internal error occurred: failed calling webhook "webhook.cert-manager.io"'),
    ) -> None:
        super().__init__({"colors": {}} if namespaces is None else namespaces, lambda path, body: 201)
        self.bundle_appears = bundle_appears
        self.refuse = refuse
        self.refusal = refusal
        self.events: list[str] = []

    def request(self, method: str, path: str, *, query: t.Any = None, body: t.Any = None, **kwargs: t.Any) -> Response:
        if path in CM_DISCOVERY:
            self.requests += 1
            self.calls.append((method, path, dict(query or {}), body))
            return Response(200, {}, CM_DISCOVERY[path])
        if method == "PATCH" and (query or {}).get("fieldManager") == "zerotrust-aks":
            resource, name = path.rsplit("/", 2)[-2:]
            self.events.append(f"PATCH {resource}/{name}")
            if resource in CERT_MANAGER_KINDS and self.refuse > 0:
                self.refuse -= 1
                self.requests += 1
                self.calls.append((method, path, dict(query or {}), body))
                status, message = self.refusal
                raise ApiError(
                    method, path, status, json.dumps({"kind": "Status", "reason": "x", "message": message}).encode()
                )
        return super().request(method, path, query=query, body=body, **kwargs)

    def watch(self, path: str, query: t.Mapping[str, t.Any], seconds: int) -> t.Iterator[dict[str, t.Any]]:
        self.requests += 1
        self.calls.append(("WATCH", path, dict(query), None))
        name = query["fieldSelector"].removeprefix("metadata.name=")
        self.events.append(f"WATCH {path.rsplit('/', 1)[-1]}/{name}")
        if path.endswith("/deployments"):
            rolled = deployment(name)
            rolled["metadata"].update(resourceVersion="200", generation=1)
            rolled["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
            yield {"type": "MODIFIED", "object": rolled}
        elif path in (VALIDATING, MUTATING) and self.bundle_appears:
            kind = "ValidatingWebhookConfiguration" if path == VALIDATING else "MutatingWebhookConfiguration"
            written = webhook_configuration(kind, ca_bundle=CA_BUNDLE)
            written["metadata"]["resourceVersion"] = "200"
            yield {"type": "MODIFIED", "object": written}


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_k8s_apply, "WEBHOOK_RETRY_DELAY", 0.0)


def test_the_cert_manager_kinds_and_both_webhook_configurations_are_deferred_by_default() -> None:
    deferred = set(Options(owner=OWNER).apply_after_rollout)
    assert deferred == set(DEFAULT_APPLY_AFTER_ROLLOUT)
    assert {"Ingress", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} <= deferred
    assert {"Certificate", "Issuer", "ClusterIssuer"} <= deferred


def test_rollouts_then_both_configurations_then_both_ca_bundles_then_the_certificates_and_issuers() -> None:
    api = CertManagerApi()
    run = engine(api)
    run.present([*tls_objects(), *install_objects()], [], {})
    events = api.events
    cert_manager = [e for e in events if e.split(" ")[1].split("/")[0] in CERT_MANAGER_KINDS]
    assert events[: len(events) - len(cert_manager)] == [
        "PATCH namespaces/cert-manager",
        "PATCH deployments/cert-manager-cainjector",
        "PATCH deployments/cert-manager-webhook",
        "WATCH deployments/cert-manager-cainjector",
        "WATCH deployments/cert-manager-webhook",
        "PATCH mutatingwebhookconfigurations/cert-manager-webhook",
        "PATCH validatingwebhookconfigurations/cert-manager-webhook",
        "WATCH mutatingwebhookconfigurations/cert-manager-webhook",
        "WATCH validatingwebhookconfigurations/cert-manager-webhook",
    ]
    # Every Certificate and issuer after both waits, each applied once (cert-manager reconciles the
    # CA chain: selfsigned ClusterIssuer -> CA Certificate -> CA ClusterIssuer, whatever the order).
    assert sorted(cert_manager) == [
        "PATCH certificates/colors-ca",
        "PATCH certificates/colors-site",
        "PATCH clusterissuers/colors-ca",
        "PATCH clusterissuers/colors-selfsigned",
        "PATCH issuers/colors-local",
    ]
    # Same name, two kinds: both waited for.
    assert [(w["kind"], w["name"]) for w in run.waited["webhooks"]] == [
        ("MutatingWebhookConfiguration", "cert-manager-webhook"),
        ("ValidatingWebhookConfiguration", "cert-manager-webhook"),
    ]
    assert run.result()["counts"]["created"] == 10


def test_without_the_install_the_certificates_and_issuers_come_last_with_nothing_to_wait_for() -> None:
    api = CertManagerApi({"colors": {}, "cert-manager": {}})  # a cert-manager installed by someone else
    run = engine(api)
    run.present([*tls_objects(), namespace("colors")], [], {})
    assert [e for e in api.events if e.startswith("WATCH")] == []
    assert api.events[0] == "PATCH namespaces/colors" and len(api.events) == 6
    assert "webhooks" not in run.waited


def test_no_ca_bundle_in_time_fails_naming_the_cainjector_and_applies_no_certificate() -> None:
    api = CertManagerApi(bundle_appears=False)
    run = engine(api, wait_timeout=1)
    with pytest.raises(EngineError) as failure:
        run.present([*tls_objects(), *install_objects()], [], {})
    message = str(failure.value)
    assert "CA bundle of MutatingWebhookConfiguration cert-manager-webhook" in message
    assert "webhooks without one: webhook.cert-manager.io" in message
    assert "cainjector writes it (cert-manager.io/inject-ca-from-secret: cert-manager/cert-manager-webhook-ca)" in (
        message
    )
    assert "Certificate, ClusterIssuer, Issuer were not applied" in message
    assert "admission-patch Job" not in message
    assert not [e for e in api.events if e.split(" ")[1].split("/")[0] in CERT_MANAGER_KINDS]


def test_a_webhook_the_api_server_cannot_call_yet_is_tried_again() -> None:
    api = CertManagerApi(refuse=2)
    run = engine(api)
    run.present([*tls_objects(), *install_objects()], [], {})
    cert_manager = [e for e in api.events if e.split(" ")[1].split("/")[0] in CERT_MANAGER_KINDS]
    assert len(cert_manager) == 5 + 2  # the first object three times
    assert cert_manager[0] == cert_manager[1] == cert_manager[2]
    assert run.result()["counts"]["created"] == 10


def test_the_retries_end_after_the_settle_time_with_the_servers_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_k8s_apply, "WEBHOOK_SETTLE_SECONDS", 0.0)
    api = CertManagerApi(refuse=1)
    with pytest.raises(EngineError, match=r'ClusterIssuer colors-ca: HTTP 500 x: .*failed calling webhook "webhook'):
        engine(api).present([*tls_objects(), *install_objects()], [], {})


@pytest.mark.parametrize(
    "refusal",
    [
        (400, 'admission webhook "webhook.cert-manager.io" denied the request: spec.ca.secretName: Required value'),
        (422, "ClusterIssuer.cert-manager.io is invalid"),
    ],
)
def test_a_denial_is_not_tried_again(refusal: tuple[int, str]) -> None:
    api = CertManagerApi(refuse=1, refusal=refusal)
    with pytest.raises(EngineError, match=f"ClusterIssuer colors-ca: HTTP {refusal[0]}"):
        engine(api).present([*tls_objects(), *install_objects()], [], {})
    assert len([e for e in api.events if e.split(" ")[1].split("/")[0] in CERT_MANAGER_KINDS]) == 1


def test_without_webhook_configurations_in_the_run_a_failed_webhook_call_fails_at_once() -> None:
    # cert-manager installed by somebody else and not answering: nothing of ours to wait for.
    api = CertManagerApi({"colors": {}, "cert-manager": {}}, refuse=1)
    with pytest.raises(EngineError, match="failed calling webhook"):
        engine(api).present([*tls_objects(), namespace("colors")], [], {})
    assert len([e for e in api.events if e.split(" ")[1].split("/")[0] in CERT_MANAGER_KINDS]) == 1


def test_check_mode_writes_nothing_and_waits_for_nothing() -> None:
    api = CertManagerApi(namespaces={"colors": {}, CM_NS: {}})
    run = engine(api, check_mode=True)
    run.present([*tls_objects(), *install_objects()], [], {})
    writes = [c for c in api.calls if c[0] in ("PATCH", "DELETE", "POST", "PUT")]
    assert writes and all(c[0] == "PATCH" and c[2].get("dryRun") == "All" for c in writes)
    assert [c for c in api.calls if c[0] == "WATCH"] == []
    assert len(run.objects) == 10


def test_pruning_finds_the_webhook_configurations_once_cert_manager_is_no_longer_installed() -> None:
    # zerotrust_aks_cert_manager_install switched off: the next run's objects hold no webhook
    # configuration, but the owned ones it left must still be listed (and so pruned).
    api = CertManagerApi(namespaces={"colors": {OWNER_LABEL: OWNER}})
    stale = {"metadata": {"name": "cert-manager-webhook", "uid": "u1", "labels": {OWNER_LABEL: OWNER}}}
    api.lists = {MUTATING: [stale], VALIDATING: [dict(stale, metadata=dict(stale["metadata"], uid="u2"))]}
    run = engine(api)
    run.present([namespace("colors")], [], {})
    prune(run, [namespace("colors")])
    assert sorted((p["kind"], p["name"]) for p in run.pruned) == [
        ("MutatingWebhookConfiguration", "cert-manager-webhook"),
        ("ValidatingWebhookConfiguration", "cert-manager-webhook"),
    ]
    # Apply order: last, with the validating one.
    assert [kind for _api_version, kind in kinds_to_list([])][-2:] == [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
