"""One run across a fleet of worker processes, on both databases (issue 24, I19).

A helper SIGKILLed mid-batch: its batch is taken over once its lease ends, and the fake
model never sees a second call for a committed batch. A cancel from the API stops every
worker at its batch boundary (each worker's share recorded), and a resume spreads again.
The documents are compared, byte for byte, with those of a one-process run.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from genkeep.config import Settings
from genkeep.services import close_services, open_services
from tests.e2e.test_console import BROWSER_ONLY
from tests.e2e.test_console import wait_until as wait_in_page
from tests.e2e.test_extract_cli import SAMPLES, env_for, query
from tests.e2e.test_extract_llm import committed, llm_env, numbered_text, plan_of
from tests.support.fake_openai import CHAT_PATH, FakeOpenAI, extraction_answer, slow
from tests.support.in_process import in_process
from tests.support.server import Server, WorkerProcess, genkeep_command, pid_of

pytestmark = pytest.mark.e2e

TEXT = numbered_text(24_000)
PARAMS = {"chunk_size": 1000, "overlap": 100, "batch_size": 2}  # test_extract_llm's PARAMS
HOLD = 6  # model calls answered before the fake holds every later one
# Short leases and polls: a dead worker's batch is free within two seconds.
FLEET = {
    "GENKEEP_EXTRACT_LEASE_S": "2",
    "GENKEEP_EXTRACT_POLL_S": "0.05",
    "GENKEEP_EXTRACT_CONCURRENCY": "1",
    "GENKEEP_EXTRACT_FLEET_SLOTS": "1",
}
DOCUMENTS = ("turtle", "jsonld", "jsonl")
# The extractor's model has a profile with a provider limit: 10 calls a second, whoever calls.
RPM = 600
LIMITED = {"default": {}, "extract": {"backend": "openai", "model": "gpt-fake-extract", "rpm": RPM}}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(answer=extraction_answer) as server:
        yield server


def _settings(fake: FakeOpenAI, database_url: str, folder: Path, **more: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=folder / "var",
        extract_llm_model="gpt-fake-extract",
        openai_base_url=fake.base_url,
        openai_api_key="sk-fake-extract",
        openai_max_retries=0,
        extract_concurrency=1,
        _env_file=None,
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The documents of the same run executed by one process alone (its own model server)."""
    folder = tmp_path_factory.mktemp("one-process")

    async def one_process(settings: Settings) -> dict[str, bytes]:
        services = await open_services(settings)
        try:
            extraction = services.extraction
            request = extraction.setup.request(
                TEXT, "in.md", (SAMPLES / "ontology.ttl").read_bytes(), "ontology.ttl"
            )
            run = await extraction.create(settings.default_owner, request, "llm")
            inputs = await extraction.inputs(run)
            status = await extraction.runner().execute(run, inputs, asyncio.Event())
            assert status == "completed"
            done = await services.runs.require(settings.default_owner, run.id)
            assert done.outputs is not None
            return {n: await services.blobs.get(done.outputs[n]["key"]) for n in DOCUMENTS}
        finally:
            await close_services(services)

    with FakeOpenAI(answer=extraction_answer) as fake:
        settings = _settings(
            fake,
            f"sqlite:///{folder / 'one.db'}",
            folder,
            extract_chunk_size=PARAMS["chunk_size"],
            extract_overlap=PARAMS["overlap"],
            extract_batch_size=PARAMS["batch_size"],
        )
        return asyncio.run(one_process(settings))


def running(db_url: str, run_id: str) -> dict[int, str]:
    """The batches leased now, and their holders."""
    rows = query(
        db_url,
        "SELECT batch_index, holder FROM run_batches WHERE run_id = :r AND status = 'running'",
        r=run_id,
    )
    return {int(str(index)): str(holder) for index, holder in rows}


def holders(db_url: str, run_id: str, indexes: set[int] | None = None) -> Counter[str]:
    """Committed batches per worker (of ``indexes`` only, if given)."""
    rows = query(
        db_url,
        "SELECT batch_index, holder FROM run_batches WHERE run_id = :r AND status = 'done'",
        r=run_id,
    )
    return Counter(
        str(holder) for index, holder in rows if indexes is None or int(str(index)) in indexes
    )


def latest_run(db_url: str) -> str | None:
    rows = query(db_url, "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
    return str(rows[0][0]) if rows else None


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def three_on_the_model(fake: FakeOpenAI, db_url: str) -> Callable[[], bool]:
    """Three calls held at the model, by three different workers, each holding a batch."""

    def check() -> bool:
        run_id = latest_run(db_url)
        state = (fake.held, run_id and running(db_url, run_id))
        if [state] != seen[-1:]:
            seen.append(state)
            print("held, leased:", state)  # shown when the test fails
        return fake.held == 3 and len(set((state[1] or {}).values())) == 3

    seen: list[object] = []

    return check


def test_a_worker_killed_mid_batch_is_taken_over_and_nothing_committed_is_asked_again(
    fake: FakeOpenAI, db_url: str, tmp_path: Path, reference: dict[str, bytes]
) -> None:
    _, plan = plan_of(TEXT)
    source = tmp_path / "in.md"
    source.write_text(TEXT)
    outputs = {name: tmp_path / f"fleet.{name}" for name in DOCUMENTS}
    env = {**env_for(db_url, tmp_path), **llm_env(fake), **FLEET}
    fake.hold_after(HOLD)
    command = [*genkeep_command(), "extract", str(source), "--ontology"]
    command += [str(SAMPLES / "ontology.ttl"), "--extractor", "llm", "--workers", "3"]
    command += ["--chunk-size", "1000", "--overlap", "100", "--batch-size", "2"]
    for path in outputs.values():
        command += ["-o", str(path)]
    log = tmp_path / "extract.log"
    with log.open("wb") as sink:
        # A session of its own: the helpers it starts go with it, whatever the test's end.
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        wait_until(three_on_the_model(fake, db_url), f"three workers held: {log.read_text()}")
        run_id = latest_run(db_url)
        assert run_id is not None
        leased = running(db_url, run_id)
        victim_index, victim = next((i, h) for i, h in leased.items() if pid_of(h) != process.pid)
        os.kill(pid_of(victim), signal.SIGKILL)
        done_at_kill = committed(db_url, run_id)
        cut_off = {c.text for c in plan[victim_index]} & set(fake.prompts()[HOLD:])
        fake.release()
        process.wait(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == 0, log.read_text()
    assert committed(db_url, run_id) == set(range(len(plan)))
    # Taken over after its lease, by another worker.
    assert victim not in holders(db_url, run_id, {victim_index})
    prompts = Counter(fake.prompts())
    assert set(prompts) == {c.text for batch in plan for c in batch}
    # The model never saw a second call for a committed batch: the one prompt asked twice is
    # the call the kill cut off (answers the victim got before are served from the cache).
    assert len(cut_off) == 1
    assert {prompt for prompt, n in prompts.items() if n > 1} == cut_off
    assert all(prompts[c.text] == 1 for index in done_at_kill for c in plan[index])
    assert {name: path.read_bytes() for name, path in outputs.items()} == reference


async def test_cancel_from_the_api_stops_every_worker_at_its_boundary_and_resume_spreads(
    fake: FakeOpenAI,
    db_url: str,
    tmp_path: Path,
    workers: Callable[..., WorkerProcess],
    reference: dict[str, bytes],
) -> None:
    _, plan = plan_of(TEXT)
    fake.hold_after(HOLD)
    for _ in range(2):
        workers(concurrency=1, **{**llm_env(fake), **FLEET})
    settings = _settings(
        fake,
        db_url,
        tmp_path,
        blob_dir=tmp_path / "blobs",  # the workers' (tests/conftest.py)
        extract_lease_s=2.0,
        extract_poll_s=0.05,
    )
    body = {
        "text": TEXT,
        "ontology": (SAMPLES / "ontology.ttl").read_text(),
        "extractor": "llm",
        "concurrency": 3,
        **PARAMS,
    }
    async with in_process(settings) as app:
        created = await app.client.post("/v1/runs", json=body)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        await asyncio.to_thread(wait_until, three_on_the_model(fake, db_url), "three workers")
        done_before = await asyncio.to_thread(committed, db_url, run_id)
        cancelled = await app.client.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        fake.release()

        async def status() -> str:
            return str((await app.client.get(f"/v1/runs/{run_id}")).json()["status"])

        for _ in range(15000):
            if await status() == "cancelled":
                break
            await asyncio.sleep(0.02)
        assert await status() == "cancelled"
        # Every worker finished the batch it held, and none claimed another.
        stopped = await asyncio.to_thread(committed, db_url, run_id)
        calls = fake.calls
        await asyncio.sleep(0.3)  # six idle polls of each worker
        assert await asyncio.to_thread(committed, db_url, run_id) == stopped
        assert fake.calls == calls
        assert len(stopped) == len(done_before) + 3
        assert not await asyncio.to_thread(running, db_url, run_id)
        shares = await asyncio.to_thread(holders, db_url, run_id, stopped - done_before)
        assert len(shares) == 3 and set(shares.values()) == {1}

        fake.default = slow(0.1)  # each batch long enough for the workers' polls to see it
        resumed = await app.client.post(f"/v1/runs/{run_id}/resume")
        assert resumed.status_code == 202, resumed.text
        for _ in range(15000):
            if await status() in ("completed", "failed"):
                break
            await asyncio.sleep(0.02)
        assert await status() == "completed"
        rest = set(range(len(plan))) - stopped
        # The resume spread again.
        assert len(await asyncio.to_thread(holders, db_url, run_id, rest)) >= 2
        workers_page = (await app.client.get(f"/v1/runs/{run_id}/workers")).json()
        assert len(workers_page["workers"]) == 3  # the console's run page shows these
        assert sum(w["batches"] for w in workers_page["workers"]) == len(plan)
        assert workers_page["batches_per_s"] > 0
        run = await app.services.runs.require(settings.default_owner, run_id)
        assert run.outputs is not None
        documents = {n: await app.services.blobs.get(run.outputs[n]["key"]) for n in DOCUMENTS}
    assert documents == reference
    prompts = Counter(fake.prompts())
    assert set(prompts.values()) == {1}  # the cancel cut no call off


async def test_the_provider_limit_holds_across_the_workers_counted_at_the_model(
    fake: FakeOpenAI,
    db_url: str,
    tmp_path: Path,
    workers: Callable[..., WorkerProcess],
) -> None:
    fake.hold_after(0)  # every worker at the model before the run goes on
    for _ in range(2):
        workers(concurrency=1, GENKEEP_PROFILES=json.dumps(LIMITED), **{**llm_env(fake), **FLEET})
    settings = _settings(
        fake,
        db_url,
        tmp_path,
        blob_dir=tmp_path / "blobs",
        extract_lease_s=2.0,
        extract_poll_s=0.05,
        profiles=LIMITED,
    )
    body = {
        "text": TEXT,
        "ontology": (SAMPLES / "ontology.ttl").read_text(),
        "extractor": "llm",
        "concurrency": 3,
        **PARAMS,
    }
    async with in_process(settings) as app:
        created = await app.client.post("/v1/runs", json=body)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        await asyncio.to_thread(wait_until, three_on_the_model(fake, db_url), "three workers")
        fake.release()
        for _ in range(15000):
            status = (await app.client.get(f"/v1/runs/{run_id}")).json()["status"]
            if status != "running":
                break
            await asyncio.sleep(0.02)
        assert status == "completed"
        shares = (await app.client.get(f"/v1/runs/{run_id}/workers")).json()["workers"]
    assert len(shares) == 3
    # Counted where the provider counts: at the model. The bucket admits one call each
    # 60/RPM s, so no second holds more than RPM/60 calls (one more for arrival jitter).
    arrivals = sorted(r.at for r in fake.requests if r.path == CHAT_PATH)
    assert len(arrivals) == len(plan_of(TEXT)[0])
    busiest = max(bisect.bisect_left(arrivals, at + 1.0) - i for i, at in enumerate(arrivals))
    assert busiest <= RPM // 60 + 1, arrivals
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 2) * 60 / RPM


def to_fixed_2(value: float) -> str:
    """What JavaScript's `value.toFixed(2)` prints: a tie rounds up, where Python's format
    rounds to even (2.625 is "2.63" on the page and "2.62" from an f-string)."""
    return str(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@BROWSER_ONLY
def test_the_run_page_shows_each_workers_batches_and_throughput_as_the_run_goes(
    fake: FakeOpenAI,
    servers: Callable[..., Server],
    workers: Callable[..., WorkerProcess],
    page: Page,
) -> None:
    _, plan = plan_of(TEXT)
    server = servers(**{**llm_env(fake), **FLEET})
    workers(concurrency=1, **{**llm_env(fake), **FLEET})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    fake.hold_after(0)  # nothing is committed until the page shows the run
    body = {
        "text": TEXT,
        "ontology": (SAMPLES / "ontology.ttl").read_text(),
        "extractor": "llm",
        "concurrency": 2,
        **PARAMS,
    }
    created = httpx.post(f"{server.url}/v1/runs", json=body, timeout=30)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    page.goto(f"{server.url}/console/runs/{run_id}")
    expect(page.locator("#workers-rate")).to_have_text("No batch committed yet.")
    wait_until(lambda: fake.held == 2, "both workers at the model")
    fake.default = slow(0.15)  # the run lasts a few seconds after the two held calls
    fake.release()
    # The table follows the run's events while it runs (not only on load and at the end).
    shown = "[...document.querySelectorAll('#workers tbody tr td:nth-child(2)')]"
    total = f"{shown}.reduce((n, td) => n + Number(td.textContent), 0)"
    running_with_rows = (
        f"document.body.dataset.runStatus === 'running' && {total} > 0"
        " && Number(document.body.dataset.workersRead) >= 2"
    )
    wait_in_page(page, running_with_rows)
    expect(page.locator("#run-status")).to_have_text("completed", timeout=60_000)
    # Both workers' shares, adding up to the run, each with its throughput, and the fleet's.
    rows = page.locator("#workers tbody tr")
    expect(rows).to_have_count(2)
    wait_in_page(page, f"{total} === {len(plan)}")
    expected = httpx.get(f"{server.url}/v1/runs/{run_id}/workers").json()
    for row, worker in zip(rows.all(), expected["workers"], strict=True):
        expect(row.locator("td")).to_have_text(
            [
                worker["worker"],
                str(worker["batches"]),
                f"{to_fixed_2(worker['batches_per_s'])} batches/s",
            ]
        )
    expect(page.locator("#workers-rate")).to_have_text(
        f"2 workers · {to_fixed_2(expected['batches_per_s'])} batches/s together"
    )
    # Read as the events came, never more than about once a second: not once per batch.
    reads = sum(1 for url in requests if url.endswith(f"/v1/runs/{run_id}/workers"))
    assert 2 <= reads < len(plan), requests
