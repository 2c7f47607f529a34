# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the apply engine's decisions that need
no API server — ownership marker, changed-or-not, rollout state, comparable forms, messages."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_secrets import fingerprint
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import OWNER_LABEL, describe

CREATED, CONFIGURED, UNCHANGED = "created", "configured", "unchanged"
ACTIONS = (CREATED, CONFIGURED, UNCHANGED)
# Server-managed fields left out when comparing a dry-run answer with the current object.
VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


def wants_marker(
    kind: str,
    namespaced: bool,
    namespace: str,
    name: str,
    existing: t.Mapping[str, t.Mapping[str, str]],
    owner: str,
) -> bool:
    """Whether the apply body may carry the ownership marker.

    EXISTING maps the Namespaces that existed when the run started to their labels. The marker
    goes on a Namespace that did not exist yet or already carries it, and on a namespaced object
    whose Namespace is new or carries it. Anything else (cluster-scoped objects, objects in a
    user's namespace) is applied without it and marked only when the server says it created it
    (see ``owner_patch``), so a pre-existing object is never marked."""
    if kind == "Namespace" and not namespaced:
        labels = existing.get(name)
        return labels is None or labels.get(OWNER_LABEL) == owner
    if namespaced:
        labels = existing.get(namespace)
        return labels is None or labels.get(OWNER_LABEL) == owner
    return False


def apply_body(obj: t.Mapping[str, t.Any], owner: str, marker: bool) -> dict[str, t.Any]:
    """The object as sent: the marker is the engine's alone, so an input value is dropped."""
    body = dict(obj)
    metadata = dict(body.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != OWNER_LABEL}
    if marker:
        labels[OWNER_LABEL] = owner
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        metadata.pop(field, None)
    body["metadata"] = metadata
    body.pop("status", None)
    return body


def owner_patch(obj: t.Mapping[str, t.Any], owner: str) -> dict[str, t.Any]:
    """The minimal apply body holding only the marker, sent by a separate field manager so the
    main manager's later applies (which never list the label) do not remove it."""
    metadata = obj.get("metadata") or {}
    marker_metadata: dict[str, t.Any] = {"name": metadata["name"], "labels": {OWNER_LABEL: owner}}
    if metadata.get("namespace"):
        marker_metadata["namespace"] = metadata["namespace"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": marker_metadata}


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _parse_date_header(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _as_int(value: t.Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def apply_action(
    status: int,
    obj: t.Mapping[str, t.Any],
    date_header: str | None,
    field_manager: str,
    start_revision: int | None,
) -> str:
    """created, configured or unchanged, from the server's answer to an apply PATCH alone.

    201 means the PATCH created the object. For 200 there is no GET to compare with; instead:
    a no-op apply writes nothing, so our manager's managedFields ``time`` (which moves only when
    the fields it owns change) stays old and ``resourceVersion`` stays at or below the revision
    the run started at (the Namespace LIST). The object changed iff both moved: time within 1 s
    of the answer's ``Date`` (both have 1-second resolution) AND resourceVersion newer than the
    start. Either test alone misfires: the time when the previous run ended less than a second
    ago, the revision when a controller wrote the status meanwhile. Unparseable values count
    as changed: a false "configured" is harmless, a false "unchanged" hides a change."""
    if status == 201:
        return CREATED
    metadata = obj.get("metadata") or {}
    entry = next(
        (
            m
            for m in metadata.get("managedFields") or []
            if m.get("manager") == field_manager and m.get("operation") == "Apply" and not m.get("subresource")
        ),
        None,
    )
    written = _parse_time(entry.get("time")) if entry else None
    answered = _parse_date_header(date_header)
    recent = written is None or answered is None or written >= answered - dt.timedelta(seconds=1)
    revision = _as_int(metadata.get("resourceVersion"))
    newer = revision is None or start_revision is None or revision > start_revision
    return CONFIGURED if recent and newer else UNCHANGED


def normalized(obj: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """OBJ without what the server maintains, for comparing and diffs."""
    if not obj:
        return {}
    result = {k: v for k, v in obj.items() if k != "status"}
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in VOLATILE_METADATA}
    result["metadata"] = metadata
    return result


def secret_summary(secret: t.Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """What a diff may show of a Secret: key names and the fingerprint build_secrets reports
    (same function, so a diff and the ``secrets`` result agree), never values."""
    if not secret:
        return {}
    data = dict(secret.get("data") or {})
    for key, value in (secret.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    metadata = secret.get("metadata") or {}
    return {
        "kind": "Secret",
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
        "type": secret.get("type", "Opaque"),
        "keys": sorted(data),
        "fingerprint": fingerprint(data),
    }


def secret_strings(obj: t.Mapping[str, t.Any]) -> set[str]:
    """Every form a Secret's values could take in an error message (base64 and decoded)."""
    found: set[str] = set()
    for value in (obj.get("data") or {}).values():
        found.add(str(value))
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            found.add(base64.b64decode(str(value)).decode())
    for value in (obj.get("stringData") or {}).values():
        found.add(str(value))
        found.add(base64.b64encode(str(value).encode()).decode())
    return found


def scrub(text: str, secrets: t.Iterable[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 3:
            text = text.replace(value, "********")
    return text


def object_error(obj: t.Mapping[str, t.Any], status: int, reason: str, message: str, secrets: t.Iterable[str]) -> str:
    """The message for an object the server refused; never the object's body."""
    return scrub(f"{describe(obj)}: HTTP {status} {reason}: {message}".rstrip(": "), secrets)


def rolled_out(deployment: t.Mapping[str, t.Any]) -> bool:
    """The controller has seen the current spec and every replica is updated and available."""
    spec_replicas = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return bool(status.get("observedGeneration", 0) >= generation) and (
        status.get("updatedReplicas", 0)
        == status.get("availableReplicas", 0)
        == status.get("replicas", 0)
        == spec_replicas
    )


def rollout_state(deployment: t.Mapping[str, t.Any]) -> str:
    """'Deployment ns/name: 0/2 updated, 0 available; Available=False MinimumReplicasUnavailable: ...'"""
    spec_replicas = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    text = (
        f"{describe(deployment)}: {status.get('updatedReplicas', 0)}/{spec_replicas} updated, "
        f"{status.get('availableReplicas', 0)} available"
    )
    conditions = [
        f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}".strip(": ")
        for c in status.get("conditions") or []
    ]
    return f"{text}; " + "; ".join(conditions) if conditions else f"{text}; no conditions reported yet"


def ca_bundles_ready(configuration: t.Mapping[str, t.Any]) -> bool:
    """Every webhook of an admission webhook configuration has a CA bundle. Until then the API
    server cannot call it over TLS, and with failurePolicy Fail it refuses every matching write."""
    webhooks = configuration.get("webhooks") or []
    return all(((hook.get("clientConfig") or {}).get("caBundle") or "") for hook in webhooks)


# Annotations by which cert-manager's cainjector fills a webhook configuration's CA bundles.
CAINJECTOR_ANNOTATIONS = (
    "cert-manager.io/inject-ca-from-secret",
    "cert-manager.io/inject-ca-from",
    "cert-manager.io/inject-apiserver-ca",
)


def ca_bundle_writer(configuration: t.Mapping[str, t.Any]) -> str:
    """Who is expected to write the CA bundles of a webhook configuration, and where to look
    when it does not: cert-manager's cainjector for one that asks it to, else (the stack's other
    webhook) ingress-nginx's admission-patch Job."""
    annotations = (configuration.get("metadata") or {}).get("annotations") or {}
    for key in CAINJECTOR_ANNOTATIONS:
        if key in annotations:
            return (
                f"cert-manager's cainjector writes it ({key}: {annotations[key]}): look at the cainjector's pods "
                "and logs, and at the webhook's, which creates its CA Secret"
            )
    return "Something must write it (for ingress-nginx, its admission-patch Job: look at that Job's pods and logs)"


def webhook_unreachable(status: int, message: str) -> bool:
    """The API server refused a write because it could not call an admission webhook (not
    reachable, no endpoints, a CA it does not know yet), not because the webhook denied it."""
    return status == 500 and "failed calling webhook" in message
