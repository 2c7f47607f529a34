# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: role_objects
author:
  - zerotrust.aks developers (@zerotrust)
version_added: 0.2.0
short_description: Render a role's Kubernetes object templates into a list of objects
description:
  - Renders each named template (searched like the C(ansible.builtin.template) lookup, in the calling role's
    C(templates/) folder first) with the task's variables, parses the result as YAML documents, and returns
    every non-empty document as one object, in order.
  - A document whose C(apiVersion) is C(v1) and C(kind) is C(List) (what C(kubectl get -o yaml) writes, and
    how the vendored CRD files hold their many objects in one YAML document) stands for its C(items), in order,
    as it does for C(kubectl apply -f); a List among the items is expanded the same way. The List itself is
    never returned.
  - Unlike C(ansible.builtin.template), it does not deep-copy every variable of the play for each template.
    That copy grows with every fact the play holds, and it made computing the stack's objects take most of a
    no-op run. The templates see the same variables, without the C(template_*) helpers.
options:
  _terms:
    description: Template file names.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Compute the colors-api objects
  ansible.builtin.set_fact:
    colors_api_manifests: "{{ query('zerotrust.aks.role_objects', 'namespace.yml.j2', 'service.yml.j2') }}"
"""

RETURN = r"""
_list:
  description:
    - The objects of all templates, in order (one per YAML document, empty documents dropped).
    - A v1 C(List) document gives its items in its place, not itself.
  type: list
  elements: dict
"""

import os
import typing as t

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

try:
    _LOADER: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _LOADER = yaml.SafeLoader


class LookupModule(LookupBase):  # type: ignore[misc]  # ansible-core ships no type hints
    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        variables = variables or {}
        objects: list[t.Any] = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "templates", term)
            if not path:
                raise AnsibleError(f"role_objects: the template {term} could not be found")
            searchpath = [os.path.dirname(path)] + [
                candidate
                for base in variables.get("ansible_search_path", [])
                for candidate in (os.path.join(base, "templates"), base)
            ]
            templar = self._templar.copy_with_new_env(available_variables=variables, searchpath=searchpath)
            text = templar.template(trust_as_template(self._loader.get_text_file_contents(path)))
            if text is None:  # a template that renders nothing (a switched-off component)
                continue
            if not isinstance(text, str):
                raise AnsibleError(f"role_objects: {term} did not render to text")
            try:
                # Bytes: the C loader refuses the tagged str subclass the templar returns.
                documents = list(yaml.load_all(text.encode("utf-8"), Loader=_LOADER))
            except yaml.YAMLError as exc:
                raise AnsibleError(f"role_objects: {term} did not render to valid YAML: {exc}") from exc
            for document in documents:
                if document is None:
                    continue
                objects.extend(_expand(term, document))
        return objects


def _is_list(obj: dict[str, t.Any]) -> bool:
    return obj.get("apiVersion") == "v1" and obj.get("kind") == "List"


def _expand(term: str, document: t.Any) -> list[dict[str, t.Any]]:
    """DOCUMENT as the objects it stands for: itself, or the items of a v1 List (recursively)."""
    if not isinstance(document, dict):
        raise AnsibleError(f"role_objects: {term} rendered a document that is not an object")
    if not _is_list(document):
        return [document]
    items = document.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise AnsibleError(f"role_objects: {term} rendered a List whose items are not a list")
    objects: list[dict[str, t.Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise AnsibleError(f"role_objects: {term} rendered a List with an item that is not an object")
        objects.extend(_expand(term, item))
    return objects
