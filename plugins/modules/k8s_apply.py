#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_apply
short_description: Apply (or tear down) a whole stack of Kubernetes objects in one run
version_added: 0.1.0
description:
  - Applies every object of O(objects) and every Secret of O(secrets) with server-side apply, in
    one process. It makes one API discovery (aggregated discovery on Kubernetes 1.27 and later),
    one LIST of Namespaces, then one C(PATCH) per object without reading it first.
  - Whether an object changed comes from the server's answer, not from a read. V(201) means
    created. For V(200) the object changed when the C(managedFields) entry of O(field_manager)
    was written within a second of the answer's C(Date) header and the object's
    C(resourceVersion) is newer than the revision of the Namespace LIST made at the start. A
    no-op apply writes nothing, so both stay old.
  - Objects are applied in the collection's order (Namespaces, CRDs, RBAC, ConfigMaps, Secrets,
    Services, Deployments, ...). Kinds in O(apply_after_rollout) are applied after the
    Deployments rolled out.
  - Puts the ownership label C(zerotrust.aks/owned-by=<owner>) only on objects it created.
    Namespaces it creates, and objects inside them, carry the label in the applied body.
    Cluster-scoped objects, and objects in a Namespace the collection did not create, are
    applied without it. When the server answers that the PATCH created such an object, a second
    PATCH adds the label under the separate field manager C(<field_manager>-owner). An object
    that existed before is never labelled.
  - Waits in-process for the Deployments it applied. A Deployment has rolled out when
    C(observedGeneration >= generation) and updated, available, current and desired replicas
    are equal. The apply answers already carry each Deployment's status, so one that has rolled
    out costs no request. The module watches the others from the C(resourceVersion) of that
    answer.
  - Of the kinds in O(apply_after_rollout), applies ValidatingWebhookConfigurations and
    MutatingWebhookConfigurations first and waits until each webhook of them has a C(caBundle)
    (ingress-nginx's admission-patch Job writes it once the configuration exists, cert-manager's
    cainjector from the webhook's CA Secret). Then it applies the rest, such as Ingresses and
    cert-manager's Certificates and issuers, which the API server would otherwise refuse while it
    cannot call the webhook over TLS. For up to 30 seconds (at most O(wait_timeout)) after the CA
    bundles are there, a write the API server refuses because it failed calling a webhook is sent
    again, because the API server and the webhook's Service can take a moment to catch up.
  - Waits for a CustomResourceDefinition from O(objects) to be C(Established) before applying
    objects of its kind.
  - An object annotated C(zerotrust.aks/apply=if-absent) (the CRDs the collection ships) is read
    first. It is created, with the ownership label, when it does not exist, and applied when it
    carries this O(owner)'s ownership label. One that somebody else made, such as Gateway API CRDs
    a managed cluster installs, is left exactly as it is, listed in RV(skipped) and warned about;
    objects of its kinds are then applied against the version the cluster serves. The create is a
    server-side apply without C(force), so an object made by somebody else between the read and the
    write is not taken over either.
  - Builds the Secrets of O(secrets) from O(secret_values), and keeps generated values (cookie
    secret, self-signed certificate). Reads a generated Secret's current value with a C(GET)
    before it builds the Secret. Secret values are never returned, logged or put in an error
    message. Results and diffs show key names and fingerprints only.
  - A pod template annotation C(zerotrust.aks/secrets-checksum) with the value V(auto) is
    replaced by a checksum of the fingerprints of the Secrets from O(secrets) that the pods
    read. A changed Secret therefore rolls the workloads that use it.
  - With O(state=absent), deletes every object that carries the ownership label with the value
    O(owner), of the kinds in O(objects) and the kinds the collection makes (its apply order
    above, and Secret), Namespaces last. Nothing without the label is deleted.
    CustomResourceDefinitions are kept (and listed in RV(skipped)) unless O(delete_crds=true).
  - With O(prune=true) (the default) and O(state=present), after everything was applied, deletes
    the objects that carry the ownership label with the value O(owner) but are no longer among
    O(objects) and O(secrets), such as the Ingress and TLS Secret of an app taken off the list.
    It makes one LIST per kind, with the label selector, of the same kinds as O(state=absent).
    Objects without the label (adopted, the user's, Secrets synced by the Secrets Store CSI
    driver) are never touched.
  - Pruning never deletes a Namespace or a CustomResourceDefinition, because everything in it,
    or of its kind, would go with it. An owned Namespace that is no longer among O(objects) is
    returned in RV(unused_namespaces) with a warning; what the collection created in it is
    pruned, and O(state=absent) removes the Namespace.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - Nothing is written. An object in a Namespace that does not exist yet is reported as
        created without asking the server, because a server-side dry run there would be
        refused. Other objects are applied with C(dryRun=All) and compared with a C(GET) of the
        current object.
      - With O(state=absent), reports what would be deleted. With O(prune=true), reports what would
        be pruned (LISTs only).
  diff_mode:
    support: full
    details:
      - Returns the object before (from a C(GET) made only in diff mode) and after the apply, as
        YAML, for the objects that changed. For Secrets, only the key names and a fingerprint.
      - A pruned object is shown by kind, namespace and name only.
options:
  state:
    description:
      - V(present) applies the objects. V(absent) deletes what the collection created for
        O(owner).
    type: str
    choices: [present, absent]
    default: present
  objects:
    description:
      - The Kubernetes objects to apply, each a complete manifest with C(apiVersion), C(kind),
        C(metadata.name) and, for namespaced kinds, C(metadata.namespace).
      - Objects of kind C(Secret) are refused. Give Secrets as O(secrets), so that their values
        come from O(secret_values) and never appear in the task's arguments or output.
      - Listing the same kind, namespace and name twice fails.
      - The label C(zerotrust.aks/owned-by) is the module's own. A value given here is ignored.
      - With O(state=absent), only the C(apiVersion) and C(kind) of each object matter. They say
        which kinds to look for.
    type: list
    elements: dict
    default: []
  secrets:
    description:
      - Secret specs without values. Each entry has C(namespace), C(name), optional C(type),
        C(labels) and C(annotations), and either C(data) or C(generate).
      - "C(data) maps each data key to C({value_from: <key of secret_values>}) for a secret value, or to
        C({value: <text>}) for a value that is not secret, such as an OIDC client id. A literal C(value) is
        shown like any other argument."
      - "C(generate) makes a value and keeps it on later runs: C({type: cookie_secret, key: <data
        key>}) (optional C(rotate), C(value_from)), or C({type: tls_selfsigned, host: <DNS
        name>}) (optional C(alt_names), a list of further DNS names for the certificate's SANs,
        C(group), C(valid_days), C(renew_before_days)). A certificate kept from an earlier run is
        renewed when its host or names differ."
      - Not C(no_log), because Ansible would then mask every string in it, namespace names
        included, everywhere in the output. The values belong in O(secret_values).
    type: list
    elements: dict
    default: []
  secret_values:
    description:
      - The secret inputs, by the keys that O(secrets) names in C(value_from). Every value is a
        string.
    type: dict
    default: {}
  owner:
    description:
      - The stack instance. It is the value of the ownership label C(zerotrust.aks/owned-by),
        and a valid Kubernetes label value.
    type: str
    required: true
  field_manager:
    description:
      - The server-side apply field manager. Conflicts with other managers are forced
        (C(force=true)).
      - The ownership label of objects that could only be marked after creation is held by
        C(<field_manager>-owner).
    type: str
    default: zerotrust-aks
  wait:
    description:
      - Wait for the applied Deployments to roll out before the kinds in O(apply_after_rollout)
        are applied and the module returns.
      - With O(state=absent), wait until the owned Namespaces are gone.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait in all, for rollouts (or Namespace deletion), for each
        CustomResourceDefinition to become Established, and for the webhook configurations' CA
        bundles.
    type: int
    default: 300
  apply_after_rollout:
    description:
      - Kinds applied only after the Deployments rolled out, and after the webhook configurations
        among them have their CA bundles. An admission webhook must be serving before the API
        server lets objects through it. The ingress-nginx admission webhook admits Ingresses,
        cert-manager's webhook admits Certificates, Issuers and ClusterIssuers.
      - A kind in this list that is not among O(objects) costs nothing. When cert-manager is not
        installed in the same run, its kinds are applied right after the other objects, because
        there is nothing to wait for.
      - Without O(wait), or in check mode, these kinds are applied last without waiting.
    type: list
    elements: str
    default:
      - Ingress
      - ValidatingWebhookConfiguration
      - MutatingWebhookConfiguration
      - Certificate
      - Issuer
      - ClusterIssuer
  prune:
    description:
      - With O(state=present), after a successful apply, delete the objects this stack created
        (ownership label C(zerotrust.aks/owned-by=<owner>)) that are no longer among O(objects)
        and O(secrets). Namespaces are never pruned; see RV(unused_namespaces).
      - The objects of one run are then the whole stack of O(owner). Set V(false) when a run
        applies only part of it.
      - Needs permission to list each kind in all namespaces. A refused LIST fails the run,
        naming the kind and the permission.
      - Ignored with O(state=absent).
    type: bool
    default: true
  delete_crds:
    description:
      - With O(state=absent), also delete the CustomResourceDefinitions that carry the ownership
        label of O(owner), that is those this module created. Deleting a CRD deletes every object
        of its kind in the whole cluster, whoever made it.
      - V(false) keeps them and lists them in RV(skipped).
      - Ignored with O(state=present); pruning never deletes a CRD.
    type: bool
    default: false
    version_added: 0.2.0
notes:
  - Connection options and their C(K8S_AUTH_*) environment variables are the same as in
    kubernetes.core. The module reads kubeconfigs itself. It supports tokens, token files,
    client certificates, basic auth and exec credential plugins such as kubelogin. For legacy
    C(auth-provider) entries it uses the C(kubernetes) Python package.
  - O(persist_config) has no effect. Refreshed tokens are not written back.
  - A C(CustomResourceDefinition) that the collection created is deleted with O(state=absent) only
    with O(delete_crds=true), and with it every object of its kind.
requirements:
  - PyYAML (to read a kubeconfig file, and for O(ignore:diff) output)
  - cryptography (only for C(generate.type=tls_selfsigned) Secrets)
seealso:
  - name: Server-side apply
    description: How the API server merges applied fields and tracks their managers.
    link: https://kubernetes.io/docs/reference/using-api/server-side-apply/
  - module: kubernetes.core.k8s
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
"""

EXAMPLES = r"""
- name: Apply the cluster layer in one module run
  zerotrust.aks.k8s_apply:
    owner: colors
    objects: "{{ manifests_objects }}"
    secrets:
      - namespace: oauth2-proxy
        name: oauth2-proxy
        data:
          client-id: {value_from: client_id}
          client-secret: {value_from: client_secret}
      - namespace: oauth2-proxy
        name: oauth2-proxy-cookie
        generate: {type: cookie_secret, key: cookie-secret}
    secret_values:
      client_id: "{{ entra_client_id }}"
      client_secret: "{{ entra_client_secret }}"
  register: applied

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ applied.counts }} in {{ applied.requests }} API requests"

- name: Use a bearer token as AWX injects it (K8S_AUTH_HOST, K8S_AUTH_API_KEY)
  zerotrust.aks.k8s_apply:
    owner: colors
    objects: "{{ manifests_objects }}"
    wait_timeout: 600

- name: Remove everything the collection created for this stack
  zerotrust.aks.k8s_apply:
    state: absent
    owner: colors
    objects: "{{ manifests_objects }}"
"""

RETURN = r"""
objects:
  description: One entry per applied object, in apply order.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
    namespace:
      description: The object's namespace, empty for cluster-scoped objects.
      type: str
    name:
      description: The object's name.
      type: str
    action:
      description: V(created), V(configured) (an existing object changed) or V(unchanged).
      type: str
  sample:
    - {kind: Namespace, namespace: "", name: colors-web, action: created}
    - {kind: Deployment, namespace: colors-web, name: colors-web, action: unchanged}
secrets:
  description: One entry per Secret of O(secrets). It holds no values.
  returned: always
  type: list
  elements: dict
  contains:
    namespace:
      description: The Secret's namespace.
      type: str
    name:
      description: The Secret's name.
      type: str
    keys:
      description: The Secret's data keys.
      type: list
      elements: str
    fingerprint:
      description: A short hash of the Secret's data. It changes when a value changes.
      type: str
    reason:
      description: Why the value is what it is (kept, generated, built from the spec, ...).
      type: str
    generated:
      description: Whether this run generated a new value.
      type: bool
  sample:
    - {namespace: oauth2-proxy, name: oauth2-proxy-cookie, keys: [cookie-secret],
       fingerprint: "sha256:3f1c0e9a7b2d", reason: kept the stored value, generated: false}
counts:
  description: How many objects were created, configured and unchanged.
  returned: always
  type: dict
  sample: {created: 0, configured: 1, unchanged: 41}
requests:
  description: The number of HTTP requests the module sent to the API server, watches included.
  returned: always
  type: int
  sample: 45
waited:
  description:
    - The Deployments the module had to wait for (those that had not rolled out when applied),
      with the seconds spent on each, and the seconds spent waiting in all.
    - C(webhooks) lists the webhook configurations (C(kind), C(name)) whose CA bundle it had to
      wait for, with the seconds since the wait began (only when there were any).
  returned: always
  type: dict
  sample: {deployments: [{namespace: colors-web, name: colors-web, seconds: 2.1}], seconds: 2.3}
pruned:
  description:
    - With O(prune=true), the owned objects deleted (or, in check mode, that would be deleted)
      because they are no longer among O(objects) and O(secrets).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
    namespace:
      description: The object's namespace, empty for cluster-scoped objects.
      type: str
    name:
      description: The object's name.
      type: str
  sample:
    - {kind: Ingress, namespace: blog, name: blog}
    - {kind: Secret, namespace: blog, name: colors-tls}
skipped:
  description:
    - Objects the module left alone on purpose, each with the reason. With O(state=present), objects
      annotated C(zerotrust.aks/apply=if-absent) that exist and that this O(owner) did not create.
      With O(state=absent), the owned CustomResourceDefinitions kept because O(delete_crds=false).
  returned: always
  type: list
  elements: dict
  version_added: 0.2.0
  contains:
    kind:
      description: The object's kind.
      type: str
    namespace:
      description: The object's namespace, empty for cluster-scoped objects.
      type: str
    name:
      description: The object's name.
      type: str
    reason:
      description: Why it was left alone.
      type: str
  sample:
    - {kind: CustomResourceDefinition, namespace: "", name: gateways.gateway.networking.k8s.io,
       reason: "zerotrust.aks/apply: if-absent; exists and this stack did not create it"}
unused_namespaces:
  description:
    - With O(prune=true), the Namespaces this stack created that are no longer among O(objects).
      Pruning keeps them (a warning says so); O(state=absent) deletes them.
  returned: always
  type: list
  elements: str
  sample: [colors-web]
deleted:
  description:
    - With O(state=absent), the objects deleted (or, in check mode, that would be deleted).
      Objects inside an owned Namespace are listed too. They go with their Namespace.
  returned: always
  type: list
  elements: dict
  sample: [{kind: Namespace, namespace: "", name: colors-web}]
seconds:
  description: How long the module ran, from connecting to returning.
  returned: success
  type: float
  sample: 1.42
"""

import os
import time
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.zerotrust.aks.plugins.module_utils import _validation
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_apply import (
    DEFAULT_APPLY_AFTER_ROLLOUT,
    Engine,
    EngineError,
    Options,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_client import Client
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_connection import (
    ConnectionConfigError,
    auth_argument_spec,
    resolve,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_secrets import MissingLibraryError
from ansible_collections.zerotrust.aks.plugins.module_utils._k8s_teardown import absent, prune

ARGUMENT_SPEC: dict[str, t.Any] = {
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "objects": {"type": "list", "elements": "dict", "default": []},
    # Explicitly not no_log: Ansible would mask every string in it (namespace names too) in all
    # output. Specs hold no secret values (those are in secret_values).
    "secrets": {"type": "list", "elements": "dict", "default": [], "no_log": False},
    "secret_values": {"type": "dict", "default": {}, "no_log": True},
    "owner": {"type": "str", "required": True},
    "field_manager": {"type": "str", "default": "zerotrust-aks"},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 300},
    "apply_after_rollout": {"type": "list", "elements": "str", "default": list(DEFAULT_APPLY_AFTER_ROLLOUT)},
    "prune": {"type": "bool", "default": True},
    "delete_crds": {"type": "bool", "default": False},
    **auth_argument_spec(),
}


def input_errors(params: t.Mapping[str, t.Any]) -> list[str]:
    """What the argument spec cannot say; messages name the option, never a secret value."""
    errors = []
    if not _validation.is_label_value(params["owner"]):
        errors.append(
            f"owner must be a Kubernetes label value (1-63 letters, digits, '-', '_', '.', starting and "
            f"ending with a letter or digit), got {params['owner']!r}"
        )
    for index, obj in enumerate(params["objects"]):
        if obj.get("kind") == "Secret":
            name = (obj.get("metadata") or {}).get("name")
            errors.append(
                f"objects[{index}] is a Secret ({name!r}): give Secrets as secrets (specs) with their values in "
                "secret_values, so that no value appears in the task's arguments or output"
            )
    for key, value in params["secret_values"].items():
        if not isinstance(value, str):
            errors.append(f"secret_values.{key} must be a string, got {type(value).__name__}")
    if params["wait_timeout"] < 1:
        errors.append(f"wait_timeout must be at least 1, got {params['wait_timeout']}")
    return errors


def _leaf_strings(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaf_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_strings(item)


def _warn(module: AnsibleModule, engine: Engine) -> None:
    for warning in engine.warnings:
        module.warn(warning)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    # An in-memory kubeconfig holds credentials (a path does not, see auth_argument_spec): mask
    # what its users hold; masking every string would also mask words such as "Config".
    if isinstance(params.get("kubeconfig"), dict):
        for user in params["kubeconfig"].get("users") or []:
            credentials = user.get("user") if isinstance(user, dict) else None
            module.no_log_values.update(s for s in _leaf_strings(credentials) if len(s) > 3)
    # A literal "value" in a spec is not secret by contract (an OIDC client id): masking it would
    # turn every occurrence of, say, "zerotrust-aks" in the output into asterisks. Secrets travel
    # in secret_values only.
    errors = input_errors(params)
    if errors:
        module.fail_json(msg="; ".join(errors))

    started = time.monotonic()
    try:
        client = Client(resolve(params, os.environ))
    except (ConnectionConfigError, OSError, ValueError) as e:
        module.fail_json(msg=f"cannot configure the Kubernetes connection: {e}")
    engine = Engine(
        client,
        Options(
            owner=params["owner"],
            field_manager=params["field_manager"],
            wait=params["wait"],
            wait_timeout=params["wait_timeout"],
            apply_after_rollout=tuple(params["apply_after_rollout"]),
            check_mode=module.check_mode,
            diff=module._diff,
        ),
    )
    try:
        if params["state"] == "present":
            engine.present(params["objects"], params["secrets"], params["secret_values"])
            if params["prune"]:
                prune(engine, params["objects"])
        else:
            absent(engine, params["objects"], delete_crds=params["delete_crds"])
    except MissingLibraryError as e:
        _warn(module, engine)
        module.fail_json(msg=missing_required_lib(e.library), **engine.result())
    except (EngineError, ValueError) as e:
        # ValueError: ObjectError (no name, duplicates), SecretSpecError, fill_checksums' refusals.
        _warn(module, engine)
        module.fail_json(msg=str(e), **engine.result())
    finally:
        client.close()
    _warn(module, engine)
    module.exit_json(seconds=round(time.monotonic() - started, 2), **engine.result())


if __name__ == "__main__":
    main()
