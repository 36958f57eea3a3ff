"""Clocks of machines drift; leases must not care. Real processes, one on a clock shifted by
Debian's ``faketime``, beside an honest one, against PostgreSQL.

A process 45 s ahead (leases of 30 s) would see a live lease as expired and take it over; a
process 45 s behind would stamp leases that look expired to everyone else. Both are tried
for each lease: generation claims, task leases and the reaper, run leases.

PostgreSQL only, by nature: an embedded SQLite reads its process's own clock (faketime
shifts it too), and processes that share an SQLite file share one machine and its clock,
so skew between them cannot happen. The SQLite stamps go through the same seam
(db/clock.py), which the interleaving tests exercise on both backends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from genkeep.config import Settings
from genkeep.db.jobs import Audit
from tests.conftest import process_env
from tests.e2e.test_extract_cli import SAMPLES, big_text, query
from tests.integration.test_tasks import submission
from tests.support.fake_openai import FakeOpenAI, ok, slow
from tests.support.server import Server, WorkerProcess, genkeep_command
from tests.support.services import opened_services

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

SKEW_S = 45
LEASE_S = "30"
# Which process runs on the shifted clock: the lease holder 45 s behind (its stamps would
# look expired to everyone) or the process that comes second 45 s ahead (it would see the
# holder's live lease as expired). The two other directions harm nothing even when clocks
# decide, so they would prove nothing.
CASES = [("holder", -SKEW_S), ("intruder", SKEW_S)]


def skewed(seconds: int) -> list[str]:
    """The command prefix that runs a process with its clock shifted by ``seconds``."""
    binary = shutil.which("faketime")
    if binary is None:
        pytest.fail(
            "faketime is not installed; scripts/install-test-tools.sh installs it "
            "(apt-get install faketime)",
            pytrace=False,
        )
    return [binary, "-f", f"{seconds:+d}s"]


# asyncio's timers need a monotonic clock that does not jump: only the wall clock shifts.
FAKETIME_ENV = {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_faketime_really_shifts_the_process_clock(db_url: str) -> None:
    """The yardstick: a process under the prefix reads a clock 45 s ahead."""
    probe = "import time; print(time.time())"
    shifted = subprocess.run(
        [*skewed(SKEW_S), "python3", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **FAKETIME_ENV},
    )
    assert abs(float(shifted.stdout) - time.time() - SKEW_S) < 5


def rows(db_url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    return query(db_url, sql, **params)


def wait_for(predicate: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.mark.parametrize(("who", "shift"), CASES)
def test_generation_claim_is_not_taken_over_by_a_skewed_clock(
    servers: Callable[..., Server], db_url: str, who: str, shift: int
) -> None:
    with FakeOpenAI(slow(4, ok("the one answer"))) as model:
        env = {
            "GENKEEP_PROFILES": '{"default": {"backend": "openai", "model": "m"}}',
            "GENKEEP_OPENAI_BASE_URL": model.base_url,
            "GENKEEP_OPENAI_API_KEY": "test-key",
            "GENKEEP_CLAIM_LEASE_S": LEASE_S,
            **FAKETIME_ENV,
        }
        holder_prefix = skewed(shift) if who == "holder" else None
        intruder_prefix = skewed(shift) if who == "intruder" else None
        holder = servers(prefix=holder_prefix, **env)
        intruder = servers(prefix=intruder_prefix, **env)
        body = {"prompt": "What does a lease protect?"}

        async def both() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60) as client:
                first = asyncio.create_task(client.post(holder.url + "/v1/generate", json=body))
                while model.calls == 0:  # noqa: ASYNC110 - the model runs in another thread
                    await asyncio.sleep(0.02)
                second = await client.post(intruder.url + "/v1/generate", json=body)
                return [await first, second]

        answers = asyncio.run(both())
        assert [a.status_code for a in answers] == [200, 200], answers[1].text
        held, waited = (a.json() for a in answers)
        assert model.calls == 1  # counted at the model: one generator call
        assert held["persisted"] and waited["persisted"]
        assert held["result_id"] == waited["result_id"] and waited["coalesced"]
    assert rows(db_url, "SELECT count(*) FROM results") == [(1,)]


@pytest.mark.parametrize(("who", "shift"), CASES)
async def test_a_skewed_reaper_never_reaps_a_healthy_task(
    workers: Callable[..., WorkerProcess],
    settings: Settings,
    tmp_path: Path,
    db_url: str,
    who: str,
    shift: int,
) -> None:
    env = {"GENKEEP_TASK_LEASE_S": LEASE_S, "GENKEEP_TASK_POLL_S": "0.1", **FAKETIME_ENV}
    async with opened_services(settings, tmp_path) as services:
        job = await services.jobs.create("alice", {"title": "skew"}, Audit("test", "t" * 32))
        task, _ = await services.tasks.submit(
            job, submission("sleep", "skew", steps=40, step_s=0.1), Audit("test", "t" * 32)
        )
        holder = workers(concurrency=1, prefix=skewed(shift) if who == "holder" else None, **env)

        async def running() -> bool:
            found = await services.tasks.get("alice", task.id)
            return found is not None and found.status == "running"

        deadline = time.monotonic() + 60
        while not await running():
            assert time.monotonic() < deadline, holder.log()
            await asyncio.sleep(0.05)
        # The second worker reaps as soon as it starts, then every lease/3: its clock decides
        # nothing, so the healthy holder keeps its task.
        workers(concurrency=1, prefix=skewed(shift) if who == "intruder" else None, **env)
        while (found := await services.tasks.get("alice", task.id)) is not None and (
            found.status not in ("completed", "failed", "cancelled")
        ):
            assert time.monotonic() < deadline + 60
            await asyncio.sleep(0.1)
        async with services.database.reading() as session:
            found_events = await session.execute(
                text(
                    "SELECT event_type FROM job_events WHERE event_type IN "
                    "('task.lease_expired', 'task.failed', 'task.started')"
                )
            )
            events = [tuple(row) for row in found_events]
    assert found is not None
    assert found.status == "completed", found.error
    assert found.attempts == 1
    assert events == [("task.started",)]


@pytest.mark.parametrize(("who", "shift"), CASES)
def test_a_run_never_has_two_executors_across_skewed_clocks(
    db_url: str, tmp_path: Path, who: str, shift: int
) -> None:
    source = tmp_path / "text.md"
    source.write_text(big_text(500_000))  # about half a minute of batches
    env = {
        **process_env(db_url, tmp_path),
        "GENKEEP_EXTRACT_LEASE_S": LEASE_S,
        "PYTHONUNBUFFERED": "1",
        **FAKETIME_ENV,
    }
    args = [
        *("extract", str(source), "--ontology", str(SAMPLES / "ontology.ttl")),
        *("--chunk-size", "300", "--overlap", "30", "--batch-size", "1"),
        *("-o", str(tmp_path / "out.ttl")),
    ]
    full_env = {**os.environ, **env}
    holder_prefix = skewed(shift) if who == "holder" else []
    executor = subprocess.Popen(
        [*holder_prefix, *genkeep_command(), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: bool(
                rows(db_url, "SELECT 1 FROM runs WHERE status = 'running' AND batches_done > 5")
            )
        )
        [(run_id,)] = rows(db_url, "SELECT id FROM runs")
        intruder_prefix = skewed(shift) if who == "intruder" else []
        second = subprocess.run(
            [*intruder_prefix, *genkeep_command(), "runs", "resume", str(run_id)],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        _, err = executor.communicate(timeout=300)
    finally:
        if executor.poll() is None:
            executor.kill()
    # The second process is refused (the text is long enough that the run is still going).
    assert second.returncode != 0 and "is being executed by" in second.stderr, second.stderr
    assert executor.returncode == 0, err
    # Counted at the database: every batch was committed once, by the one executor.
    assert rows(db_url, "SELECT max(attempts) FROM run_batches") == [(1,)]
    [(status, total, done)] = rows(db_url, "SELECT status, total_batches, batches_done FROM runs")
    assert status == "completed" and done == total
