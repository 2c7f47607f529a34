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


APPS_INSTANCE = "own3-test"
APPS_NS = {"ingress": "own3-edge", "oauth2_proxy": "own3-auth", "colors_web": "own3-web", "colors_api": "own3-api"}
SITE_TLS_NAME = "own3-tls"


def apps_stack_vars(testbed: LocalTestbed) -> t.Callable[[list[t.Mapping[str, object]]], dict[str, object]]:
    """The stack's variables for a given apps list; one client secret for all runs, as a user's
    inventory keeps it (a new one would change the Secret and oauth2-proxy)."""
    base = dict(
        stack_vars(testbed),
        zerotrust_aks_instance=APPS_INSTANCE,
        zerotrust_aks_ingress_namespace=APPS_NS["ingress"],
        zerotrust_aks_oauth2_proxy_namespace=APPS_NS["oauth2_proxy"],
        zerotrust_aks_colors_web_namespace=APPS_NS["colors_web"],
        zerotrust_aks_colors_api_namespace=APPS_NS["colors_api"],
        zerotrust_aks_tls_secret_name=SITE_TLS_NAME,
        zerotrust_aks_demo_apps=True,
    )
    return lambda apps_list: dict(base, zerotrust_aks_apps=apps_list)


def owned_versions(testbed: LocalTestbed) -> dict[tuple[str, str, str], str]:
    """(kind, namespace, name) -> resourceVersion of every object the stack instance owns, among the
    kinds no controller writes back to (a Deployment's status moves on its own)."""
    core = client.CoreV1Api(testbed.api)
    networking = client.NetworkingV1Api(testbed.api)
    selector = f"{OWNER_LABEL}={APPS_INSTANCE}"
    listings: dict[str, t.Callable[..., t.Any]] = {
        "Namespace": core.list_namespace,
        "ConfigMap": core.list_config_map_for_all_namespaces,
        "Secret": core.list_secret_for_all_namespaces,
        "Service": core.list_service_for_all_namespaces,
        "ServiceAccount": core.list_service_account_for_all_namespaces,
        "Ingress": networking.list_ingress_for_all_namespaces,
        "NetworkPolicy": networking.list_network_policy_for_all_namespaces,
    }
    return {
        (kind, meta(item).namespace or "", str(meta(item).name)): str(meta(item).resource_version)
        for kind, listing in listings.items()
        for item in listing(label_selector=selector).items
    }


def test_protected_apps_in_the_users_namespaces_are_added_and_removed_without_touching_them(
    env: dict[str, str], testbed: LocalTestbed, core: client.CoreV1Api, namespace: t.Callable[..., str]
) -> None:
    """Two apps in two namespaces the user made before the stack: each namespace gets its own
    protected Ingress and the site's TLS Secret, and nothing else; a second converge changes
    nothing; an app taken off zerotrust_aks_apps loses its Ingress and its copy of the TLS Secret
    on the next converge (pruned by the ownership label), its namespace and the user's objects
    stay; teardown takes the rest back and leaves the namespaces and what the user keeps there
    exactly as they were.
    """
    networking = client.NetworkingV1Api(testbed.api)
    shop_ns, blog_ns = namespace("own3-shop"), namespace("own3-blog")
    core.create_namespaced_config_map(
        shop_ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="user-data"), data={"k": "v"})
    )
    for ns, name in ((shop_ns, "shop"), (blog_ns, "blog")):
        core.create_namespaced_service(
            ns,
            client.V1Service(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1ServiceSpec(selector={"app": name}, ports=[client.V1ServicePort(port=80)]),
            ),
        )

    def user_versions() -> dict[str, str]:
        return {
            f"Namespace {shop_ns}": str(meta(core.read_namespace(shop_ns)).resource_version),
            f"Namespace {blog_ns}": str(meta(core.read_namespace(blog_ns)).resource_version),
            "ConfigMap user-data": str(meta(core.read_namespaced_config_map("user-data", shop_ns)).resource_version),
            "Service shop": str(meta(core.read_namespaced_service("shop", shop_ns)).resource_version),
            "Service blog": str(meta(core.read_namespaced_service("blog", blog_ns)).resource_version),
        }

    def contents(ns: str) -> dict[str, list[str]]:
        return {
            "Ingress": sorted(str(meta(i).name) for i in networking.list_namespaced_ingress(ns).items),
            "Secret": sorted(str(meta(s).name) for s in core.list_namespaced_secret(ns).items),
        }

    def auth_url(ns: str, name: str) -> str:
        annotations = meta(networking.read_namespaced_ingress(name, ns)).annotations or {}
        return str(annotations.get("nginx.ingress.kubernetes.io/auth-url"))

    shop: dict[str, object] = {
        "name": "shop",
        "namespace": shop_ns,
        "host": "shop.own.test",
        "allowed_groups": ["shop-buyers"],
    }
    blog: dict[str, object] = {
        "name": "blog",
        "namespace": blog_ns,
        "host": "blog.own.test",
        "allowed_groups": ["blog-editors", "blog-readers"],
    }
    with_apps = apps_stack_vars(testbed)
    user_before = user_versions()
    torn_down = False
    try:
        run_playbook("playbooks/cluster.yml", env=env, extra_vars=with_apps([shop, blog]))
        for ns, name in ((shop_ns, "shop"), (blog_ns, "blog")):
            assert contents(ns) == {"Ingress": [name], "Secret": [SITE_TLS_NAME]}, ns
            assert core.read_namespaced_secret(SITE_TLS_NAME, ns).type == "kubernetes.io/tls"
            ingress = networking.read_namespaced_ingress(name, ns)
            assert (meta(ingress).labels or {}).get(OWNER_LABEL) == APPS_INSTANCE
        # The demo app's Ingress asks oauth2-proxy without a query; each app adds its own groups.
        proxy_auth_url = auth_url(APPS_NS["colors_web"], "colors-web")
        assert proxy_auth_url.startswith(f"http://oauth2-proxy.{APPS_NS['oauth2_proxy']}.svc"), proxy_auth_url
        assert auth_url(shop_ns, "shop") == proxy_auth_url + "?allowed_groups=shop-buyers"
        assert auth_url(blog_ns, "blog") == proxy_auth_url + "?allowed_groups=blog-editors,blog-readers"
        assert user_versions() == user_before, "the converge wrote to the user's namespaces or objects"

        owned = owned_versions(testbed)
        again = run_playbook("playbooks/cluster.yml", env=env, extra_vars=with_apps([shop, blog]))
        assert again.changed == 0, again.describe()
        assert owned_versions(testbed) == owned

        # blog leaves the list: the next converge prunes its Ingress and TLS Secret, and only those.
        removed = run_playbook("playbooks/cluster.yml", env=env, extra_vars=with_apps([shop]))
        assert removed.changed > 0, removed.describe()
        assert namespace_exists(core, blog_ns), f"pruning deleted the user's namespace {blog_ns}"
        assert contents(blog_ns) == {"Ingress": [], "Secret": []}
        assert contents(shop_ns) == {"Ingress": ["shop"], "Secret": [SITE_TLS_NAME]}
        assert set(owned) - set(owned_versions(testbed)) == {
            ("Ingress", blog_ns, "blog"),
            ("Secret", blog_ns, SITE_TLS_NAME),
        }
        assert user_versions() == user_before, "pruning wrote to the user's namespaces or objects"
        settled = owned_versions(testbed)
        again = run_playbook("playbooks/cluster.yml", env=env, extra_vars=with_apps([shop]))
        assert again.changed == 0, again.describe()
        assert owned_versions(testbed) == settled

        # Teardown runs with the shorter list and still finds blog's leftovers by their label.
        run_playbook("playbooks/teardown.yml", env=env, extra_vars=with_apps([shop]))
        torn_down = True
        for ns in (shop_ns, blog_ns):
            assert namespace_exists(core, ns), f"teardown deleted the user's namespace {ns}"
            assert contents(ns) == {"Ingress": [], "Secret": []}, ns
        assert user_versions() == user_before, "teardown wrote to the user's namespaces or objects"
        assert core.read_namespaced_config_map("user-data", shop_ns).data == {"k": "v"}
        assert owned_versions(testbed) == {}
    finally:
        if not torn_down:
            run_playbook("playbooks/teardown.yml", env=env, extra_vars=with_apps([shop, blog]), must_succeed=False)
