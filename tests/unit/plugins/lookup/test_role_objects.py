# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the role_objects lookup: templates rendered into objects, v1 Lists expanded."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.zerotrust.aks.plugins.lookup import role_objects
from ansible_collections.zerotrust.aks.plugins.lookup.role_objects import LookupModule


def objects(tmp_path: Path, templates: dict[str, str], **variables: t.Any) -> list[t.Any]:
    """What `query('zerotrust.aks.role_objects', *TEMPLATES)` gives in a role at TMP_PATH."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    for name, text in templates.items():
        (tmp_path / "templates" / name).write_text(text)
    loader = DataLoader()
    lookup = LookupModule(loader=loader, templar=Templar(loader=loader))
    result: list[t.Any] = lookup.run(list(templates), {**variables, "ansible_search_path": [str(tmp_path)]})
    return result


def cm(name: str) -> dict[str, t.Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def test_every_document_is_an_object_in_order_and_empty_ones_are_dropped(tmp_path: Path) -> None:
    text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ first }}\n---\n---\n" + (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
    )
    assert objects(tmp_path, {"a.yml.j2": text, "empty.yml.j2": "{# nothing #}\n"}, first="a") == [cm("a"), cm("b")]


def test_a_list_document_stands_for_its_items(tmp_path: Path) -> None:
    """As for `kubectl apply -f`: the vendored CRD files are one List each (a single YAML document)."""
    crds = "---\n# a header comment\napiVersion: v1\nkind: List\nitems:\n" + "".join(
        f"  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: {n}\n" for n in ("x", "y")
    )
    templates = {
        "before.yml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        "crds.yml.j2": crds,
        "after.yml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: z\n",
    }
    assert objects(tmp_path, templates) == [cm("a"), cm("x"), cm("y"), cm("z")]


def test_lists_are_expanded_recursively_and_an_empty_list_gives_nothing(tmp_path: Path) -> None:
    text = """---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: List
    items:
      - {apiVersion: v1, kind: ConfigMap, metadata: {name: inner}}
  - apiVersion: v1
    kind: List
    items: []
  - apiVersion: v1
    kind: List
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: outer}}
"""
    assert objects(tmp_path, {"nested.yml.j2": text}) == [cm("inner"), cm("outer")]


def test_only_a_v1_list_is_expanded(tmp_path: Path) -> None:
    """Another group's kind named List is an object like any other."""
    other = {"apiVersion": "example.com/v1", "kind": "List", "metadata": {"name": "l"}, "items": [cm("x")]}
    text = "apiVersion: example.com/v1\nkind: List\nmetadata:\n  name: l\nitems:\n  - apiVersion: v1\n"
    text += "    kind: ConfigMap\n    metadata:\n      name: x\n"
    assert objects(tmp_path, {"other.yml.j2": text}) == [other]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "a document that is not an object"),
        ("apiVersion: v1\nkind: List\nitems: {a: b}\n", "a List whose items are not a list"),
        ("apiVersion: v1\nkind: List\nitems:\n  - just-a-string\n", "a List with an item that is not an object"),
    ],
)
def test_what_is_not_an_object_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AnsibleError, match=message):
        objects(tmp_path, {"bad.yml.j2": text})


def test_the_documentation_is_yaml() -> None:
    """Ansible refuses to load the plugin at all when it is not (a "key: value" in a plain scalar)."""
    for text in (role_objects.DOCUMENTATION, role_objects.EXAMPLES, role_objects.RETURN):
        assert yaml.safe_load(text)
