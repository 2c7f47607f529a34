#!/usr/bin/python
# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: manifest_files
short_description: Write Kubernetes objects to a folder, one YAML file per object
version_added: 0.1.0
description:
  - Writes each object of O(objects) to O(path) as a YAML document with sorted keys, in apply
    order, named C(NNN-<namespace|cluster>-<kind>-<name>.yaml) (a GitOps folder, or input for
    schema tests). Writes only files whose content changes.
  - Records the files it owns in an index file in O(path), C(.zerotrust-aks-render.index). Pruning
    removes only files listed in the previous index that are no longer rendered. Every other file in
    the folder (a C(kustomization.yaml) of your own, notes, a README) is left alone and reported in
    RV(foreign_files) and in a warning. Commit the index with the rendered files.
  - A folder that holds C(*.yaml) files but no index (rendered by zerotrust.aks 0.1.0, or by hand) is
    not pruned; the module warns, and the files it does not render any more stay until you remove them.
  - A file that has the name of a rendered file is overwritten, index or not.
  - Contacts no Kubernetes API server.
  - Refuses objects of kind C(Secret), and Lists (which could hold Secrets), because secret values must
    never reach files.
author:
  - zerotrust.aks developers (@zerotrust)
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - Reports the files it would write and remove, and writes nothing (not even the index).
  diff_mode:
    support: partial
    details:
      - The diff lists file names (added, changed, removed), not contents.
options:
  path:
    description:
      - Folder to write to. Created when missing.
    type: path
    required: true
  objects:
    description:
      - The Kubernetes objects to render, in any order. The module sorts them in apply order and
        names their files.
      - Every object needs C(apiVersion), C(kind) and C(metadata.name); two objects with the same
        kind, namespace and name are refused.
      - Exactly one of O(objects) and O(files) is required.
    type: list
    elements: dict
  files:
    description:
      - Deprecated, will be removed in 0.3.0; use O(objects), which names the files itself.
      - The files to write, in the order given, each with its name and object.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - File name inside O(path), without directories; must end in C(.yaml) and must not be
            C(kustomization.yaml).
        type: str
        required: true
      object:
        description:
          - The Kubernetes object.
        type: dict
        required: true
  kustomization:
    description:
      - Also write C(kustomization.yaml) listing the rendered files in order as its C(resources), so
        Argo CD, Flux or C(kubectl apply -k) read exactly the rendered objects.
      - The module owns that file only when it created it. When the folder already holds a
        kustomization file it did not write, the module fails before writing anything.
      - When V(false), a C(kustomization.yaml) the module wrote earlier is pruned like any other file
        it no longer renders.
    type: bool
    default: false
  prune:
    description:
      - Remove the files listed in the previous index that are no longer rendered.
      - When V(false) they stay, and stay in the index, so a later run with O(prune=true) removes them.
    type: bool
    default: true
requirements:
  - PyYAML
notes:
  - The role C(zerotrust.aks.manifests) uses this module for its render mode.
  - The index is a JSON object holding the format version (key C(format), now 1) and the names of the
    files the module owns, in order (key C(files)). Its name ends in neither C(.yaml),
    C(.yml) nor C(.json), because Argo CD reads every such file of a directory application as a
    Kubernetes object.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Render the stack's objects for Argo CD
  zerotrust.aks.manifest_files:
    path: /srv/gitops/cluster
    kustomization: true
    objects:
      - apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: demo
          namespace: demo
      - apiVersion: v1
        kind: Namespace
        metadata:
          name: demo
  register: render
  # Writes 001-cluster-namespace-demo.yaml, 002-demo-serviceaccount-demo.yaml,
  # kustomization.yaml and the index .zerotrust-aks-render.index.
"""

RETURN = r"""
files:
  description:
    - Every rendered file, in apply order; C(kustomization.yaml) last when O(kustomization=true).
    - RV(written) and RV(unchanged) together hold exactly these files.
  returned: success
  type: list
  elements: str
  sample: ["001-cluster-namespace-demo.yaml", "002-demo-serviceaccount-demo.yaml", "kustomization.yaml"]
written:
  description: Rendered files created or changed (or, in check mode, that would be).
  returned: success
  type: list
  elements: str
  sample: ["002-demo-serviceaccount-demo.yaml"]
unchanged:
  description: Rendered files whose content was already right.
  returned: success
  type: list
  elements: str
  sample: ["001-cluster-namespace-demo.yaml"]
removed:
  description: Files of the previous index that are no longer rendered, removed (or, in check mode, that would be).
  returned: success
  type: list
  elements: str
  sample: ["007-oauth2-proxy-secretproviderclass-oauth2-proxy.yaml"]
foreign_files:
  description: Entries of the folder this module did not write and left alone (also named in a warning).
  returned: success
  type: list
  elements: str
  sample: ["README.md", "kustomization.yaml"]
index:
  description: Path of the index file that lists the files this module owns in the folder.
  returned: success
  type: str
  sample: /srv/gitops/cluster/.zerotrust-aks-render.index
"""

import contextlib
import json
import os
import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.zerotrust.aks.plugins.module_utils._manifests import (
    ObjectError,
    describe,
    file_names,
    sorted_objects,
)

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR: Exception | None = None
except ImportError as error:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
    YAML_IMPORT_ERROR = error

INDEX_NAME = ".zerotrust-aks-render.index"
INDEX_FORMAT = 1
KUSTOMIZATION = "kustomization.yaml"
# kustomize refuses a folder holding more than one of these, so a foreign one blocks ours too.
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class RenderError(Exception):
    """Input or folder state the module refuses, before it writes anything."""


def to_yaml(obj: t.Mapping[str, t.Any]) -> str:
    text: str = yaml.safe_dump(dict(obj), default_flow_style=False, sort_keys=True, width=1000, allow_unicode=True)
    return "---\n" + text


def refuse_lists(objects: t.Iterable[t.Mapping[str, t.Any]]) -> None:
    lists = sorted(
        {str(obj.get("kind")) for obj in objects if str(obj.get("kind")).endswith("List") and "items" in obj}
    )
    if lists:
        raise RenderError(f"refusing {', '.join(lists)} (a list could hold Secrets); pass the items as objects")


def refuse_secrets(objects: t.Iterable[t.Mapping[str, t.Any]]) -> None:
    secrets = [describe(obj) for obj in objects if obj.get("kind") == "Secret"]
    if secrets:
        raise RenderError(
            "refusing to write Secrets to files (their values must never reach a file): "
            + ", ".join(secrets)
            + ". Apply them to the cluster instead, or deliver them through a SecretProviderClass."
        )


def plan_from_objects(objects: list[dict[str, t.Any]]) -> list[tuple[str, str]]:
    """(file name, content) of every object, in apply order."""
    refuse_lists(objects)
    ordered = sorted_objects(objects)
    refuse_secrets(ordered)
    return [(name, to_yaml(obj)) for name, obj in zip(file_names(ordered), ordered, strict=True)]


def plan_from_files(files: list[dict[str, t.Any]]) -> list[tuple[str, str]]:
    """The deprecated interface: the caller names the files and gives the order."""
    names = [item["name"] for item in files]
    for name in names:
        if not is_plain_yaml_name(name) or name == KUSTOMIZATION:
            raise RenderError(f"file name {name!r} must be a plain name ending in .yaml, other than {KUSTOMIZATION}")
    if len(set(names)) != len(names):
        raise RenderError("file names must be unique")
    refuse_lists([item["object"] for item in files])
    refuse_secrets([item["object"] for item in files])
    return [(item["name"], to_yaml(item["object"])) for item in files]


def is_plain_yaml_name(name: str) -> bool:
    return os.path.basename(name) == name and name.endswith(".yaml") and not name.startswith(".")


def kustomization_text(resources: list[str]) -> str:
    return to_yaml({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources})


def index_text(files: list[str]) -> str:
    return json.dumps({"format": INDEX_FORMAT, "files": files}, indent=2) + "\n"


def read_index(index_path: str) -> list[str] | None:
    """The files the index says the module owns; None when there is no index."""
    try:
        with open(index_path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise RenderError(f"cannot read the index {index_path}: {error}") from error
    start_over = "delete it to start over (the module then prunes nothing once and warns)"
    try:
        document = json.loads(text)
    except ValueError as error:
        raise RenderError(f"the index {index_path} is not JSON ({error}); {start_over}") from error
    version = document.get("format") if isinstance(document, dict) else None
    if isinstance(version, int) and version > INDEX_FORMAT:
        raise RenderError(
            f"the index {index_path} has format {version}, written by a newer zerotrust.aks "
            f"(this one reads format {INDEX_FORMAT}); upgrade the collection"
        )
    files = document.get("files") if isinstance(document, dict) else None
    if version != INDEX_FORMAT or not isinstance(files, list) or not all(isinstance(n, str) for n in files):
        raise RenderError(f"the index {index_path} is not a format {INDEX_FORMAT} index; {start_over}")
    unsafe = [name for name in files if not is_plain_yaml_name(name)]
    if unsafe:
        # The index says what may be deleted: never trust it with other names.
        raise RenderError(f"the index {index_path} lists names that are not plain .yaml files: {unsafe}; {start_over}")
    return files


def read_bytes(path: str) -> bytes | None:
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def write_atomically(folder: str, name: str, text: str) -> None:
    temporary = os.path.join(folder, f".{name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, os.path.join(folder, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            objects=dict(type="list", elements="dict"),
            files=dict(
                type="list",
                elements="dict",
                options=dict(name=dict(type="str", required=True), object=dict(type="dict", required=True)),
            ),
            kustomization=dict(type="bool", default=False),
            prune=dict(type="bool", default=True),
        ),
        mutually_exclusive=[("objects", "files")],
        required_one_of=[("objects", "files")],
        supports_check_mode=True,
    )
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))

    folder: str = module.params["path"]
    index_path = os.path.join(folder, INDEX_NAME)
    try:
        if module.params["files"] is not None:
            module.deprecate(
                "The files option is deprecated; pass the objects as objects, and the module names the files",
                version="0.3.0",
                collection_name="zerotrust.aks",
            )
            plan = plan_from_files(module.params["files"])
        else:
            plan = plan_from_objects(module.params["objects"])
        if module.params["kustomization"]:
            plan.append((KUSTOMIZATION, kustomization_text([name for name, _content in plan])))

        if os.path.exists(folder) and not os.path.isdir(folder):
            raise RenderError(f"{folder} exists and is not a folder")
        entries = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        previous = read_index(index_path)
        owned_before = set(previous or [])
        if module.params["kustomization"]:
            blocking = [n for n in KUSTOMIZATION_NAMES if n in entries and n not in owned_before]
            if blocking:
                raise RenderError(
                    f"{os.path.join(folder, blocking[0])} exists and was not written by this module, which leaves it "
                    "alone: remove it (or rename it) to let the module write kustomization.yaml, or set "
                    "kustomization=false and list the rendered files in your own"
                )
    except (RenderError, ObjectError) as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(msg=f"cannot read {folder}: {error}")

    rendered = [name for name, _content in plan]
    written: list[str] = []
    unchanged: list[str] = []
    created: list[str] = []
    for name, content in plan:
        current = read_bytes(os.path.join(folder, name))
        if current == content.encode("utf-8"):
            unchanged.append(name)
        else:
            written.append(name)
            if current is None:
                created.append(name)
    gone = sorted((owned_before - set(rendered)) & entries)
    removed = gone if module.params["prune"] else []
    owned_after = rendered + [name for name in gone if name not in removed]
    foreign = sorted(entries - set(owned_after) - set(removed) - {INDEX_NAME})

    if previous is None and any(name.endswith(".yaml") for name in entries):
        module.warn(
            f"{folder} holds .yaml files but no index ({INDEX_NAME}): they were rendered by an older "
            "zerotrust.aks or written by hand, so nothing was pruned. Remove the files that are no longer "
            "rendered yourself; from now on the index lists the files this module writes."
        )
    if foreign:
        module.warn(f"left alone in {folder} (not written by this module): {', '.join(foreign)}")

    new_index = index_text(owned_after)
    index_changed = read_bytes(index_path) != new_index.encode("utf-8")
    changed = bool(written or removed or index_changed)
    if changed and not module.check_mode:
        try:
            os.makedirs(folder, exist_ok=True)
            if any(name not in owned_before for name in created):
                # Own a file before creating it: a run that stops half-way can then still prune it later.
                write_atomically(folder, INDEX_NAME, index_text(sorted(owned_before | set(created))))
            for name, content in plan:
                if name in written:
                    write_atomically(folder, name, content)
            for name in removed:
                os.remove(os.path.join(folder, name))
            write_atomically(folder, INDEX_NAME, new_index)
        except OSError as error:
            module.fail_json(msg=f"cannot write to {folder}: {error}", written=written, removed=removed)

    result: dict[str, t.Any] = dict(
        changed=changed,
        files=rendered,
        written=written,
        unchanged=unchanged,
        removed=removed,
        foreign_files=foreign,
        index=index_path,
    )
    if module._diff:
        result["diff"] = dict(
            before_header=folder,
            after_header=folder,
            before="".join(f"removed {name}\n" for name in removed),
            after="".join(f"{'added' if name in created else 'changed'} {name}\n" for name in written),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
