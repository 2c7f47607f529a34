# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for the value formats the roles check, e.g. ``x is zerotrust.aks.k8s_name``.
The rules live once, in plugin_utils/_validation.py."""

from __future__ import annotations

import typing as t

from ansible_collections.zerotrust.aks.plugins.module_utils import _validation as v


class TestModule:
    def tests(self) -> dict[str, t.Callable[[t.Any], bool]]:
        return dict(v.FORMATS)
