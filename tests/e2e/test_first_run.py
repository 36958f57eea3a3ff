"""A new user's first run: the CLI from any folder, on nothing but a home directory.

No GENKEEP_* setting and no `genkeep db upgrade`: the embedded database is made in the
user's data folder on first use, and the server that `make run` starts sees the same runs.
These are about the embedded default, so they run on SQLite only by design.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.jobs import confirmed_job, export_markdown
from tests.support.server import free_port, genkeep_command

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "genkeep" / "extract" / "samples"


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """This machine's environment without any genkeep or XDG setting, HOME moved to ``home``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GENKEEP_", "XDG_")) and name != "DATABASE_URL"
    }
    return {**env, "HOME": str(home), **extra}


def genkeep(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*genkeep_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def make_run_recipe() -> list[list[str]]:
    """The commands of the Makefile's `run` target, with this environment's genkeep."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has a run target"
    bin_dir = Path(sys.executable).parent
    return [
        shlex.split(line.strip().replace("$(BIN)/", f"{bin_dir}/"))
        for line in recipe.group(1).splitlines()
    ]


def test_first_run_from_any_folder(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "somewhere" / "else"
    home.mkdir()
    work.mkdir(parents=True)
    (work / "notes.md").write_text((SAMPLES / "text.md").read_text())
    (work / "onto.ttl").write_bytes((SAMPLES / "ontology.ttl").read_bytes())
    env = bare_env(home)
    data = home / ".local" / "share" / "genkeep"

    extracted = genkeep(
        ["extract", "notes.md", "--ontology", "onto.ttl", "-o", "out.ttl"], work, env
    )
    assert extracted.returncode == 0, extracted.stderr
    assert f"created the database {data / 'genkeep.db'}" in extracted.stderr
    found = re.search(r"run (\S+) completed: .* entities; turtle -> out.ttl", extracted.stderr)
    assert found, extracted.stderr
    run_id = found.group(1)
    assert (work / "out.ttl").read_text().startswith("@prefix")

    listed = genkeep(["runs", "list"], work, env)
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr

    resumed = genkeep(
        ["runs", "resume", run_id, "-o", "out.jsonld", "-o", "spans.jsonl"], work, env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "already completed" in resumed.stderr
    assert json.loads((work / "out.jsonld").read_text())
    assert all(json.loads(line) for line in (work / "spans.jsonl").read_text().splitlines())

    generated = genkeep(["generate", "A first note", "--json"], work, env)
    assert generated.returncode == 0, generated.stderr
    prompt_id = json.loads(generated.stdout)["prompt_id"]

    # Nothing of genkeep's own landed in the folder it ran from; it all went to the data dir.
    assert sorted(p.name for p in work.iterdir()) == [
        "notes.md",
        "onto.ttl",
        "out.jsonld",
        "out.ttl",
        "spans.jsonl",
    ]
    assert (data / "genkeep.db").is_file()

    # The server `make run` starts, from yet another folder, sees what the CLI made.
    port = free_port()
    *setup, serve = make_run_recipe()
    for command in setup:
        done = subprocess.run(
            command, cwd=home, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
    server = subprocess.Popen(
        serve,
        cwd=home,
        env={**env, "GENKEEP_PORT": str(port)},  # a free port: 8000 may be taken here
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        runs = httpx.get(f"{url}/v1/runs", timeout=10).json()
        assert run_id in [r["id"] for r in runs]
        assert httpx.get(f"{url}/v1/prompts/{prompt_id}", timeout=10).status_code == 200
        # Downloads are signed for the port the server runs on, with nothing else set.
        assert _exported_download(url).startswith(f"{url}/v1/blobs/")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def _exported_download(url: str) -> str:
    """Export a job through the server's own worker; the artifact's signed download URL."""
    with httpx.Client(base_url=url, timeout=30) as client:
        job = confirmed_job(client, "First")
        task = export_markdown(client, job["id"], "first-export")
        deadline = time.monotonic() + 60
        while (task := client.get(f"/v1/tasks/{task['id']}").json())["status"] != "completed":
            assert task["status"] in ("queued", "running") and time.monotonic() < deadline, task
            time.sleep(0.2)
        artifact = client.get(f"/v1/jobs/{job['id']}/artifacts").json()[0]
        download = client.get(f"/v1/artifacts/{artifact['id']}/download")
        assert download.status_code == 302, download.text
        fetched = httpx.get(download.headers["location"], timeout=30)
        assert fetched.status_code == 200 and fetched.text.startswith("# First"), fetched.text
        return download.headers["location"]


def test_a_per_folder_database_of_an_older_genkeep_is_noted_once(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = bare_env(home)
    # What an older genkeep left: its database in ./var of the folder it ran in.
    old = bare_env(home, GENKEEP_DATA_DIR="var")
    args = ["extract", str(SAMPLES / "text.md"), "--ontology", str(SAMPLES / "ontology.ttl")]
    made = genkeep(args, project, old)
    assert made.returncode == 0, made.stderr
    old_run = re.search(r"run (\S+) completed", made.stderr)
    assert old_run and (project / "var" / "genkeep.db").is_file()

    first = genkeep(["runs", "list"], project, env)
    assert first.returncode == 0, first.stderr
    legacy = project.resolve() / "var" / "genkeep.db"
    assert f"note: {legacy} is the per-folder database of an older genkeep" in first.stderr
    assert f"GENKEEP_DATA_DIR={legacy.parent}" in first.stderr
    assert old_run.group(1) not in first.stdout  # a new, empty store: said, not silent
    second = genkeep(["runs", "list"], project, env)
    assert second.returncode == 0 and "note:" not in second.stderr
    # Following the note reaches the old runs.
    kept = genkeep(["runs", "list"], project, old)
    assert old_run.group(1) in kept.stdout and "note:" not in kept.stderr


def test_first_use_by_several_processes_at_once(tmp_path: Path) -> None:
    """`make run` and a CLI started together on a new data dir: one migrates, all work."""
    home = tmp_path / "home"
    home.mkdir()
    env = bare_env(home)
    processes = [
        subprocess.Popen(
            [*genkeep_command(), "runs", "list"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in processes]
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    assert sum("created the database" in stderr for _, stderr in results) == 1, results
