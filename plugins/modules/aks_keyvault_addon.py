#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aks_keyvault_addon
short_description: Enable the AKS Key Vault secrets provider add-on with secret rotation, changing nothing else
version_added: 0.1.0
description:
  - Reads the managed cluster and compares the C(azureKeyvaultSecretsProvider) add-on (enabled,
    C(enableSecretRotation), C(rotationPollInterval)) and, with O(workload_identity=true), the OIDC issuer and
    Workload Identity switches, with what is asked.
  - Only when something differs, sends the cluster back as read with only those fields changed (the managed
    cluster API has no PATCH except for tags, and C(az aks enable-addons) does the same), then waits for the
    long-running operation. A run where nothing differs sends no PUT.
  - The PUT carries the cluster's C(eTag) as C(If-Match), so a change made by someone else since the read is not
    overwritten - AKS answers C(412) and the module reads the cluster again and recomputes the change (a few
    times). While another operation runs, AKS answers C(409 OperationNotAllowed); the module waits for it
    (O(busy_timeout)), says so in a warning and in RV(waited_for_operation), and then tries again.
  - C(azure.azcollection.azure_rm_aks) rewrites the whole cluster from its own options and cannot set the
    rotation options; C(azure.azcollection.azure_rm_resource) does not wait for a PUT answered with 200/201
    and an C(Azure-AsyncOperation) header, hence this module.
  - Returns the add-on identity's client id (C(addonProfiles.azureKeyvaultSecretsProvider.identity.clientId))
    and the cluster's OIDC issuer URL.
  - Warns when the cluster has no network policy engine (C(networkProfile.networkPolicy) empty or C(none)),
    because then every NetworkPolicy is silently ignored.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  resource_group:
    description: Resource group of the cluster.
    type: str
    required: true
  name:
    description: Name of the managed cluster.
    type: str
    required: true
  secret_rotation:
    description: Whether the CSI driver polls Key Vault for new secret versions.
    type: bool
    default: true
  rotation_poll_interval:
    description: How often it polls, as a Go duration in whole seconds, minutes or hours (C(2m), C(120s), C(1h)).
    type: str
    default: 2m
  workload_identity:
    description: Also enable the cluster's OIDC issuer and Workload Identity (neither can be disabled here).
    type: bool
    default: false
  warn_without_network_policy:
    description: Warn when the cluster enforces no NetworkPolicy.
    type: bool
    default: true
  api_version:
    description: Microsoft.ContainerService API version.
    type: str
    default: "2024-09-01"
  timeout:
    description: Seconds to wait for the cluster update (with O(wait=true)).
    type: int
    default: 1800
  wait:
    description:
      - Wait for AKS to finish the update (C(Azure-AsyncOperation)) before returning.
      - With C(false) the module returns as soon as AKS accepted the change, with RV(operation_url) to poll; the
        role polls it in a task of its own (C(until)/C(retries)), so a run shows a line at every poll instead of
        one silent task for the minutes an update takes. Read the cluster again afterwards for RV(identity_client_id)
        and the other outputs of a new add-on.
    type: bool
    default: true
    version_added: 0.2.0
  busy_timeout:
    description:
      - Seconds to keep waiting while AKS refuses the update because another operation on the cluster is running
        (C(409 OperationNotAllowed), for example an upgrade or a node pool change).
      - The module reads the cluster again after each wait, and does nothing if the change is no longer needed.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between checks of a busy cluster, and between polls of the update's operation when Azure gives no
        C(Retry-After).
    type: int
    default: 10
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - azure.azcollection.azure
  - zerotrust.aks.azure_retry
"""

EXAMPLES = r"""
- name: Enable the Key Vault add-on with rotation every two minutes
  zerotrust.aks.aks_keyvault_addon:
    resource_group: rg-aks
    name: aks-demo
    rotation_poll_interval: 2m
  register: addon

- name: Show the identity the SecretProviderClass uses
  ansible.builtin.debug:
    msg: "{{ addon.identity_client_id }}"
"""

RETURN = r"""
changes:
  description: What differed (or differs, in check mode), as sentences.
  returned: success
  type: list
  elements: str
identity_client_id:
  description: Client id of the add-on's managed identity; empty before the add-on exists (check mode).
  returned: success
  type: str
identity_object_id:
  description: Object (principal) id of the add-on's managed identity.
  returned: success
  type: str
identity_resource_id:
  description: Resource id of the add-on's managed identity.
  returned: success
  type: str
oidc_issuer_url:
  description: The cluster's OIDC issuer URL; empty when the issuer is off.
  returned: success
  type: str
workload_identity_enabled:
  description: Whether Workload Identity is on.
  returned: success
  type: bool
cluster_id:
  description: Resource id of the cluster.
  returned: success
  type: str
location:
  description: Region of the cluster.
  returned: success
  type: str
network_policy:
  description: The cluster's network policy engine (C(networkProfile.networkPolicy)); empty when none.
  returned: success
  type: str
  sample: cilium
operation_url:
  description:
    - With O(wait=false), the URL of the update's operation status (C(Azure-AsyncOperation), else C(Location)) on
      Azure Resource Manager, to poll with M(zerotrust.aks.arm_resource) until its C(status) is final; C("") when
      nothing is left running.
  returned: always
  type: str
  version_added: 0.2.0
waited_for_operation:
  description: Seconds spent waiting for another operation on the cluster to finish (C(409 OperationNotAllowed)).
  returned: always
  type: float
precondition_retries:
  description: How often the cluster had changed between read and write (C(412)) and was read again.
  returned: always
  type: int
"""

import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils._aks_addon import (
    POLL_INTERVAL,
    etag,
    is_busy,
    network_policy_warning,
    outputs,
    put_body,
    wanted_changes,
)
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_auth import AzureModule
from ansible_collections.zerotrust.aks.plugins.module_utils._azure_rest import (
    AzureRestError,
    arm_client,
    retry_after,
)

# How often a cluster that changed between read and write (412) is read again before giving up.
PRECONDITION_RETRIES = 5


class AksKeyVaultAddon(AzureModule):  # type: ignore[misc]
    def __init__(self) -> None:
        self.module_arg_spec = dict(
            resource_group=dict(type="str", required=True),
            name=dict(type="str", required=True),
            secret_rotation=dict(type="bool", default=True),
            rotation_poll_interval=dict(type="str", default="2m"),
            workload_identity=dict(type="bool", default=False),
            warn_without_network_policy=dict(type="bool", default=True),
            api_version=dict(type="str", default="2024-09-01"),
            timeout=dict(type="int", default=1800),
            wait=dict(type="bool", default=True),
            busy_timeout=dict(type="int", default=1800),
            poll_interval=dict(type="int", default=10),
            azure_retry_timeout=dict(type="int", default=600),
        )
        self.results: dict[str, t.Any] = dict(
            changed=False, changes=[], waited_for_operation=0.0, precondition_retries=0, operation_url=""
        )
        super().__init__(self.module_arg_spec, supports_check_mode=True, supports_tags=False)

    def exec_module(self, **kwargs: t.Any) -> dict[str, t.Any]:
        if not POLL_INTERVAL.match(kwargs["rotation_poll_interval"]):
            self.fail(
                "rotation_poll_interval must be a whole number of seconds, minutes or hours such as 2m, 120s "
                f"or 1h, got {kwargs['rotation_poll_interval']!r}"
            )
        if kwargs["poll_interval"] < 1:
            self.fail(f"poll_interval must be at least 1 second, got {kwargs['poll_interval']}")
        self.arm = arm_client(self.azure_auth, kwargs["azure_retry_timeout"])
        url = (
            f"subscriptions/{self.subscription_id}/resourceGroups/{kwargs['resource_group']}"
            f"/providers/Microsoft.ContainerService/managedClusters/{kwargs['name']}"
        )
        self.cluster_name = f"{kwargs['name']} (resource group {kwargs['resource_group']})"
        try:
            self.converge(url, kwargs)
        except AzureRestError as exc:
            self.fail(
                f"managed cluster {self.cluster_name} request failed: {exc}",
                status=exc.status,
                error_code=exc.code,
                **self.waits(),
            )
        except TimeoutError as exc:
            self.fail(f"managed cluster {self.cluster_name}: {exc}", **self.waits())
        self.report_retries()
        return self.results

    def report_retries(self) -> None:
        arm = getattr(self, "arm", None)
        summary = arm.retry_summary() if arm is not None else ""
        if summary:
            self.module.warn(f"managed cluster {self.cluster_name}: {summary}")

    def fail(self, msg: str, **kwargs: t.Any) -> None:
        self.report_retries()
        super().fail(msg, **kwargs)

    def waits(self) -> dict[str, t.Any]:
        return dict(
            waited_for_operation=self.results["waited_for_operation"],
            precondition_retries=self.results["precondition_retries"],
        )

    def converge(self, url: str, kwargs: dict[str, t.Any]) -> None:
        """Read, compare, PUT with If-Match; on 412 read again, on 409 wait for the running operation."""
        params = {"api-version": kwargs["api_version"]}
        wanted = dict(
            secret_rotation=kwargs["secret_rotation"],
            rotation_poll_interval=kwargs["rotation_poll_interval"],
            workload_identity=kwargs["workload_identity"],
        )
        busy_since: float | None = None
        busy_cause = ""
        warned = False
        while True:
            cluster = self.arm.get_or_none(url, params=params)
            if cluster is None:
                self.fail(f"managed cluster {kwargs['name']} not found in resource group {kwargs['resource_group']}")
            warning = network_policy_warning(cluster)
            if warning and kwargs["warn_without_network_policy"] and not warned:
                self.module.warn(warning)
                warned = True
            changes = wanted_changes(cluster, **wanted)
            self.results.update(outputs(cluster), changes=changes)
            if not changes:
                # Nothing (left) to do: possibly done by whoever held the cluster meanwhile.
                self.results["changed"] = False
                self.results.pop("diff", None)
                break
            self.results["changed"] = True
            if self.module._diff:
                self.results["diff"] = dict(before="", after="".join(f"{change}\n" for change in changes))
            if self.check_mode:
                break
            headers = {}
            version = etag(cluster)
            if version:
                # Fail instead of overwriting a change someone made since the read.
                headers["If-Match"] = version
            try:
                answer = self.arm.request(
                    "PUT", url, params=params, body=put_body(cluster, **wanted), headers=headers, ok=(200, 201, 202)
                )
            except AzureRestError as exc:
                if exc.status == 412 and self.results["precondition_retries"] < PRECONDITION_RETRIES:
                    self.results["precondition_retries"] += 1
                    self.module.warn(
                        f"managed cluster {self.cluster_name} changed between read and write (412 {exc.code}); "
                        f"read it again and recomputed the change (retry {self.results['precondition_retries']} "
                        f"of {PRECONDITION_RETRIES})"
                    )
                    continue
                if exc.status == 412:
                    raise AzureRestError(
                        exc.method,
                        exc.url,
                        exc.status,
                        {
                            "error": {
                                "code": exc.code or "PreconditionFailed",
                                "message": f"the cluster changed between every read and write, "
                                f"{PRECONDITION_RETRIES + 1} times in a row; is another tool updating it?",
                            }
                        },
                    ) from exc
                if not is_busy(exc.status, exc.code, exc.detail):
                    raise
                now = self.arm.clock()
                if busy_since is None:
                    busy_since = now
                busy_cause = exc.detail
                waited = now - busy_since
                self.results["waited_for_operation"] = round(waited, 1)
                if waited >= kwargs["busy_timeout"]:
                    self.fail(
                        f"managed cluster {self.cluster_name} was still busy with another operation after "
                        f"{waited:.0f}s (busy_timeout is {kwargs['busy_timeout']}s): {exc}",
                        status=exc.status,
                        error_code=exc.code,
                        **self.waits(),
                    )
                hinted = retry_after(exc.headers)
                delay = min(hinted if hinted is not None else kwargs["poll_interval"], kwargs["busy_timeout"] - waited)
                self.arm.sleep(max(delay, 0.0))
                self.results["waited_for_operation"] = round(self.arm.clock() - busy_since, 1)
                continue
            headers_lower = {key.lower(): value for key, value in answer.headers.items()}
            monitor = headers_lower.get("azure-asyncoperation") or headers_lower.get("location") or ""
            if not kwargs["wait"] and monitor:
                # The caller polls the operation (and reads the cluster again when it is done).
                self.results.update(outputs(answer.body or cluster), operation_url=monitor)
                break
            updated = self.arm.wait_for_arm_operation(
                answer,
                self.arm.url(url),
                kwargs["api_version"],
                timeout=float(kwargs["timeout"]),
                default_interval=float(kwargs["poll_interval"]),
            )
            self.results.update(outputs(updated))
            break
        if busy_since is not None:
            self.module.warn(
                f"managed cluster {self.cluster_name} was busy with another operation ({busy_cause}); waited "
                f"{self.results['waited_for_operation']:.0f}s for it to finish before updating the add-on"
            )


def main() -> None:
    AksKeyVaultAddon()


if __name__ == "__main__":
    main()
