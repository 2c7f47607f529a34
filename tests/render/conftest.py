"""Render fixtures: the cluster layer rendered to folders, with no API server and no kubeconfig."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from support.playbook import PlaybookRun, run_playbook, without_cluster_access

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INVENTORIES = HERE / "inventory"
PROFILES = ("local", "aks")
CLUSTER_PLAYBOOK = REPO / "playbooks" / "cluster.yml"


@dataclass
class Render:
    """One rendered profile: its folder, its objects (file name -> object) and the run's output."""

    profile: str
    directory: Path
    result: PlaybookRun
    objects: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    inventory_vars: dict[str, t.Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, t.Any]]:
        return [obj for obj in self.objects.values() if obj["kind"] == kind]

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, t.Any]:
        for obj in self.of_kind(kind):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace") == namespace:
                return obj
        raise AssertionError(f"{kind} {namespace}/{name} was not rendered; files: {sorted(self.objects)}")


class RenderProfile(t.Protocol):
    """The render_profile fixture: render a profile, with extra ansible-playbook arguments."""

    def __call__(self, profile: str, *extra: str, check: bool = True, directory: Path | None = None) -> Render: ...


def inventory_vars(profile: str) -> dict[str, t.Any]:
    variables: dict[str, t.Any] = yaml.safe_load((INVENTORIES / f"{profile}.yml").read_text())["all"]["vars"]
    return variables


@pytest.fixture(scope="session")
def render_env(ansible_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """ansible_env without any way to reach a cluster."""
    return without_cluster_access(ansible_env, tmp_path_factory.mktemp("no-kube") / "does-not-exist")


@pytest.fixture(scope="session")
def render_profile(render_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> RenderProfile:
    """Render a profile (with extra -e arguments) into a fresh folder; cached per arguments."""
    cache: dict[tuple[str, tuple[str, ...]], Render] = {}

    def render(profile: str, *extra: str, check: bool = True, directory: Path | None = None) -> Render:
        key = (profile, extra)
        if directory is None and key in cache:
            return cache[key]
        cacheable = directory is None
        directory = directory or tmp_path_factory.mktemp(f"render-{profile}") / "out"
        result = run_playbook(
            CLUSTER_PLAYBOOK,
            *extra,
            env=render_env,
            inventory=[INVENTORIES / f"{profile}.yml"],
            extra_vars={"zerotrust_aks_render_dir": str(directory)},
            must_succeed=check,
            timeout=600,
        )
        rendered = Render(profile, directory, result, inventory_vars=inventory_vars(profile))
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
                assert len(documents) == 1, f"{path.name} holds {len(documents)} objects, expected one"
                rendered.objects[path.name] = documents[0]
        if cacheable:
            cache[key] = rendered
        return rendered

    return render


@pytest.fixture(scope="session", params=PROFILES)
def rendered(request: pytest.FixtureRequest, render_profile: RenderProfile) -> Render:
    """Each profile rendered with its test inventory."""
    profile: str = request.param
    return render_profile(profile)
