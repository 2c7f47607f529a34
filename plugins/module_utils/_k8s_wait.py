# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): waiting in-process with WATCH requests
(one per object or collection, resumed from the last resourceVersion) instead of polling."""

from __future__ import annotations

import math
import time
import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import Client
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import describe


class WaitError(Exception):
    """What was waited for went away (deleted) or the watch cannot continue."""


def _revision(obj: t.Mapping[str, t.Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def watch_object(
    client: Client,
    collection: str,
    current: dict[str, t.Any],
    deadline: float,
    done: t.Callable[[t.Mapping[str, t.Any]], bool],
) -> tuple[bool, dict[str, t.Any]]:
    """Watch one object (CURRENT, in the collection path COLLECTION) from CURRENT's
    resourceVersion until DONE says so or DEADLINE (time.monotonic()) passes.
    Returns (done, the last state seen)."""
    name = current["metadata"]["name"]
    revision = _revision(current)
    while not done(current):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, current
        query = {"fieldSelector": f"metadata.name={name}", "resourceVersion": revision}
        for event in client.watch(collection, query, math.ceil(remaining)):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                # 410 Gone: the revision was compacted away; read the object again and go on.
                current = client.request("GET", f"{collection}/{name}").body
                revision = _revision(current)
                break
            if kind == "DELETED":
                raise WaitError(f"{describe(current)} was deleted while waiting for it")
            revision = _revision(obj) or revision
            if kind in ("ADDED", "MODIFIED"):
                current = obj
                if done(current):
                    return True, current
            if time.monotonic() >= deadline:
                return False, current
    return True, current


def wait_namespaces_gone(
    client: Client, names: set[str], label_selector: str, revision: str, deadline: float
) -> set[str]:
    """Watch Namespaces (with LABEL_SELECTOR, from REVISION) until NAMES are deleted; returns
    the names still there at DEADLINE."""
    remaining = set(names)
    while remaining:
        seconds = deadline - time.monotonic()
        if seconds <= 0:
            break
        query = {"labelSelector": label_selector, "resourceVersion": revision}
        for event in client.watch("/api/v1/namespaces", query, math.ceil(seconds)):
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                listed = client.request("GET", "/api/v1/namespaces", query={"labelSelector": label_selector}).body
                revision = _revision(listed)
                remaining &= {item["metadata"]["name"] for item in listed.get("items") or []}
                break
            revision = _revision(obj) or revision
            if event.get("type") == "DELETED":
                remaining.discard((obj.get("metadata") or {}).get("name", ""))
                if not remaining:
                    break
    return remaining
