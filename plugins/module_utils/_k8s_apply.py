# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to zerotrust.aks (no compatibility promise): the apply engine behind k8s_apply.

One discovery, one Namespace LIST, then one server-side apply PATCH per object with no GET
before it; changed-or-not from the answer alone (``_k8s_rules.apply_action``); rollouts waited
for in-process. GETs happen only where the module's contract allows them: generated Secrets
(their current value is kept), check mode, diff mode, and objects annotated
``zerotrust.aks/apply: if-absent`` (the CRDs the collection ships).

if-absent: the object is created when it does not exist, and applied when this stack created it
(ownership label); one somebody else made (the Gateway API CRDs AKS manages, say) is left exactly
as it is, reported in ``skipped`` and in a warning. The create is a server-side apply without
``force``: should somebody create the object between the GET and the PATCH, the API server refuses
the conflicting fields instead of handing them over, and the object is reported as theirs.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerotrust.aks.plugins.module_utils import _k8s_rules as rules
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import (
    APPLY_PATCH,
    ApiError,
    Client,
    ConnectionFailure,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_discovery import (
    Discovery,
    Resource,
    crd_resources,
    is_established,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_secrets import (
    build_secrets,
    fill_checksums,
    secrets_to_read,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_wait import WaitError, watch_object
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import (
    OWNER_LABEL,
    describe,
    identity,
    sorted_objects,
)

CRD_KIND = "CustomResourceDefinition"
# Objects with this annotation value are created where absent and otherwise left to whoever made them.
APPLY_ANNOTATION = "zerotrust.aks/apply"
IF_ABSENT = "if-absent"
# Admission webhook configurations, by kind: applied before the other deferred kinds, then their
# CA bundles waited for (the collection, for the watch).
WEBHOOK_COLLECTIONS = {
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
}
WEBHOOK_API_VERSION = "admissionregistration.k8s.io/v1"
# Applied only after the Deployments rolled out and the webhook configurations have their CA
# bundles: what an admission webhook of the stack must admit (Ingresses: ingress-nginx's; the
# cert-manager kinds: cert-manager's), and the webhook configurations themselves.
DEFAULT_APPLY_AFTER_ROLLOUT = (
    "Ingress",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "Certificate",
    "Issuer",
    "ClusterIssuer",
)
# After the wait for the CA bundles, the API server may still call a webhook with the configuration
# it had before (its informer lags) or through a Service whose endpoints are not programmed yet:
# a write it refuses for that ("failed calling webhook") is sent again for up to this long.
WEBHOOK_SETTLE_SECONDS = 30.0
WEBHOOK_RETRY_DELAY = 1.0
# A just-Established CRD can answer 404 for a moment on another API server replica.
FRESH_CRD_RETRY_SECONDS = 10.0


class EngineError(Exception):
    """Stops the run; the message is what the user reads (never a secret value)."""


class _Conflict(Exception):
    """A server-side apply without force met fields another manager owns."""


def is_if_absent(obj: t.Mapping[str, t.Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(APPLY_ANNOTATION) == IF_ABSENT)


@dataclass
class Options:
    owner: str
    field_manager: str = "zerotrust-aks"
    wait: bool = True
    wait_timeout: int = 300
    apply_after_rollout: tuple[str, ...] = DEFAULT_APPLY_AFTER_ROLLOUT
    check_mode: bool = False
    diff: bool = False


@dataclass
class Engine:
    client: Client
    options: Options
    objects: list[dict[str, t.Any]] = field(default_factory=list)
    secrets: list[dict[str, t.Any]] = field(default_factory=list)
    diffs: list[dict[str, t.Any]] = field(default_factory=list)
    deleted: list[dict[str, t.Any]] = field(default_factory=list)
    pruned: list[dict[str, t.Any]] = field(default_factory=list)
    skipped: list[dict[str, t.Any]] = field(default_factory=list)
    unused_namespaces: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waited: dict[str, t.Any] = field(default_factory=lambda: {"deployments": [], "seconds": 0.0})
    existing: dict[str, dict[str, str]] = field(default_factory=dict)
    start_revision: int | None = None
    namespaces_revision: str = ""
    secret_strings: set[str] = field(default_factory=set)
    _rollouts: dict[tuple[str, str], dict[str, t.Any]] = field(default_factory=dict)
    _webhooks: dict[tuple[str, str], dict[str, t.Any]] = field(default_factory=dict)  # (kind, name) -> answer
    _crds: dict[tuple[str, str], dict[str, t.Any]] = field(default_factory=dict)  # (group, kind) -> input CRD
    _applied_crds: dict[str, dict[str, t.Any]] = field(default_factory=dict)  # name -> answer
    _fresh: set[tuple[str, str]] = field(default_factory=set)
    _webhook_settle_until: float | None = None  # see WEBHOOK_SETTLE_SECONDS

    def __post_init__(self) -> None:
        self.discovery = Discovery(self.client)

    # --- results -------------------------------------------------------------------------

    def result(self) -> dict[str, t.Any]:
        counts = {a: sum(1 for o in self.objects if o["action"] == a) for a in rules.ACTIONS}
        result: dict[str, t.Any] = {
            "changed": counts[rules.CREATED] + counts[rules.CONFIGURED] > 0 or bool(self.deleted or self.pruned),
            "objects": self.objects,
            "secrets": self.secrets,
            "counts": counts,
            "requests": self.client.requests,
            "waited": self.waited,
            "deleted": self.deleted,
            "pruned": self.pruned,
            "skipped": self.skipped,
            "unused_namespaces": self.unused_namespaces,
        }
        if self.options.diff:
            result["diff"] = self.diffs
        return result

    def _record(self, obj: t.Mapping[str, t.Any], action: str) -> None:
        kind, namespace, name = identity(obj)[1:]
        self.objects.append({"kind": kind, "namespace": namespace, "name": name, "action": action})

    # --- connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Discovery, which is also the connection test: its errors name where we connected."""
        where = f"{self.client.conn.host} ({self.client.conn.source})"
        try:
            self.discovery.load()
        except ConnectionFailure as e:
            raise EngineError(f"cannot connect to the Kubernetes API server {where}: {e}") from e
        except ApiError as e:
            raise EngineError(
                f"the Kubernetes API server {where} refused {e.method} {e.path}: "
                f"HTTP {e.status} {e.reason}: {e.message}"
            ) from e

    def call(self, obj: t.Mapping[str, t.Any] | None, method: str, path: str, **kwargs: t.Any) -> t.Any:
        """client.request with errors turned into messages naming OBJ (values of Secrets scrubbed)."""
        try:
            return self.client.request(method, path, **kwargs)
        except ApiError as e:
            if obj is None:
                raise EngineError(f"{method} {path}: HTTP {e.status} {e.reason}: {e.message}") from e
            raise EngineError(rules.object_error(obj, e.status, e.reason, e.message, self.secret_strings)) from e
        except ConnectionFailure as e:
            what = describe(obj) if obj is not None else f"{method} {path}"
            raise EngineError(f"{what}: lost the connection to {self.client.conn.host}: {e}") from e

    def load_namespaces(self) -> None:
        listing = self.call(None, "GET", "/api/v1/namespaces").body
        self.existing = {
            item["metadata"]["name"]: dict(item["metadata"].get("labels") or {}) for item in listing.get("items") or []
        }
        self.namespaces_revision = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        self.start_revision = int(self.namespaces_revision) if self.namespaces_revision.isdigit() else None

    # --- kinds ---------------------------------------------------------------------------

    def preflight(
        self, objects: t.Sequence[t.Mapping[str, t.Any]], secret_specs: t.Sequence[t.Mapping[str, t.Any]] = ()
    ) -> None:
        """Fail before any write when a kind is neither served nor defined by a CRD in OBJECTS,
        an object's namespace does not fit its kind's scope, or an object (or generated Secret)
        belongs in a namespace that neither exists nor is among OBJECTS."""
        for obj in objects:
            if obj["kind"] == CRD_KIND:
                spec = obj.get("spec") or {}
                self._crds[(str(spec.get("group")), str((spec.get("names") or {}).get("kind")))] = dict(obj)
        missing: dict[str, list[str]] = {}
        for obj in objects:
            api_version, kind, namespace = identity(obj)[:3]
            resource = self.discovery.get(api_version, kind)
            if resource is None:
                crd = self._crds.get((api_version.rpartition("/")[0], kind))
                if crd is None:
                    raise EngineError(
                        f"{describe(obj)}: the API server does not serve kind {kind} of apiVersion {api_version}, "
                        "and no CustomResourceDefinition in objects defines it: its CRD is missing"
                    )
                namespaced = (crd.get("spec") or {}).get("scope", "Namespaced") == "Namespaced"
            else:
                namespaced = resource.namespaced
            if namespaced and not namespace:
                raise EngineError(f"{describe(obj)}: {kind} is namespaced; set metadata.namespace")
            if not namespaced and namespace:
                raise EngineError(f"{describe(obj)}: {kind} is cluster-scoped; remove metadata.namespace")
            if namespaced and namespace not in self.existing:
                missing.setdefault(namespace, []).append(describe(obj))
        for spec in secret_specs:
            namespace = str(spec.get("namespace") or "")
            if namespace and namespace not in self.existing:
                missing.setdefault(namespace, []).append(f"Secret {namespace}/{spec.get('name')}")
        created = {identity(obj)[3] for obj in objects if obj["kind"] == "Namespace"}
        absent = {namespace: what for namespace, what in missing.items() if namespace not in created}
        if absent:
            raise EngineError(
                "; ".join(
                    f"namespace {namespace} does not exist and these objects do not create it, so nothing can be "
                    f"applied to it: {', '.join(what[:3])}{f' and {len(what) - 3} more' if len(what) > 3 else ''}"
                    for namespace, what in sorted(absent.items())
                )
                + ". Nothing was changed. Create the namespace first, or have the collection install what owns it."
            )

    def resource(self, obj: t.Mapping[str, t.Any]) -> Resource | None:
        """The Resource of OBJ; for a kind its CRD defines in this run, after waiting until the
        CRD is Established (its spec then gives plural and scope: no further discovery).
        None in check mode when the CRD is not there yet."""
        api_version, kind = identity(obj)[:2]
        found = self.discovery.get(api_version, kind)
        if found is not None or self.options.check_mode:
            return found
        crd = self._crds[(api_version.rpartition("/")[0], kind)]
        name = crd["metadata"]["name"]
        current = self._applied_crds.get(name)
        if current is None:
            raise EngineError(f"{describe(obj)}: its CustomResourceDefinition {name} was not applied")
        if not is_established(current):
            deadline = time.monotonic() + self.options.wait_timeout
            collection = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            try:
                done, current = watch_object(self.client, collection, current, deadline, is_established)
            except (ApiError, ConnectionFailure, WaitError) as e:
                raise EngineError(f"{describe(obj)}: waiting for CustomResourceDefinition {name}: {e}") from e
            if not done:
                raise EngineError(
                    f"{describe(obj)}: CustomResourceDefinition {name} is not Established after "
                    f"{self.options.wait_timeout} s"
                )
        self.discovery.add(crd_resources(current))
        self._fresh.add((api_version, kind))
        return self.discovery.get(api_version, kind)

    # --- state=present -------------------------------------------------------------------

    def present(
        self, objects: list[dict[str, t.Any]], secret_specs: list[dict[str, t.Any]], values: dict[str, str]
    ) -> None:
        self.secret_strings.update(v for v in values.values() if isinstance(v, str))
        sorted_objects(objects)  # duplicates fail before connecting
        self.connect()
        self.load_namespaces()
        self.preflight(objects, secret_specs)
        current: dict[tuple[str, str], dict[str, t.Any] | None] = {}
        for namespace, name in secrets_to_read(secret_specs):
            current[(namespace, name)] = self._get_secret(namespace, name)
        secret_objects, self.secrets = build_secrets(secret_specs, values, current)
        for secret in [*secret_objects, *(s for s in current.values() if s)]:
            self.secret_strings |= rules.secret_strings(secret)
        everything = sorted_objects([*fill_checksums(objects, self.secrets), *secret_objects])
        deferred = set(self.options.apply_after_rollout)
        for obj in everything:
            if obj["kind"] not in deferred:
                self.apply(obj)
        waiting = self.options.wait and not self.options.check_mode
        if waiting:
            self.wait_for_rollouts()
        # Webhook configurations before the objects they admit: when one expects its CA bundle
        # from elsewhere (ingress-nginx's admission-patch Job writes it once the configuration
        # exists, cert-manager's cainjector from the webhook's CA Secret), wait for it, so that the
        # Ingresses, Certificates and issuers after it are admitted by a webhook the API server can
        # call instead of refused for an unknown CA.
        late = [obj for obj in everything if obj["kind"] in deferred]
        for obj in late:
            if obj["kind"] in WEBHOOK_COLLECTIONS:
                self.apply(obj)
        rest = [obj for obj in late if obj["kind"] not in WEBHOOK_COLLECTIONS]
        if waiting:
            self.wait_for_ca_bundles(sorted({obj["kind"] for obj in rest}))
            if self._webhooks:
                settle = min(WEBHOOK_SETTLE_SECONDS, float(self.options.wait_timeout))
                self._webhook_settle_until = time.monotonic() + settle
        try:
            for obj in rest:
                self.apply(obj)
        finally:
            self._webhook_settle_until = None

    def _get_secret(self, namespace: str, name: str) -> dict[str, t.Any] | None:
        if namespace not in self.existing:
            return None  # a new namespace holds no Secret yet: no request
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        try:
            return t.cast(dict[str, t.Any], self.client.request("GET", path).body)
        except ApiError as e:
            if e.status == 404:
                return None
            raise EngineError(f"reading Secret {namespace}/{name}: HTTP {e.status} {e.reason}: {e.message}") from e
        except ConnectionFailure as e:
            raise EngineError(f"reading Secret {namespace}/{name}: {e}") from e

    def _is_new(self, kind: str, namespaced: bool, namespace: str, name: str) -> bool:
        """Known not to exist from the Namespace LIST alone."""
        if kind == "Namespace" and not namespaced:
            return name not in self.existing
        return namespaced and namespace not in self.existing

    def apply(self, obj: t.Mapping[str, t.Any]) -> None:
        api_version, kind, namespace, name = identity(obj)
        resource = self.resource(obj)
        if resource is None:  # check mode, CRD not installed yet: it would be created
            self._record(obj, rules.CREATED)
            return
        marker = rules.wants_marker(kind, resource.namespaced, namespace, name, self.existing, self.options.owner)
        new = self._is_new(kind, resource.namespaced, namespace, name)
        path = resource.path(namespace, name)
        before = None
        force = True
        if is_if_absent(obj):
            before = None if new else self._get_current(obj, path)
            if before is not None and not self._owned(before):
                self._leave_alone(obj, before, "exists and this stack did not create it")
                return
            # Absent (created with the marker, never forced over someone else's fields) or ours.
            marker, force = True, before is not None
        elif (self.options.check_mode or self.options.diff) and not new:
            before = self._get_current(obj, path)
        body = rules.apply_body(obj, self.options.owner, marker)
        if self.options.check_mode:
            if new:
                action = rules.CREATED  # a dry run in a namespace that does not exist would be refused
                after = body
            else:
                after = self._patch(obj, path, body, self.options.field_manager, dry_run=True).body
                action = (
                    rules.CREATED
                    if before is None
                    else rules.CONFIGURED
                    if rules.normalized(before) != rules.normalized(after)
                    else rules.UNCHANGED
                )
        else:
            try:
                answer = self._patch(obj, path, body, self.options.field_manager, force=force)
            except _Conflict as conflict:  # if-absent: somebody created it after our GET
                self._leave_alone(obj, None, f"was created by somebody else while this run applied it ({conflict})")
                return
            after = answer.body
            action = rules.apply_action(
                answer.status, after, answer.headers.get("Date"), self.options.field_manager, self.start_revision
            )
            if action == rules.CREATED and not marker:
                # Created by us where the marker could not go into the body: mark it now.
                self._patch(
                    obj, path, rules.owner_patch(obj, self.options.owner), f"{self.options.field_manager}-owner"
                )
            if kind == "Deployment" and api_version == "apps/v1":
                self._rollouts[(namespace, name)] = after
            if kind in WEBHOOK_COLLECTIONS and api_version == WEBHOOK_API_VERSION:
                self._webhooks[(kind, name)] = after
            if kind == CRD_KIND:
                self._applied_crds[name] = after
        self._record(obj, action)
        if self.options.diff and action != rules.UNCHANGED:
            self._add_diff(obj, before, after)

    def _owned(self, current: t.Mapping[str, t.Any]) -> bool:
        labels = (current.get("metadata") or {}).get("labels") or {}
        return bool(labels.get(OWNER_LABEL) == self.options.owner)

    def _leave_alone(self, obj: t.Mapping[str, t.Any], current: dict[str, t.Any] | None, why: str) -> None:
        """if-absent and not ours: no write; report it, and let its kinds be used as they are served."""
        kind, namespace, name = identity(obj)[1:]
        self.skipped.append(
            {"kind": kind, "namespace": namespace, "name": name, "reason": f"{APPLY_ANNOTATION}: {IF_ABSENT}; {why}"}
        )
        self.warnings.append(
            f"{describe(obj)} {why} (it does not carry {OWNER_LABEL}={self.options.owner}): left as it is, as its "
            f"annotation {APPLY_ANNOTATION}: {IF_ABSENT} asks. Objects of its kinds are applied against the version "
            "the cluster serves."
        )
        if kind == CRD_KIND and current is not None:
            self._applied_crds[name] = current
        self._record(obj, rules.UNCHANGED)

    def _get_current(self, obj: t.Mapping[str, t.Any], path: str) -> dict[str, t.Any] | None:
        try:
            return t.cast(dict[str, t.Any], self.client.request("GET", path).body)
        except ApiError as e:
            if e.status == 404:
                return None
            raise EngineError(rules.object_error(obj, e.status, e.reason, e.message, self.secret_strings)) from e
        except ConnectionFailure as e:
            raise EngineError(f"{describe(obj)}: {e}") from e

    def _patch(
        self,
        obj: t.Mapping[str, t.Any],
        path: str,
        body: t.Mapping[str, t.Any],
        manager: str,
        dry_run: bool = False,
        force: bool = True,
    ) -> t.Any:
        query = {"fieldManager": manager, "force": "true"} if force else {"fieldManager": manager}
        if dry_run:
            query["dryRun"] = "All"
        api_version, kind = identity(obj)[:2]
        deadline = time.monotonic() + FRESH_CRD_RETRY_SECONDS
        while True:
            try:
                return self.client.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH)
            except ApiError as e:
                if e.status == 404 and (api_version, kind) in self._fresh and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                if e.status == 409 and not force:
                    raise _Conflict(f"HTTP 409 {e.reason}") from e
                settle = self._webhook_settle_until
                if settle is not None and rules.webhook_unreachable(e.status, e.message) and time.monotonic() < settle:
                    time.sleep(WEBHOOK_RETRY_DELAY)
                    continue
                raise EngineError(rules.object_error(obj, e.status, e.reason, e.message, self.secret_strings)) from e
            except ConnectionFailure as e:
                raise EngineError(f"{describe(obj)}: lost the connection to {self.client.conn.host}: {e}") from e

    def _add_diff(self, obj: t.Mapping[str, t.Any], before: t.Any, after: t.Any) -> None:
        import yaml  # only in diff mode

        if obj["kind"] == "Secret":
            before_view, after_view = rules.secret_summary(before), rules.secret_summary(after)
        else:
            before_view, after_view = rules.normalized(before), rules.normalized(after)
        self.diffs.append(
            {
                "before_header": describe(obj),
                "after_header": describe(obj),
                "before": yaml.safe_dump(before_view, sort_keys=True) if before_view else "",
                "after": yaml.safe_dump(after_view, sort_keys=True),
            }
        )

    def wait_for_rollouts(self) -> None:
        """Wait for the Deployments applied in this run. Their apply answers already hold their
        status, so a rolled-out one costs no request; the others are watched one by one from the
        resourceVersion of that answer (no LIST needed, no event missed), under one deadline."""
        started = time.monotonic()
        deadline = started + self.options.wait_timeout
        late = []
        for (namespace, name), current in self._rollouts.items():
            if rules.rolled_out(current):
                continue
            began = time.monotonic()
            collection = f"/apis/apps/v1/namespaces/{namespace}/deployments"
            try:
                done, current = watch_object(self.client, collection, current, deadline, rules.rolled_out)
                if not done:  # the last event may be old: read the state the message will show
                    current = self.call(current, "GET", f"{collection}/{name}").body
                    done = rules.rolled_out(current)
            except (ApiError, ConnectionFailure, WaitError) as e:
                raise EngineError(f"waiting for Deployment {namespace}/{name}: {e}") from e
            self.waited["deployments"].append(
                {"namespace": namespace, "name": name, "seconds": round(time.monotonic() - began, 1)}
            )
            if not done:
                late.append(current)
        self.waited["seconds"] = round(time.monotonic() - started, 1)
        if late:
            raise EngineError(
                f"timed out after {self.options.wait_timeout} s waiting for "
                f"{len(late)} Deployment(s) to roll out: " + " | ".join(rules.rollout_state(d) for d in late)
            )

    def wait_for_ca_bundles(self, pending: t.Sequence[str] = ()) -> None:
        """Wait, under the run's wait_timeout, until every webhook configuration applied in this
        run has its CA bundles. The apply answer already shows them once they are written (no
        request then); otherwise the configuration is watched from that answer's resourceVersion.
        PENDING names the kinds still to be applied after them, for the message on a timeout."""
        started = time.monotonic()
        deadline = started + self.options.wait_timeout
        for (kind, name), current in self._webhooks.items():
            if rules.ca_bundles_ready(current):
                continue
            try:
                done, current = watch_object(
                    self.client, WEBHOOK_COLLECTIONS[kind], current, deadline, rules.ca_bundles_ready
                )
            except (ApiError, ConnectionFailure, WaitError) as e:
                raise EngineError(f"waiting for the CA bundle of {kind} {name}: {e}") from e
            if not done:
                missing = [
                    hook.get("name", "?")
                    for hook in current.get("webhooks") or []
                    if not (hook.get("clientConfig") or {}).get("caBundle")
                ]
                not_applied = (
                    f"; the objects of kind {', '.join(pending)} were not applied, because the API server would "
                    "refuse them"
                    if pending
                    else ""
                )
                raise EngineError(
                    f"timed out after {self.options.wait_timeout} s waiting for the CA bundle of "
                    f"{kind} {name} (webhooks without one: {', '.join(missing)}). "
                    f"{rules.ca_bundle_writer(current)}{not_applied}."
                )
            self.waited.setdefault("webhooks", []).append(
                {"kind": kind, "name": name, "seconds": round(time.monotonic() - started, 1)}
            )


def owner_selector(owner: str) -> str:
    return f"{OWNER_LABEL}={owner}"
