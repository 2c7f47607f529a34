# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the order in which the stack's
Kubernetes objects are applied and rendered, their file names in render mode, and the
ownership marker. Shared by the apply engine (k8s_apply) and render mode (manifest_files), so
both agree on one order."""

from __future__ import annotations

import typing as t

# Apply and file order, with the apiVersion under which the engine looks for each kind when it
# lists what a stack owns (pruning, teardown). A kind not listed sorts between Service and
# Deployment.
KNOWN_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"),
    # cert-manager TLS: the issuers before the Certificates they sign.
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    # The gateway-api edge: the class and the Gateway before the routes; the Middlewares the routes'
    # filters name and the ReferenceGrants their backends need before the routes themselves.
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.k8s.io/v1", "Ingress"),
    # cert-manager's webhook configurations: known, so that pruning finds the mutating one once
    # cert-manager is no longer installed by the stack (left behind, with failurePolicy Fail it
    # would refuse every CertificateRequest in the cluster).
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
)
KIND_ORDER: tuple[str, ...] = tuple(pair[1] for pair in KNOWN_KINDS)
UNKNOWN_KIND_RANK = KIND_ORDER.index("Deployment")

# The ownership marker: a label the collection puts only on objects it created. Teardown and
# pruning delete objects carrying it (with the stack's instance as value), and nothing else.
OWNER_LABEL = "zerotrust.aks/owned-by"


class ObjectError(ValueError):
    """An object that cannot be applied or rendered (no kind, no name, ...)."""


def identity(obj: t.Mapping[str, t.Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name) of an object; namespace '' when cluster-scoped or unset."""
    if not isinstance(obj, t.Mapping):
        raise ObjectError(f"an object must be a mapping, got {type(obj).__name__}")
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, t.Mapping) else None
    if not kind or not api_version or not name:
        raise ObjectError(
            "every object needs apiVersion, kind and metadata.name; got "
            f"apiVersion={api_version!r} kind={kind!r} name={name!r}"
        )
    namespace = metadata.get("namespace") or ""
    return str(api_version), str(kind), str(namespace), str(name)


def describe(obj: t.Mapping[str, t.Any]) -> str:
    """Kind/namespace/name for messages, e.g. 'Deployment oauth2-proxy/oauth2-proxy'."""
    kind, namespace, name = identity(obj)[1:]
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else UNKNOWN_KIND_RANK


def sort_key(obj: t.Mapping[str, t.Any]) -> tuple[int, str, str, str]:
    kind, namespace, name = identity(obj)[1:]
    return kind_rank(kind), namespace, kind, name


def sorted_objects(objects: t.Iterable[t.Mapping[str, t.Any]]) -> list[t.Mapping[str, t.Any]]:
    """The objects in apply order; fails on two objects with the same kind, namespace and name."""
    result = sorted(objects, key=sort_key)
    seen: set[tuple[str, str, str]] = set()
    for obj in result:
        kind, namespace, name = identity(obj)[1:]
        key = (kind, namespace, name)
        if key in seen:
            raise ObjectError(f"{describe(obj)} is listed twice (was a role's output passed twice?)")
        seen.add(key)
    return result


def file_names(objects: t.Sequence[t.Mapping[str, t.Any]]) -> list[str]:
    """Render-mode file names of objects already in apply order:
    NNN-<namespace|cluster>-<kind>-<name>.yaml."""
    names = []
    for index, obj in enumerate(objects, start=1):
        kind, namespace, name = identity(obj)[1:]
        names.append(f"{index:03d}-{namespace or 'cluster'}-{kind.lower()}-{name}.yaml")
    return names
