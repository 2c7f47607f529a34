# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin in front of the zerotrust.aks.cookie_secret module.

The module has to return the secret (``register`` is how a play gets it), so a task that forgets
``no_log: true`` used to print it at ``-v`` and hand it to every callback (AWX job events, JSON
logs). This plugin runs the module and marks a successful result ``_ansible_no_log``: ansible-core
(2.19: ``Task.update_result_no_log`` ORs it with the task's ``no_log``, and
``_RawTaskResult.as_callback_task_result`` censors the result) then hides the whole result from
the display and from callbacks, while the registered variable keeps the value.

A failed result is not censored, so the cause stays visible: the module's failure messages never
contain the value (``_cookie_secret.invalid_reason`` describes lengths only), and the ``existing``
option is ``no_log`` in the module's argument spec, so its echo under ``invocation`` is masked.
Anything named ``secret`` is dropped from a failed result anyway.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core ships no type hints
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result: dict[str, t.Any] = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        result.update(
            self._execute_module(
                module_name="zerotrust.aks.cookie_secret",
                module_args=self._task.args.copy(),
                task_vars=task_vars,
            )
        )
        if result.get("failed"):
            result.pop("secret", None)
        else:
            result["_ansible_no_log"] = True
        return result
