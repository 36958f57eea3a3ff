"""`genkeep extract` as a user runs it: a real process, SIGKILL mid-run, resume, same bytes."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from genkeep.db.database import Database
from genkeep.extract.chunking import batches as make_batches
from genkeep.extract.chunking import chunk_text
from genkeep.extract.model import ChunkParams
from tests.support.recording_genkeep import calls
from tests.support.server import genkeep_command, run_cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "src" / "genkeep" / "extract" / "samples"


def big_text(target_bytes: int) -> str:
    """About ``target_bytes`` of text: the sample's paragraphs, shuffled deterministically."""
    paragraphs = [p for p in (SAMPLES / "text.md").read_text().split("\n\n") if p.strip()]
    rng = random.Random(2026)
    out: list[str] = []
    size = 0
    while size < target_bytes:
        paragraph = rng.choice(paragraphs)
        out.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(out)


def env_for(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GENKEEP_DATABASE_URL": db_url,
        "GENKEEP_DATA_DIR": str(tmp_path / "var"),
        "GENKEEP_EXTRACT_LEASE_S": "3",
        **extra,
    }


def query(db_url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    async def read() -> list[tuple[object, ...]]:
        database = Database(db_url)
        try:
            async with database.reading() as session:
                return [tuple(row) for row in (await session.execute(text(sql), params)).all()]
        finally:
            await database.dispose()

    return asyncio.run(read())


def progress(db_url: str) -> tuple[int, int, str | None]:
    rows = query(
        db_url, "SELECT batches_done, total_batches, id FROM runs ORDER BY created_at DESC LIMIT 1"
    )
    if not rows:
        return 0, 0, None
    done, total, run_id = rows[0]
    return int(str(done)), int(str(total)), str(run_id)


# (extractor, input bytes, chunk size, batch size): the ner extractor reads ~50x slower.
CRASH_CASES = {"builtin": (2_000_000, 2000, 4), "ner": (20_000, 400, 1)}


@pytest.mark.parametrize("extractor", sorted(CRASH_CASES))
def test_sigkill_then_resume_is_byte_identical(db_url: str, tmp_path: Path, extractor: str) -> None:
    size, chunk_size, batch_size = CRASH_CASES[extractor]
    source = tmp_path / "big.md"
    source.write_text(big_text(size))
    ontology = SAMPLES / "ontology.ttl"
    env = env_for(db_url, tmp_path)
    args = [
        "extract",
        str(source),
        "--ontology",
        str(ontology),
        "--chunk-size",
        str(chunk_size),
        "--overlap",
        "100",
        "--batch-size",
        str(batch_size),
        "--extractor",
        extractor,
    ]
    whole = run_cli([*args, "-o", str(tmp_path / "whole.ttl")], env, timeout=600)
    assert whole.returncode == 0, whole.stderr
    first_run = progress(db_url)[2]

    # The killed run and its resume record every extractor call (tests/support/recording_genkeep).
    record = tmp_path / "calls.log"
    recording = {
        **env,
        "RECORD_EXTRACT_CALLS": str(record),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.recording_genkeep", *args],
        env={**os.environ, **recording},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    total = 1
    kill_at = random.Random().randint(3, 6 if extractor == "ner" else 60)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done, total, run_id = progress(db_url)
        fresh = run_id not in (None, first_run)
        if fresh and total and done >= min(kill_at, total // 2) and done > 0:
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    done_at_kill, total, run_id = progress(db_url)
    assert run_id is not None and 0 < done_at_kill < total
    committed = {
        int(str(index))
        for (index,) in query(
            db_url,
            "SELECT batch_index FROM run_batches WHERE run_id = :r AND status = 'done'",
            r=run_id,
        )
    }
    assert len(committed) == done_at_kill

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.recording_genkeep",
            *["runs", "resume", run_id, "-o", str(tmp_path / "resumed.ttl")],
        ],
        env={**os.environ, **recording},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed.ttl").read_bytes() == (tmp_path / "whole.ttl").read_bytes()
    # Counted at the extractor: the resume asked for each chunk of every batch not committed
    # at the kill exactly once, and for no chunk of a committed batch.
    params = ChunkParams(size=chunk_size, overlap=100, batch_size=batch_size)
    plan = make_batches(chunk_text(source.read_text(), params), batch_size)
    assert len(plan) == total
    by_resume = [index for pid, index in calls(record) if pid != process.pid]
    uncommitted = set(range(total)) - committed
    assert sorted(by_resume) == sorted(c.index for i in uncommitted for c in plan[i])
    left = total - done_at_kill
    assert f"({done_at_kill} from its checkpoint, {left} extracted now)" in resumed.stderr
    [attempts] = query(
        db_url, "SELECT max(attempts), count(*) FROM run_batches WHERE run_id = :r", r=run_id
    )
    # Every batch was committed exactly once: only what was in flight at the kill was redone.
    assert attempts == (1, total)


def start_extract(
    source: Path,
    env: dict[str, str],
    *,
    chunk_size: int,
    batch_size: int,
    extra: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """`genkeep extract` on ``source`` with the sample ontology, stderr captured."""
    return subprocess.Popen(
        [
            *genkeep_command(),
            "extract",
            str(source),
            "--ontology",
            str(SAMPLES / "ontology.ttl"),
            "--chunk-size",
            str(chunk_size),
            "--batch-size",
            str(batch_size),
            *extra,
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def wait_for_batches(db_url: str, process: subprocess.Popen[str], batches: int) -> None:
    """Return once the newest run has committed ``batches``; the process must still run."""
    deadline = time.monotonic() + 120
    while progress(db_url)[0] < batches:
        assert process.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, f"fewer than {batches} batches after 120 s"
        time.sleep(0.05)


def test_ctrl_c_leaves_a_resumable_run(db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "mid.md"
    source.write_text(big_text(150_000))  # hundreds of batches: stopped after 3
    env = env_for(db_url, tmp_path)
    # Run from a folder outside the checkout, with outputs named relative to it.
    here = tmp_path / "elsewhere"
    (here / "out dir").mkdir(parents=True)
    outputs = ("-o", "out dir/spans.jsonl", "-o", "spans.data", "--format", "jsonl")
    process = start_extract(source, env, chunk_size=500, batch_size=1, extra=outputs, cwd=here)
    wait_for_batches(db_url, process, 3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    done, total, run_id = progress(db_url)
    assert run_id is not None and done < total
    hint = re.search(r"resume it with `([^`]+)`", stderr)
    assert hint, stderr
    assert (
        hint[1]
        == f"genkeep runs resume {run_id} -o 'out dir/spans.jsonl' -o spans.data --format jsonl"
    )
    shown = run_cli(["runs", "show", run_id], env)
    assert "cancelled" in shown.stdout
    # The hint, run as it is printed, finishes the run and writes what the first run was to.
    resumed = run_cli(shlex.split(hint[1])[1:], env, timeout=300, cwd=here)
    assert resumed.returncode == 0, resumed.stderr
    assert progress(db_url)[0] == total
    spans = (here / "spans.data").read_bytes()
    assert spans.startswith(b"{") and (here / "out dir" / "spans.jsonl").read_bytes() == spans


def test_runs_cancel_from_another_process_stops_a_running_extract(
    db_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "mid.md"
    source.write_text(big_text(2_000_000))  # thousands of batches: seconds of work to stop
    # The cancel reaches the running process through its run row, read at each heartbeat.
    env = env_for(db_url, tmp_path, GENKEEP_EXTRACT_LEASE_S="1.5")
    process = start_extract(source, env, chunk_size=500, batch_size=1)
    wait_for_batches(db_url, process, 3)
    _, _, run_id = progress(db_url)
    assert run_id is not None
    asked = run_cli(["runs", "cancel", run_id], env)
    assert asked.returncode == 0, asked.stderr
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    done, total, _ = progress(db_url)
    assert 0 < done < total
    assert f"genkeep runs resume {run_id}" in stderr
    [(status,)] = query(db_url, "SELECT status FROM runs WHERE id = :r", r=run_id)
    assert status == "cancelled"


@pytest.mark.parametrize("command", ["serve", "worker", "extract"])
def test_production_refuses_temporary_databases(command: str, tmp_path: Path) -> None:
    env = {
        "GENKEEP_ENV": "production",
        "GENKEEP_DATABASE_URL": "sqlite:///:memory:",
        "GENKEEP_DATA_DIR": str(tmp_path / "var"),
    }
    args = {
        "serve": ["serve", "--port", "0"],
        "worker": ["worker"],
        "extract": [
            "extract",
            str(SAMPLES / "text.md"),
            "--ontology",
            str(SAMPLES / "ontology.ttl"),
        ],
    }[command]
    for url in ("sqlite:///:memory:", f"sqlite:///{tmp_path / 'x.db'}"):
        result = run_cli(args, {**env, "GENKEEP_DATABASE_URL": url}, timeout=60)
        assert result.returncode != 0
        assert "refusing to run in production" in result.stderr, result.stderr


DOCUMENTS = ("graph.ttl", "graph.jsonld", "spans.jsonl")


def outputs_in(folder: Path) -> list[str]:
    return [arg for name in DOCUMENTS for arg in ("-o", str(folder / name))]


def test_sigkill_between_completed_and_outputs_then_resume_writes_them(
    db_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "mid.md"
    source.write_text(big_text(200_000))
    env = env_for(db_url, tmp_path)
    args = ["extract", str(source), "--ontology", str(SAMPLES / "ontology.ttl")]
    args += ["--chunk-size", "2000", "--batch-size", "4"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    killed.mkdir()
    uninterrupted = run_cli([*args, *outputs_in(whole)], env, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    first_run = progress(db_url)[2]

    # The first output is a named pipe nobody reads: opening it blocks, so the process
    # stops right after it committed `completed` and before it writes a byte of output.
    os.mkfifo(killed / "graph.ttl")
    process = subprocess.Popen(
        [*genkeep_command(), *args, *outputs_in(killed)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            _, _, run_id = progress(db_url)
            if run_id not in (None, first_run):
                [(status,)] = query(db_url, "SELECT status FROM runs WHERE id = :r", r=run_id)
                if status == "completed":
                    break
            assert process.poll() is None, "the extract ended before it could be killed"
            assert time.monotonic() < deadline, "the run did not complete"
            time.sleep(0.05)
        time.sleep(0.5)
        assert process.poll() is None, "the process should be waiting to write its outputs"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert run_id is not None
    assert not (killed / "graph.jsonld").exists() and not (killed / "spans.jsonl").exists()
    (killed / "graph.ttl").unlink()

    resumed = run_cli(["runs", "resume", run_id, *outputs_in(killed)], env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id} was already completed" in resumed.stderr
    for name in DOCUMENTS:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    [(attempts, batches)] = query(
        db_url, "SELECT max(attempts), count(*) FROM run_batches WHERE run_id = :r", r=run_id
    )
    assert attempts == 1 and int(str(batches)) > 1  # handing over outputs extracted nothing again


def test_resume_of_a_run_held_by_a_live_process_says_when_its_lease_ends(
    db_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "mid.md"
    source.write_text(big_text(2_000_000))  # thousands of batches: it runs while we try
    env = env_for(db_url, tmp_path)
    process = start_extract(source, env, chunk_size=500, batch_size=1)
    try:
        wait_for_batches(db_url, process, 2)
        _, _, run_id = progress(db_url)
        out = tmp_path / "out.ttl"
        busy = run_cli(["runs", "resume", run_id or "", "-o", str(out)], env)
        assert busy.returncode == 1, busy.stderr
        assert "Traceback" not in busy.stderr
        [line] = busy.stderr.strip().splitlines()
        holder = f"{socket.gethostname()}:{process.pid}:"  # then the process's random id
        assert line.startswith(f"error: run {run_id} is being executed by {holder}"), line
        assert "; its lease ends at" in line and " ns=" not in line, line
        assert re.search(r"its lease ends at \S+ \(in \d+s\)", line), line
        assert not out.exists()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def test_an_empty_text_completes_and_says_there_was_nothing(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("")
    env = env_for(db_url, tmp_path)
    out = tmp_path / "empty.ttl"
    args = ["extract", str(tmp_path / "empty.md"), "--ontology", str(SAMPLES / "ontology.ttl")]
    done = run_cli([*args, "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert "completed: 0 chunks: nothing to extract" in done.stderr
    assert out.read_text().startswith("@prefix")  # empty, but a valid document (I8)
