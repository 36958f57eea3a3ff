"""The README walk-throughs work exactly as written, against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pypdf
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough(heading: str) -> str:
    section = README.read_text().split(f"## {heading}", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"the section {heading!r} has a sh block"
    return match.group(1)


def git_status() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=README.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def run_walkthrough(
    script: str, tmp_path: Path, env: dict[str, str], timeout: float = 180
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``script`` as a reader would, from the repository folder; the scratch folder it
    made with ``mktemp -d`` comes back with the result. The repository stays as it was."""
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    before = git_status()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=README.parent,
        # mktemp -d makes the scratch folder under TMPDIR; PATH finds this venv's genkeep
        # should the checkout have no .venv of its own.
        env={
            **os.environ,
            **env,
            "TMPDIR": str(scratch_root),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # New untracked files are what a walk-through leaves; an edit made meanwhile is not.
    left = [line for line in git_status().splitlines() if line not in before.splitlines()]
    assert not [line for line in left if line.startswith("??")], left
    [scratch] = scratch_root.iterdir()
    return done, scratch


def run(
    script: str, server: Server, tmp_path: Path, db_url: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    assert "GENKEEP=http://127.0.0.1:8000\n" in script
    script = script.replace("GENKEEP=http://127.0.0.1:8000\n", f"GENKEEP={server.url}\n")
    return run_walkthrough(script, tmp_path, {"GENKEEP_DATABASE_URL": db_url})


def test_generate_walkthrough(servers: Callable[..., Server], tmp_path: Path, db_url: str) -> None:
    server = servers()
    done, scratch = run(walkthrough("Five-minute walk-through"), server, tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cached: True" in done.stdout
    assert '"source":"edited"' in done.stdout and '"version":3' in done.stdout
    assert "x-genkeep-content-sha256" in done.stdout.lower()
    assert '"code":"prompt-empty"' in done.stdout
    assert re.search(r"genkeep_generator_calls_total\{.*\} 2\.0", done.stdout), done.stdout
    # Every JSON reply ends its line: none runs into the next output.
    assert '}{"' not in done.stdout and "}HTTP" not in done.stdout
    pdf_text = pypdf.PdfReader(scratch / "note.pdf").pages[0].extract_text()
    # Step 6 exports the latest result (version 3, regenerated), not the edit (2) nor v1.
    assert "Write a short note on durable storage" in " ".join(pdf_text.split())
    assert "Write once" not in pdf_text
    with zipfile.ZipFile(scratch / "note.docx") as docx:
        document = docx.read("word/document.xml").decode()
    assert "durable storage" in document and "Write once" not in document


def test_jobs_walkthrough(servers: Callable[..., Server], tmp_path: Path, db_url: str) -> None:
    server = servers(GENKEEP_TASK_POLL_S="0.2")
    done, scratch = run(walkthrough("Jobs, tasks and artifacts"), server, tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^201\n200$", done.stdout, re.MULTILINE), done.stdout
    assert '"status":"completed","stage":"done"' in done.stdout
    with zipfile.ZipFile(scratch / "report.zip") as bundle:
        assert sorted(bundle.namelist()) == ["quarterly-report.docx", "quarterly-report.pdf"]
        pdf = bundle.read("quarterly-report.pdf")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = " ".join(pypdf.PdfReader(tmp_path / "r.pdf").pages[0].extract_text().split())
    assert "Revenue grew 12%." in text and "Risks" in text
    assert '"event_type":"task.completed"' in done.stdout


def test_extraction_walkthrough(tmp_path: Path, db_url: str) -> None:
    env = {"GENKEEP_DATABASE_URL": db_url, "GENKEEP_DATA_DIR": str(tmp_path / "var")}
    done, scratch = run_walkthrough(walkthrough("Durable extraction"), tmp_path, env, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "@prefix rdfs:" in done.stdout
    assert "cancelled" in done.stdout and "500" in done.stdout  # stopped, chunk size kept
    for name in ("graph.ttl", "graph.jsonld", "spans.jsonl", "long.jsonld"):
        assert (scratch / name).stat().st_size > 0, name
    resumed_graph = (scratch / "long.ttl").read_text()
    assert resumed_graph.count(" a <") > 10
    assert "was already completed" in done.stderr
    assert "genkeep-builtin 1" in done.stdout, done.stdout
    assert re.search(r"mentions\s+0\.\d+\s+0\.\d+\s+0\.\d+", done.stdout), done.stdout
