"""The import contract of `make lint`: kept by the tree, broken by one upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the tree under ``root`` (its src/ and pyproject.toml)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_tree_keeps_the_contract(tmp_path: Path) -> None:
    done = lint_imports(copy_tree(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    models = root / "src" / "genkeep" / "db" / "models" / "jobs.py"
    models.write_text(models.read_text() + "\nimport genkeep.api  # noqa\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "Rooms import downward only BROKEN" in done.stdout
    assert "genkeep.db is not allowed to import genkeep.api" in done.stdout
    assert "genkeep.db.models.jobs -> genkeep.api" in done.stdout


def test_a_circle_inside_a_room_breaks_the_contract(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    # The worker's registry imports the task modules; a task module importing it back closes
    # the circle the catalogue removed.
    task = root / "src" / "genkeep" / "worker" / "generate_task.py"
    task.write_text(task.read_text() + "\nimport genkeep.worker.registry  # noqa\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "No circle between the modules (or subpackages) of any room BROKEN" in done.stdout
    assert "No cycles are allowed in genkeep.worker." in done.stdout
    assert "- .registry -> .generate_task (1 import)" in done.stdout
