"""Request bodies of ARM PUT/PATCH checked with Microsoft's own generated models.

The azure-mgmt-* packages azure.azcollection installs carry, for every API version, the models
AutoRest generated from the services' REST specifications: each model's ``_attribute_map`` (the
JSON members it has, flattened ones as ``properties.x``) and ``_validation`` (required, read-only
and constraints). A body is:

1. deserialized with the model (``Model.deserialize``): a value of the wrong shape fails there;
2. walked against the attribute maps: a member no model declares is what the service's JSON
   reader refuses ("Could not find member 'x' on object of type 'Y'"); read-only members are
   skipped, as ARM ignores them in a request
   (https://learn.microsoft.com/azure/azure-resource-manager/management/resource-providers-and-types
   and the RPC's "read-only properties are ignored" rule,
   https://github.com/Azure/azure-resource-manager-rpc/blob/master/v1.0/resource-api-reference.md);
3. validated as ``msrest.serialization.Model.validate`` does (required members, patterns, lengths,
   bounds), with msrest's ``Serializer.validate`` on every attribute.

A body with problems is answered 400 ``InvalidRequestContent`` ("The request content was invalid
and could not be deserialized", https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors).

The model of an API version is the package's module for that version, or the newest stable one
before it when the package predates it (azure-mgmt-containerservice 32.1.0 stops at 2024-08-01;
the collection uses 2024-09-01, whose ManagedCluster adds the read-only ``eTag``:
https://learn.microsoft.com/rest/api/aks/managed-clusters/create-or-update?view=rest-aks-2024-09-01).
azure-mgmt-msi is not installed: user-assigned identities and their federated credentials use the
small hand-written models below, from their REST references.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
import typing as t

from msrest.exceptions import ValidationError
from msrest.serialization import Serializer as MsrestSerializer

ARM_DESERIALIZE = "The request content was invalid and could not be deserialized"
_FLATTEN = re.compile(r"(?<!\\)\.")


# --- hand-written models (no azure-mgmt-msi in the virtualenv) ----------------------------------


class Identity:
    """userAssignedIdentities PUT body,
    https://learn.microsoft.com/rest/api/managedidentity/user-assigned-identities/create-or-update?view=rest-managedidentity-2023-01-31
    """

    _attribute_map: t.ClassVar[dict[str, dict[str, str]]] = {
        "id": {"key": "id", "type": "str"},
        "name": {"key": "name", "type": "str"},
        "type": {"key": "type", "type": "str"},
        "system_data": {"key": "systemData", "type": "object"},
        "tags": {"key": "tags", "type": "{str}"},
        "location": {"key": "location", "type": "str"},
        "tenant_id": {"key": "properties.tenantId", "type": "str"},
        "principal_id": {"key": "properties.principalId", "type": "str"},
        "client_id": {"key": "properties.clientId", "type": "str"},
    }
    _validation: t.ClassVar[dict[str, dict[str, bool]]] = {
        "id": {"readonly": True},
        "name": {"readonly": True},
        "type": {"readonly": True},
        "system_data": {"readonly": True},
        "location": {"required": True},
        "tenant_id": {"readonly": True},
        "principal_id": {"readonly": True},
        "client_id": {"readonly": True},
    }


class FederatedIdentityCredential:
    """federatedIdentityCredentials PUT body,
    https://learn.microsoft.com/rest/api/managedidentity/federated-identity-credentials/create-or-update?view=rest-managedidentity-2023-01-31
    """

    _attribute_map: t.ClassVar[dict[str, dict[str, str]]] = {
        "id": {"key": "id", "type": "str"},
        "name": {"key": "name", "type": "str"},
        "type": {"key": "type", "type": "str"},
        "system_data": {"key": "systemData", "type": "object"},
        "issuer": {"key": "properties.issuer", "type": "str"},
        "subject": {"key": "properties.subject", "type": "str"},
        "audiences": {"key": "properties.audiences", "type": "[str]"},
    }
    _validation: t.ClassVar[dict[str, dict[str, bool]]] = {
        "id": {"readonly": True},
        "name": {"readonly": True},
        "type": {"readonly": True},
        "system_data": {"readonly": True},
        "issuer": {"required": True},
        "subject": {"required": True},
        "audiences": {"required": True},
    }


_HAND_MODELS: dict[str, type] = {"Identity": Identity, "FederatedIdentityCredential": FederatedIdentityCredential}

# Read-only members that API versions newer than the installed models added (ignored like any
# read-only member): AKS's eTag, https://learn.microsoft.com/azure/aks/use-etags
_LATER_READ_ONLY: dict[str, tuple[str, ...]] = {
    "ManagedCluster": ("eTag",),
    "ManagedClusterAgentPoolProfile": ("eTag",),
}

# (path pattern, method) -> (package, model). Paths are lower-case ARM ids without the query.
_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    (r".*/providers/microsoft\.containerservice/managedclusters/[^/]+", "PUT", "containerservice", "ManagedCluster"),
    (r".*/providers/microsoft\.containerservice/managedclusters/[^/]+", "PATCH", "containerservice", "TagsObject"),
    (r".*/providers/microsoft\.keyvault/vaults/[^/]+", "PUT", "keyvault", "VaultCreateOrUpdateParameters"),
    (r".*/providers/microsoft\.keyvault/vaults/[^/]+", "PATCH", "keyvault", "VaultPatchParameters"),
    (
        r".*/providers/microsoft\.keyvault/vaults/[^/]+/accesspolicies/(add|replace|remove)",
        "PUT",
        "keyvault",
        "VaultAccessPolicyParameters",
    ),
    (
        r".*/providers/microsoft\.authorization/roleassignments/[^/]+",
        "PUT",
        "authorization",
        "RoleAssignmentCreateParameters",
    ),
    (r".*/providers/microsoft\.managedidentity/userassignedidentities/[^/]+", "PUT", "", "Identity"),
    (
        r".*/providers/microsoft\.managedidentity/userassignedidentities/[^/]+/federatedidentitycredentials/[^/]+",
        "PUT",
        "",
        "FederatedIdentityCredential",
    ),
)


@functools.cache
def _versions(package: str) -> tuple[str, ...]:
    module = importlib.import_module(f"azure.mgmt.{package}")
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(module.__path__)
            if re.fullmatch(r"v\d{4}_\d\d_\d\d.*", info.name)
        )
    )


@functools.cache
def _models(package: str, api_version: str) -> tuple[dict[str, type], str]:
    """The models of ``package`` for ``api_version`` and the module version they come from."""
    wanted = "v" + api_version.replace("-", "_")
    versions = _versions(package)
    if wanted in versions:
        chosen = wanted
    else:
        older = [v for v in versions if "preview" not in v and v <= wanted]
        chosen = older[-1] if older else versions[-1]
    module = importlib.import_module(f"azure.mgmt.{package}.{chosen}.models")
    return {name: value for name, value in vars(module).items() if isinstance(value, type)}, chosen


def model_for(path: str, api_version: str, method: str = "PUT") -> tuple[type, dict[str, type], bool] | None:
    """(model class, its sibling models, whether the API version is newer than the models)."""
    lower = path.lower().rstrip("/")
    for pattern, route_method, package, name in _ROUTES:
        if route_method == method and re.fullmatch(pattern, lower):
            if not package:
                return _HAND_MODELS[name], _HAND_MODELS, False
            models, chosen = _models(package, api_version)
            if name not in models:
                return None
            return models[name], models, chosen != "v" + api_version.replace("-", "_")
    return None


def _tree(cls: type) -> dict[str, t.Any]:
    """The JSON members of a model: name (lower case) -> (attr, description) or a nested tree."""
    tree: dict[str, t.Any] = {}
    for attr, desc in getattr(cls, "_attribute_map", {}).items():
        if not desc["key"]:
            continue
        parts = [part.replace("\\.", ".") for part in _FLATTEN.split(desc["key"])]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part.lower(), {})
        node[parts[-1].lower()] = (attr, desc)
    return tree


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "iso-8601": (str,),
    "duration": (str,),
    "date": (str,),
}


def _unknown(cls: type, models: dict[str, type], data: t.Any, path: str, newer: bool, problems: list[str]) -> None:
    _walk_tree(cls, _tree(cls), models, data, path, newer, problems, cls.__name__)


def _walk_tree(
    cls: type,
    tree: dict[str, t.Any],
    models: dict[str, type],
    data: t.Any,
    path: str,
    newer: bool,
    problems: list[str],
    type_name: str,
) -> None:
    if not isinstance(data, dict):
        problems.append(f"Error converting value {json.dumps(data)} to type '{type_name}'. Path '{path}'.")
        return
    later = {name.lower() for name in _LATER_READ_ONLY.get(cls.__name__, ())} if newer else set()
    read_only = {attr for attr, rules in getattr(cls, "_validation", {}).items() if rules.get("readonly")}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        node = tree.get(key.lower())
        if node is None:
            if key.lower() not in later:
                problems.append(f"Could not find member '{key}' on object of type '{type_name}'. Path '{where}'.")
            continue
        if isinstance(node, dict):
            _walk_tree(cls, node, models, value, where, newer, problems, f"{type_name}{key[:1].upper()}{key[1:]}")
            continue
        attr, desc = node
        if attr in read_only or value is None:
            continue
        _check_value(desc["type"], models, value, where, newer, problems)


def _check_value(kind: str, models: dict[str, type], value: t.Any, path: str, newer: bool, problems: list[str]) -> None:
    if value is None:
        return
    if kind.startswith("[") and kind.endswith("]"):
        if not isinstance(value, list):
            problems.append(f"Error converting value {json.dumps(value)} to type 'List'. Path '{path}'.")
            return
        for index, item in enumerate(value):
            _check_value(kind[1:-1], models, item, f"{path}[{index}]", newer, problems)
    elif kind.startswith("{") and kind.endswith("}"):
        if not isinstance(value, dict):
            problems.append(f"Error converting value {json.dumps(value)} to type 'Dictionary'. Path '{path}'.")
            return
        for key, item in value.items():
            _check_value(kind[1:-1], models, item, f"{path}.{key}", newer, problems)
    elif kind in models:
        _unknown(models[kind], models, value, path, newer, problems)
    elif kind in _PRIMITIVES:
        expected = _PRIMITIVES[kind]
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            problems.append(f"Error converting value {json.dumps(value)} to type '{kind}'. Path '{path}'.")


def _validate(instance: t.Any, name: str, problems: list[str]) -> None:
    """msrest's Model.validate, for the vendored models (whose Model has no validate())."""
    for attr, desc in type(instance)._attribute_map.items():
        if not desc["key"]:
            continue
        rules = type(instance)._validation.get(attr, {})
        value = getattr(instance, attr, None)
        debug_name = f"{name}.{attr}"
        try:
            MsrestSerializer.validate(value, debug_name, **rules)  # type: ignore[no-untyped-call]
        except ValidationError as error:
            problems.append(str(error))
        if rules.get("readonly") or value is None:
            continue
        children = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for index, child in enumerate(children):
            if hasattr(type(child), "_attribute_map") and hasattr(type(child), "_validation"):
                _validate(child, f"{debug_name}[{index}]" if child is not value else debug_name, problems)


def validate_arm_body(path: str, api_version: str, body: t.Any, method: str = "PUT") -> list[str]:
    """What the service would refuse in this request body (empty: nothing)."""
    found = model_for(path, api_version, method)
    if found is None:
        return [f"no model for {method} {path} (api-version {api_version})"]
    cls, models, newer = found
    if body is None:
        return [f"Parameter '{cls.__name__}' can not be None."]
    problems: list[str] = []
    _unknown(cls, models, body, "", newer, problems)
    if problems:
        return problems
    if hasattr(cls, "deserialize"):
        try:
            instance = cls.deserialize(body)
        except Exception as error:  # the vendored DeserializationError of each package
            return [f"{type(error).__name__}: {error}"]
        _validate(instance, cls.__name__, problems)
    else:
        _required(cls, body, problems)
    return problems


def _required(cls: type, body: dict[str, t.Any], problems: list[str]) -> None:
    """Required members of a hand-written model (its members are flat strings or lists)."""
    for attr, rules in getattr(cls, "_validation", {}).items():
        if not rules.get("required"):
            continue
        node: t.Any = body
        for part in _FLATTEN.split(cls._attribute_map[attr]["key"]):  # type: ignore[attr-defined]
            node = (
                next((v for k, v in node.items() if k.lower() == part.lower()), None)
                if isinstance(node, dict)
                else None
            )
        if node is None or node == "" or node == []:
            problems.append(f"Parameter '{cls.__name__}.{attr}' can not be None.")


def refusal(problems: list[str]) -> str:
    """The 400 message ARM gives for a body it cannot deserialize."""
    return f"{ARM_DESERIALIZE}: '{' '.join(problems)}'."
