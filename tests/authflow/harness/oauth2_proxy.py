"""oauth2-proxy's command line and environment, from the Deployment as applied.

The container's args and env exactly, with two documented overrides (listen address, issuer URL).
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping
from dataclasses import dataclass

from .objects import UnsupportedObject, container_of, secret_value


@dataclass(frozen=True)
class Override:
    """One change to what the Deployment says, and why the harness has to make it."""

    flag: str
    deployed: str | None
    used: str
    reason: str


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    overrides: list[Override]


def oauth2_proxy_invocation(
    deployment: Mapping[str, t.Any],
    secrets: Mapping[str, Mapping[str, t.Any]],
    *,
    binary: str,
    http_address: str,
    issuer_url: str,
    container: str = "oauth2-proxy",
) -> Invocation:
    """argv and env of the container as the Deployment runs it, with the two overrides applied.

    The image's entrypoint is the oauth2-proxy binary, so argv is ``[binary, *args]``; a
    ``command`` in the container would change that and is refused. Env values come from
    ``value`` or from ``secretKeyRef`` resolved in ``secrets``; other sources are refused.
    """
    spec = container_of(deployment, container)
    if spec.get("command"):
        raise UnsupportedObject(
            f"container {container!r} sets command {spec['command']}; expected the image entrypoint"
        )
    args = list(spec.get("args") or [])
    replacements = {
        "--http-address": (http_address, "listen on a free port of 127.0.0.1 instead of the pod's 0.0.0.0:4180"),
        "--oidc-issuer-url": (issuer_url, "the local IdP instead of the deployed issuer"),
    }
    overrides: list[Override] = []
    for flag, (value, reason) in replacements.items():
        positions = [i for i, arg in enumerate(args) if arg == flag or arg.startswith(flag + "=")]
        if len(positions) != 1 or args[positions[0]] == flag:
            # Only the --flag=value form is rewritten; anything else would be guesswork.
            raise UnsupportedObject(f"expected exactly one {flag}=VALUE in the container args, got {args}")
        deployed = args[positions[0]].split("=", 1)[1]
        args[positions[0]] = f"{flag}={value}"
        overrides.append(Override(flag, deployed, value, reason))
    env: dict[str, str] = {}
    for entry in spec.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise UnsupportedObject(f"env {entry['name']} uses {entry.get('valueFrom')}; only value and secretKeyRef")
        env[entry["name"]] = secret_value(secrets, ref["name"], ref["key"])
    if spec.get("envFrom"):
        raise UnsupportedObject("envFrom is not supported by the harness")
    return Invocation([binary, *args], env, overrides)


def deployed_flag(deployment: Mapping[str, t.Any], flag: str, container: str = "oauth2-proxy") -> list[str]:
    """Every value of ``--flag=value`` in the container's args (the Deployment as applied)."""
    return [
        arg.split("=", 1)[1]
        for arg in container_of(deployment, container).get("args") or []
        if arg.startswith(flag + "=")
    ]
