"""extractor="llm" end to end against the fake OpenAI-compatible server: `genkeep extract`
interrupted by Ctrl-C and resumed, and an extract task whose worker is SIGKILLed. Model calls
are counted at the fake server, committed batches read from the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from rdflib import Graph

from genkeep.extract.chunking import batches as make_batches
from genkeep.extract.chunking import chunk_text
from genkeep.extract.model import Chunk, ChunkParams
from tests.e2e.test_extract_cli import SAMPLES, big_text, env_for, progress, query
from tests.support.fake_openai import FakeOpenAI, extraction_answer
from tests.support.server import Server, WorkerProcess, genkeep_command, run_cli

pytestmark = pytest.mark.e2e

PARAMS = ChunkParams(size=1000, overlap=100, batch_size=2)
HOLD_AFTER = 6  # answered before the interruption: three batches' worth


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(answer=extraction_answer) as server:
        yield server


def llm_env(fake: FakeOpenAI) -> dict[str, str]:
    return {
        "GENKEEP_EXTRACT_LLM_MODEL": "gpt-fake-extract",
        "GENKEEP_OPENAI_BASE_URL": fake.base_url,
        "GENKEEP_OPENAI_API_KEY": "sk-fake-extract",
        "GENKEEP_OPENAI_MAX_RETRIES": "0",
        "GENKEEP_EXTRACT_CONCURRENCY": "2",
    }


def numbered_text(target_bytes: int) -> str:
    """The sample's paragraphs, each numbered, so no two chunks have the same text."""
    paragraphs = big_text(target_bytes).split("\n\n")
    return "\n\n".join(f"Part {i}. {p}" for i, p in enumerate(paragraphs))


def plan_of(text: str) -> tuple[list[Chunk], list[list[Chunk]]]:
    chunks = chunk_text(text, PARAMS)
    # Chunk texts are distinct, so a prompt names its chunk (and a cache hit cannot hide one).
    assert len({c.text for c in chunks}) == len(chunks)
    return chunks, make_batches(chunks, PARAMS.batch_size)


def committed(db_url: str, run_id: str) -> set[int]:
    rows = query(
        db_url,
        "SELECT batch_index FROM run_batches WHERE run_id = :r AND status = 'done'",
        r=run_id,
    )
    return {int(str(index)) for (index,) in rows}


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_ctrl_c_then_resume_asks_the_model_once_per_chunk(
    fake: FakeOpenAI, db_url: str, tmp_path: Path
) -> None:
    text = numbered_text(40_000)
    source = tmp_path / "in.md"
    source.write_text(text)
    chunks, plan = plan_of(text)
    env = {**env_for(db_url, tmp_path), **llm_env(fake)}
    args = [
        "extract",
        str(source),
        "--ontology",
        str(SAMPLES / "ontology.ttl"),
        "--extractor",
        "llm",
        "--chunk-size",
        str(PARAMS.size),
        "--overlap",
        str(PARAMS.overlap),
        "--batch-size",
        str(PARAMS.batch_size),
    ]
    fake.hold_after(HOLD_AFTER)
    process = subprocess.Popen(
        [*genkeep_command(), *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: fake.held == 2, "both extraction workers to wait on the model")
    process.send_signal(signal.SIGINT)  # stops at the next batch boundary
    fake.release()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    _, total, run_id = progress(db_url)
    assert run_id is not None and total == len(plan)
    done = committed(db_url, run_id)
    assert 0 < len(done) < total
    before = len(fake.prompts())

    resumed = run_cli(["runs", "resume", run_id, "-o", str(tmp_path / "resumed.ttl")], env)
    assert resumed.returncode == 0, resumed.stderr
    by_resume = fake.prompts()[before:]
    # Counted at the model: no call for a committed batch; each other chunk asked once.
    assert sorted(by_resume) == sorted(c.text for i in set(range(total)) - done for c in plan[i])
    assert Counter(fake.prompts()) == Counter(c.text for c in chunks)
    graph = (tmp_path / "resumed.ttl").read_bytes()
    assert len(Graph().parse(data=graph, format="turtle")) > 10  # the fake's answers, grounded

    # A new run of the same text, in a new process, is answered from the database cache.
    again = run_cli([*args, "-o", str(tmp_path / "again.ttl")], env)
    assert again.returncode == 0, again.stderr
    assert len(fake.prompts()) == len(chunks)
    assert (tmp_path / "again.ttl").read_bytes() == graph


async def test_an_llm_extract_task_resumes_after_its_worker_is_killed(
    fake: FakeOpenAI,
    servers: Callable[..., Server],
    workers: Callable[..., WorkerProcess],
    db_url: str,
) -> None:
    text = numbered_text(40_000)
    chunks, plan = plan_of(text)
    env = {**llm_env(fake), "GENKEEP_TASK_LEASE_S": "1", "GENKEEP_EXTRACT_LEASE_S": "2"}
    server = servers(GENKEEP_SERVE_WORKER="false", **env)
    doomed = workers(**env)
    fake.hold_after(HOLD_AFTER)
    payload = {
        "text": text,
        "ontology": (SAMPLES / "ontology.ttl").read_text(),
        "extractor": "llm",
        "chunk_size": PARAMS.size,
        "overlap": PARAMS.overlap,
        "batch_size": PARAMS.batch_size,
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        job = (await client.post("/v1/jobs", json={"title": "llm"})).json()["id"]
        created = await client.post(
            f"/v1/jobs/{job}/tasks",
            json={"kind": "extract", "payload": payload},
            headers={"Idempotency-Key": "llm-extract"},
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        await asyncio.to_thread(wait_until, lambda: fake.held == 2, "both workers on the model")
        doomed.signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        done = await asyncio.to_thread(committed, db_url, task_id)  # the run id is the task id
        answered = set(fake.prompts()[:HOLD_AFTER])
        before = len(fake.prompts())
        fake.release()
        workers(**env)
        for _ in range(600):
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            if task["status"] in ("completed", "failed", "cancelled"):
                break
            await asyncio.sleep(0.1)
        assert task["status"] == "completed", task
        artifacts = (await client.get(f"/v1/jobs/{job}/artifacts")).json()
    assert 0 < len(done) < len(plan)
    assert {a["kind"] for a in artifacts} >= {"ttl", "jsonld", "jsonl"}
    assert task["result"]["batches"] == len(plan) and task["attempts"] == 2
    by_resume = fake.prompts()[before:]
    # No model call for a committed batch, nor for a chunk answered before the kill (cached);
    # only the two requests the kill cut off are asked twice.
    uncommitted = {c.text for i in set(range(len(plan))) - done for c in plan[i]}
    assert sorted(by_resume) == sorted(uncommitted - answered)
    asked_twice = {p for p, n in Counter(fake.prompts()).items() if n > 1}
    assert len(asked_twice) == 2 and set(fake.prompts()) == {c.text for c in chunks}


def test_a_keyless_local_server_needs_no_api_key(
    fake: FakeOpenAI, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As Ollama or vLLM are run: a base URL and a model, no key anywhere.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    env = {**env_for(db_url, tmp_path), **llm_env(fake)}
    del env["GENKEEP_OPENAI_API_KEY"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["extract", str(SAMPLES / "text.md"), "--ontology", str(SAMPLES / "ontology.ttl")]
    result = run_cli(
        [*args, "--extractor", "llm", "-o", str(tmp_path / "graph.ttl")], env, cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert fake.calls > 0
    [(extractor, status)] = query(db_url, "SELECT extractor_name, status FROM runs")
    assert (extractor, status) == ("genkeep-llm", "completed")
    assert len(Graph().parse(tmp_path / "graph.ttl", format="turtle")) > 10
