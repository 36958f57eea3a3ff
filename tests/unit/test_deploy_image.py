"""The container image, checked without a container daemon: hadolint on the Dockerfile,
what its final stage sets, and the wheel it installs, built from its build context."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.kubernetes import DOCKERFILE, REPO, image, instructions, reached, tool

PACKAGE = REPO / "src" / "genkeep"


def test_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_image_is_pinned_non_root_and_runs_genkeep() -> None:
    built = image()
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", built.base), built.base
    assert built.entrypoint == ["genkeep"] and built.cmd == ["serve"]
    uid, _, gid = built.user.partition(":")
    assert int(uid) > 0 and int(gid) > 0
    assert built.exposed == [int(built.env["GENKEEP_PORT"])]
    assert reached([*built.entrypoint, *built.cmd]) == "genkeep serve"


def test_the_wheel_from_the_build_context_holds_every_file_of_genkeep(tmp_path: Path) -> None:
    """The image installs genkeep as a wheel, not from a checkout: a file left out of the
    package data (a migration, a sample) would be missing only there."""
    context = tmp_path / "context"
    for source in copied_sources():
        for path in [source, *sorted(source.rglob("*"))] if source.is_dir() else [source]:
            relative = path.relative_to(REPO).as_posix()
            if path.is_file() and not dockerignored(relative):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, context / relative)
    assert sorted(p.name for p in context.iterdir()) == ["README.md", "pyproject.toml", "src"]
    # No network: the build backend is the venv's setuptools (from the test extras).
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            *offline,
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("genkeep-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    needed = {
        f"genkeep/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {"genkeep/db/migrations/versions/0001_prompts_results.py"} <= needed
    assert needed - shipped == set()


def copied_sources() -> list[Path]:
    """What the Dockerfile COPYs from the build context (not from another stage)."""
    sources = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        words = rest.split()
        if keyword == "COPY" and not any(word.startswith("--from") for word in words):
            sources += [REPO / word for word in words[:-1]]
    return sources


def dockerignored(relative: str) -> bool:
    """Whether .dockerignore leaves ``relative`` out of the build context. The subset of its
    syntax used here: ``*`` and ``?`` within one path segment, a leading ``**/``, and ``!``
    to let a path back in; the last matching line decides, as in Docker."""
    ignored = False
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
        if any(_matches(pattern, prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def _matches(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern[3:])
    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    return len(pattern_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(part, wanted)
        for part, wanted in zip(path_parts, pattern_parts, strict=True)
    )
