"""Teardown removes what the collection created, and nothing else, on a real API server.

A user's namespace that the stack is pointed at is used but never owned: teardown leaves it, and
what the user keeps in it, while it removes the objects the collection created there. An object
that merely carries the part-of label survives. The stack here has its own instance and
namespaces, and no ingress controller, so it shares nothing with other tests on the testbed.
"""

from __future__ import annotations

import secrets
import typing as t

import pytest
from kubernetes import client
from kubernetes.client import ApiException
from support.playbook import PlaybookRun, run_playbook

from .conftest import LocalTestbed, wait_until

OWNER_LABEL = "zerotrust.aks/owned-by"
INSTANCE = "own-test"
NS = {"ingress": "own-edge", "oauth2_proxy": "own-auth", "colors_web": "own-web", "colors_api": "own-api"}


def stack_vars(testbed: LocalTestbed) -> dict[str, object]:
    return {
        "zerotrust_aks_instance": INSTANCE,
        "zerotrust_aks_platform": "local",
        "zerotrust_aks_host": "colors.own.test",
        "zerotrust_aks_oidc_issuer_url": "https://idp.own.test",
        "zerotrust_aks_client_id": "own-test",
        "zerotrust_aks_allowed_groups": ["zerotrust-users"],
        "zerotrust_aks_client_secret": secrets.token_urlsafe(24),
        "zerotrust_aks_render_dir": "",
        "zerotrust_aks_ingress_controller": "none",
        "zerotrust_aks_ingress_namespace": NS["ingress"],
        "zerotrust_aks_oauth2_proxy_namespace": NS["oauth2_proxy"],
        "zerotrust_aks_colors_web_namespace": NS["colors_web"],
        "zerotrust_aks_colors_api_namespace": NS["colors_api"],
    }


class Object(t.Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def meta(obj: Object) -> client.V1ObjectMeta:
    """The metadata that every object read from the API server carries."""
    assert obj.metadata is not None
    return obj.metadata


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        namespace = core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    assert namespace.status is not None
    return namespace.status.phase != "Terminating"


@pytest.fixture
def env(ansible_env: dict[str, str], testbed: LocalTestbed) -> dict[str, str]:
    return {**ansible_env, "K8S_AUTH_KUBECONFIG": str(testbed.kubeconfig), "KUBECONFIG": str(testbed.kubeconfig)}


def playbook(name: str, env: dict[str, str], testbed: LocalTestbed, **kwargs: object) -> PlaybookRun:
    return run_playbook(f"playbooks/{name}.yml", env=env, extra_vars=stack_vars(testbed), **kwargs)  # type: ignore[arg-type]


def test_teardown_deletes_only_what_the_collection_created(
    env: dict[str, str], testbed: LocalTestbed, core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    for name in (NS["colors_api"], "own-team"):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        # The user's own data in the namespace the stack will be pointed at.
        core.create_namespaced_config_map(
            NS["colors_api"], client.V1ConfigMap(metadata=client.V1ObjectMeta(name="user-data"), data={"k": "v"})
        )
        # Not the collection's, whatever its labels say.
        labels = {"app.kubernetes.io/part-of": INSTANCE, "app.kubernetes.io/managed-by": "zerotrust.aks"}
        core.create_namespaced_config_map(
            "own-team", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="lookalike", labels=labels))
        )

        playbook("cluster", env, testbed)
        owned = {
            name: (meta(core.read_namespace(name)).labels or {}).get(OWNER_LABEL)
            for name in (NS["oauth2_proxy"], NS["colors_web"], NS["colors_api"])
        }
        assert owned == {NS["oauth2_proxy"]: INSTANCE, NS["colors_web"]: INSTANCE, NS["colors_api"]: None}
        # Created by the collection in the user's namespace: owned.
        created = apps.read_namespaced_deployment("colors-api", NS["colors_api"])
        assert (meta(created).labels or {}).get(OWNER_LABEL) == INSTANCE

        check = playbook("teardown", env, testbed, check_mode=True)
        assert NS["oauth2_proxy"] in check.output and "colors-api" in check.output, check.describe()
        assert namespace_exists(core, NS["oauth2_proxy"]), "check mode deleted a namespace"
        apps.read_namespaced_deployment("colors-api", NS["colors_api"])

        playbook("teardown", env, testbed)
        assert not namespace_exists(core, NS["oauth2_proxy"])
        assert not namespace_exists(core, NS["colors_web"])
        assert namespace_exists(core, NS["colors_api"]), "teardown deleted a namespace it did not create"
        assert core.read_namespaced_config_map("user-data", NS["colors_api"]).data == {"k": "v"}
        assert meta(core.read_namespaced_config_map("lookalike", "own-team")).labels == labels
        wait_until(
            "the colors-api Deployment the collection created to go",
            lambda: not apps.list_namespaced_deployment(NS["colors_api"]).items,
            timeout=60,
        )
        left = core.list_namespaced_service(NS["colors_api"], label_selector=f"{OWNER_LABEL}={INSTANCE}").items
        assert left == []
    finally:
        for name in (NS["colors_api"], "own-team", NS["oauth2_proxy"], NS["colors_web"]):
            try:
                core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def test_a_second_converge_changes_nothing_and_keeps_resource_versions(
    env: dict[str, str], testbed: LocalTestbed, core: client.CoreV1Api
) -> None:
    names = dict(NS, oauth2_proxy="own2-auth", colors_web="own2-web", colors_api="own2-api")
    variables = dict(
        stack_vars(testbed),
        zerotrust_aks_instance="own2-test",
        zerotrust_aks_oauth2_proxy_namespace=names["oauth2_proxy"],
        zerotrust_aks_colors_web_namespace=names["colors_web"],
        zerotrust_aks_colors_api_namespace=names["colors_api"],
    )
    try:
        run_playbook("playbooks/cluster.yml", env=env, extra_vars=variables)
        versions = {
            ns: sorted(
                (meta(item).name, meta(item).resource_version)
                for item in core.list_namespaced_config_map(ns).items + core.list_namespaced_service(ns).items
            )
            for ns in (names["oauth2_proxy"], names["colors_web"], names["colors_api"])
        }
        again = run_playbook("playbooks/cluster.yml", env=env, extra_vars=variables)
        assert again.changed == 0, again.describe()
        # verify follows the renamed namespaces too.
        verify = run_playbook("playbooks/verify.yml", env=env, extra_vars=variables)
        assert f"Deployment {names['colors_web']}/colors-web is Available" in verify.output, verify.describe()
        after = {
            ns: sorted(
                (meta(item).name, meta(item).resource_version)
                for item in core.list_namespaced_config_map(ns).items + core.list_namespaced_service(ns).items
            )
            for ns in versions
        }
        assert after == versions
    finally:
        run_playbook("playbooks/teardown.yml", env=env, extra_vars=variables, must_succeed=False)
