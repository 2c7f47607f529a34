"""Write the CRD files the roles ship, from the pinned Go modules (never edited by hand).

    python scripts/vendor_crds.py            (re)write every file in SOURCES
    python scripts/vendor_crds.py --check    exit 1 when a file differs from what its pinned module gives

(with the project's virtualenv, .venv/bin/python, as scripts/test runs it)

Each entry of SOURCES names a Go module, the testbed/versions.env key pinning its version, the
globs (relative to the module's root) of the CRD files in it, the destination in this
repository and the module's licence. The module is downloaded with the testbed's Go
environment (the module proxy; `testbed/build` uses the same cache). The documents of the
matching files, in name order, become the items of ONE YAML document, a v1 List, under a header
naming module, version, paths and licence: ansible-test's yamllint refuses a file of several
documents, and `kubectl apply -f` and the role_objects lookup take a List for its items. Each
CRD's text is the module's own, indented into the List's sequence; the file is parsed back and
must give exactly the module's documents.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import typing as t

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSIONS_ENV = ROOT / "testbed" / "versions.env"


@dataclasses.dataclass(frozen=True)
class Source:
    module: str
    version_key: str  # the KEY=VALUE of testbed/versions.env that pins the module
    globs: tuple[str, ...]  # relative to the module's root; matches are sorted by path
    destination: str  # relative to the repository; {version} is replaced
    licence: str


SOURCES: tuple[Source, ...] = (
    Source(
        module="github.com/cert-manager/cert-manager",
        version_key="CERT_MANAGER_VERSION",
        globs=("deploy/crds/*.yaml",),
        destination="roles/cert_manager/files/crds/cert-manager-{version}.yml",
        licence="Apache-2.0, The cert-manager Authors",
    ),
    # The gateway-api edge: Gateway API's standard channel (GatewayClass, Gateway, HTTPRoute,
    # GRPCRoute, ReferenceGrant, BackendTLSPolicy: what Traefik's gateway provider watches), and
    # every traefik.io CRD, since Traefik's Kubernetes CRD provider starts an informer for each.
    Source(
        module="sigs.k8s.io/gateway-api",
        version_key="GATEWAY_API_VERSION",
        globs=("config/crd/standard/*.yaml",),
        destination="roles/gateway_api/files/crds/gateway-api-{version}.yml",
        licence="Apache-2.0, The Kubernetes Authors",
    ),
    Source(
        module="github.com/traefik/traefik/v3",
        version_key="TRAEFIK_VERSION",
        globs=("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",),
        destination="roles/gateway_api/files/crds/traefik-{version}.yml",
        licence="MIT, Containous SAS and Traefik Labs",
    ),
)


def pinned_versions() -> dict[str, str]:
    versions = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


def go_env() -> dict[str, str]:
    """The Go environment of testbed/build: its module cache, no toolchain downloads."""
    cache = pathlib.Path(os.environ.get("ZEROTRUST_AKS_CACHE", pathlib.Path.home() / ".cache" / "zerotrust-aks"))
    env = dict(os.environ)
    env.setdefault("GOMODCACHE", os.environ.get("ZEROTRUST_AKS_GOMODCACHE", str(cache / "go" / "mod")))
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-modcacherw"
    if not shutil.which("go") and pathlib.Path("/usr/local/go/bin/go").exists():
        env["PATH"] = "/usr/local/go/bin:" + env.get("PATH", "")
    return env


def module_dir(module: str, version: str) -> pathlib.Path:
    # A developer tool run from the repository; the arguments come from SOURCES and versions.env.
    result = subprocess.run(  # noqa: S603
        ["go", "mod", "download", "-json", f"{module}@{version}"],  # noqa: S607
        env=go_env(),
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        cause = info.get("Error") or result.stderr.strip()
        sys.exit(f"vendor_crds: go mod download {module}@{version} failed: {cause}")
    return pathlib.Path(info["Dir"])


def documents(text: str) -> list[str]:
    """The YAML documents of a file, without separators and surrounding blank lines."""
    docs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.rstrip() == "---":
            docs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    docs.append("\n".join(current))
    return [doc.strip("\n") for doc in docs if doc.strip()]


def list_item(doc: str) -> str:
    """DOC's text as an item of the List's block sequence: every line four columns further in, the
    first one that is not a comment after "  - ". Empty lines stay empty."""
    lines = []
    started = False
    for line in doc.splitlines():
        if not line:
            lines.append("")
        elif not started and not line.lstrip().startswith("#"):
            lines.append(f"  - {line}")
            started = True
        else:
            lines.append(f"    {line}")
    return "\n".join(lines)


def load(text: str) -> t.Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506  # a safe loader, C or Python


def render(source: Source, version: str) -> str:
    root = module_dir(source.module, version)
    paths = sorted({p for pattern in source.globs for p in root.glob(pattern)})
    if not paths:
        sys.exit(f"vendor_crds: no file matches {source.globs} in {source.module}@{version}")
    header = [
        "# yamllint disable-file",
        f"# Generated by scripts/vendor_crds.py from the Go module {source.module}@{version}; do not edit.",
        "# Files:",
        *(f"#   {p.relative_to(root)}" for p in paths),
        f"# Licence: {source.licence}.",
    ]
    body = [doc for p in paths for doc in documents(p.read_text())]
    text = "\n".join([*header, "---", "apiVersion: v1", "kind: List", "items:", *map(list_item, body)]) + "\n"
    # The List must hold exactly the module's CRDs, in order: the indenting changes no value.
    expected = [load(doc) for doc in body]
    for crd in expected:
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            sys.exit(f"vendor_crds: {source.module}@{version} holds a document that is not a CRD")
    if load(text) != {"apiVersion": "v1", "kind": "List", "items": expected}:
        sys.exit(f"vendor_crds: the List of {source.module}@{version} does not parse back to its CRDs")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    versions = pinned_versions()
    stale = []
    for source in SOURCES:
        if source.version_key not in versions:
            sys.exit(f"vendor_crds: {source.version_key} is not set in {VERSIONS_ENV.relative_to(ROOT)}")
        version = versions[source.version_key]
        destination = ROOT / source.destination.format(version=version)
        text = render(source, version)
        current = destination.read_text() if destination.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(destination.relative_to(ROOT))
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text)
        print(f"vendor_crds: wrote {destination.relative_to(ROOT)}")
    if stale:
        files = ", ".join(map(str, stale))
        print(f"vendor_crds: differs from the pinned module (run python scripts/vendor_crds.py): {files}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
