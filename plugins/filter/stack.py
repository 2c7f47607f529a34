# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the stack model and of preflight checks.

``hostvars[inventory_hostname] | zerotrust.aks.stack_model(inputs)``: the stack model (its rules are
in plugin_utils/_stack.py). ``checks | zerotrust.aks.format_errors``: one message per input whose
value fails its format rule (module_utils/_validation.py), naming the variable and what is allowed.
``"1h30m" | zerotrust.aks.go_duration_seconds``: 5400.0, or -1 for a value that is no Go duration
(to compare durations, e.g. cert-manager's renewBefore with duration)."""

from __future__ import annotations

import json
import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v
from ansible_collections.zerotrust.aks.plugins.plugin_utils import _stack


def stack_model(user: t.Mapping[str, t.Any], inputs: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    model: dict[str, t.Any] = _stack.compute(inputs, user)
    return model


def format_errors(checks: t.Sequence[t.Mapping[str, t.Any]]) -> list[str]:
    """``checks``: [{var, value, format, allowed, empty_ok (default false)}] -> messages."""
    errors = []
    for check in checks:
        try:
            rule = v.FORMATS[check["format"]]
            name = check["var"]
        except KeyError as exc:
            raise AnsibleFilterError(f"format_errors: a check needs var and a known format; missing {exc}") from exc
        value = check.get("value")
        if check.get("empty_ok") and value in ("", None):
            continue
        if not rule(value):
            shown = json.dumps(value, default=str)
            errors.append(f"{name} must be {check.get('allowed', check['format'])}; got {shown}.")
    return errors


def model_conflicts(checks: t.Sequence[t.Mapping[str, t.Any]]) -> list[str]:
    """``checks``: [{var, value, model, stack_var}] -> one message for each component input whose
    value differs from the stack model's. Inventory settings are taken into the model; a value set
    elsewhere (play or role vars) is not, and would split the stack."""
    return [
        f"{check['var']} is {json.dumps(check['value'], default=str)} but the stack model has "
        f"{json.dumps(check['model'], default=str)}: set {check['stack_var']} (or {check['var']} in the "
        "inventory) so that every reference follows."
        for check in checks
        if check["value"] != check["model"]
    ]


def go_duration_seconds(value: t.Any) -> float:
    seconds = v.go_duration_seconds(value)
    return -1.0 if seconds is None else seconds


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "stack_model": stack_model,
            "format_errors": format_errors,
            "model_conflicts": model_conflicts,
            "go_duration_seconds": go_duration_seconds,
        }
