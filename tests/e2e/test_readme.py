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


def run(script: str, server: Server, cwd: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    assert "GENKEEP=http://127.0.0.1:8000\n" in script
    script = script.replace("GENKEEP=http://127.0.0.1:8000\n", f"GENKEEP={server.url}\n")
    # The walk-through runs `.venv/bin/genkeep` from the repository folder.
    (cwd / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    link = cwd / ".venv" / "bin" / "genkeep"
    if not link.exists():
        link.symlink_to(Path(sys.executable).with_name("genkeep"))
    env = {**os.environ, "GENKEEP_DATABASE_URL": db_url}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_generate_walkthrough(servers: Callable[..., Server], tmp_path: Path, db_url: str) -> None:
    server = servers()
    done = run(walkthrough("Five-minute walk-through"), server, tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cached: True" in done.stdout
    assert '"source":"edited"' in done.stdout and '"version":3' in done.stdout
    assert "x-genkeep-content-sha256" in done.stdout.lower()
    assert '"code":"prompt-empty"' in done.stdout
    assert re.search(r"genkeep_generator_calls_total\{.*\} 2\.0", done.stdout), done.stdout
    pdf_text = pypdf.PdfReader(tmp_path / "note.pdf").pages[0].extract_text()
    # The PDF is the latest version (3, regenerated), not the edit (2).
    assert "Write a short note on durable storage" in " ".join(pdf_text.split())
    assert "Write once" not in pdf_text
    assert (tmp_path / "note.docx").stat().st_size > 0


def test_jobs_walkthrough(servers: Callable[..., Server], tmp_path: Path, db_url: str) -> None:
    server = servers(GENKEEP_TASK_POLL_S="0.2")
    done = run(walkthrough("Jobs, tasks and artifacts"), server, tmp_path, db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^201\n200$", done.stdout, re.MULTILINE), done.stdout
    assert '"status":"completed","stage":"done"' in done.stdout
    with zipfile.ZipFile(tmp_path / "report.zip") as bundle:
        assert sorted(bundle.namelist()) == ["quarterly-report.docx", "quarterly-report.pdf"]
        pdf = bundle.read("quarterly-report.pdf")
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = " ".join(pypdf.PdfReader(tmp_path / "r.pdf").pages[0].extract_text().split())
    assert "Revenue grew 12%." in text and "Risks" in text
    assert '"event_type":"task.completed"' in done.stdout


def test_extraction_walkthrough(tmp_path: Path, db_url: str) -> None:
    script = walkthrough("Durable extraction")
    (tmp_path / "src").symlink_to(README.parent / "src")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "genkeep").symlink_to(Path(sys.executable).with_name("genkeep"))
    env = {**os.environ, "GENKEEP_DATABASE_URL": db_url, "GENKEEP_DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "@prefix rdfs:" in done.stdout
    assert "cancelled" in done.stdout and "500" in done.stdout  # stopped, chunk size kept
    resumed_graph = (tmp_path / "long.ttl").read_text()
    assert resumed_graph.count(" a <") > 10
    assert re.search(r"genkeep-builtin 1\s+0\.\d+\s+0\.\d+\s+0\.\d+", done.stdout), done.stdout
