"""What a year of history costs the hot paths and the lists, on PostgreSQL (issue 20).

Two databases in one run, filled by SQL with N prompts (each with a result), N finished tasks
(queued, then running, then completed, so the triggers write their change rows; three events
each) and N / 10 jobs: a baseline with just the 200 pages the lists read (N = 10,000; an empty
one would compare 50 rows served against none) and one with ``--rows``. A real ``genkeep
serve`` on each, measured in alternating rounds so that a shared machine's load falls on both;
over HTTP: cache-hit req/s (keys at random from 500 stored prompts), enqueue+drain of no-op
tasks, claim latency (submit to running), the first and the 200th page of each list, /metrics
and the duplicate check. Goals: hot paths >= 0.85x the baseline; list pages and /metrics
<= 2x its latency.

    python benchmarks/scale_bench.py --rows 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from benchmarks.databases import throwaway_database  # noqa: E402
from tests.support.server import Server  # noqa: E402

OWNER = "default"
PAGE = 50
DEEP_PAGE = 200
BASELINE_ROWS = PAGE * DEEP_PAGE
HOT_KEYS = 500
RESULTS = ROOT / "benchmarks" / "results"

# The fill: one statement per table, all in the database (no row crosses the socket).
FILL = [
    # prompts with their results, one second apart, newest last
    """INSERT INTO prompts (id, owner_id, profile_name, profile_key, normalized_hash,
           normalized_text, prompt_text, status, attempts, latest_result_id, latest_version,
           created_at, updated_at)
       SELECT 'p-' || n, '{owner}', 'default', 'bench', md5(n::text), 'prompt ' || n,
              'Prompt ' || n, 'ready', 1, 'r-' || n, 1,
              now() - make_interval(secs => {rows} - n), now()
       FROM generate_series(1, {rows}) AS n""",
    """INSERT INTO results (id, prompt_id, owner_id, version, source, content, content_sha256,
           model, created_at)
       SELECT 'r-' || n, 'p-' || n, '{owner}', 1, 'generated', repeat('x', 200), md5(n::text),
              'bench', now() - make_interval(secs => {rows} - n)
       FROM generate_series(1, {rows}) AS n""",
    """INSERT INTO jobs (id, owner_id, title, sections, sections_confirmed, schema_dirty,
           version, created_at, updated_at)
       SELECT 'j-' || n, '{owner}', 'Job ' || n, '[]', false, false, 1,
              now() - make_interval(secs => {jobs} - n), now()
       FROM generate_series(1, {jobs}) AS n""",
    # finished tasks as the queue leaves them: each state change through the triggers
    """INSERT INTO tasks (id, owner_id, job_id, kind, idempotency_key, request_hash, payload,
           status, progress, attempts, max_attempts, run_after, cancel_requested, trace_id,
           created_at, updated_at)
       SELECT 't-' || n, '{owner}', 'j-' || (1 + n % {jobs}), 'noop', 'k-' || n, md5(n::text),
              '{{}}', 'queued', 0, 0, 3, now() - make_interval(secs => {rows} - n), false,
              md5(n::text), now() - make_interval(secs => {rows} - n), now()
       FROM generate_series(1, {rows}) AS n""",
    "UPDATE tasks SET status = 'running', stage = 'starting', attempts = 1, "
    "started_at = updated_at WHERE id LIKE 't-%'",
    "UPDATE tasks SET status = 'completed', stage = 'done', progress = 1, "
    "finished_at = updated_at WHERE id LIKE 't-%'",
    """INSERT INTO job_events (job_id, owner_id, event_type, payload, trace_id, actor, created_at)
       SELECT 'j-' || (1 + n % {jobs}), '{owner}', kind, '{{}}', md5(n::text), 'bench',
              now() - make_interval(secs => {rows} - n)
       FROM generate_series(1, {rows}) AS n,
            unnest(ARRAY['task.created', 'task.started', 'task.completed']) AS kind""",
    "VACUUM ANALYZE",
]


async def fill(url: str, rows: int) -> float:
    started = time.perf_counter()
    connection = await asyncpg.connect(url)
    try:
        for statement in FILL:
            await connection.execute(
                statement.format(owner=OWNER, rows=rows, jobs=max(1, rows // 10))
            )
    finally:
        await connection.close()
    return time.perf_counter() - started


async def deep_cursor(url: str, table: str) -> str | None:
    """The cursor of the 200th page of ``table``'s list (as next_cursor would give it)."""
    from genkeep.api.cursor import encode_cursor

    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(
            f"SELECT created_at, id FROM {table} WHERE owner_id = $1 "
            "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
            OWNER,
            DEEP_PAGE * PAGE - 1,
        )
    finally:
        await connection.close()
    return None if row is None else encode_cursor(row["created_at"], row["id"])


async def latency_ms(call: Callable[[], Awaitable[httpx.Response]], repeats: int = 15) -> float:
    await call()  # warm
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code < 400, response.text[:200]
    return statistics.median(samples)


def hot_prompt(n: int) -> dict[str, str]:
    return {"prompt": f"stored prompt number {n}, asked again"}


async def store_hot_prompts(client: httpx.AsyncClient) -> None:
    """The prompts the hit rate asks for, generated once (the built-in generator)."""
    for n in range(HOT_KEYS):
        response = await client.post("/v1/generate", json=hot_prompt(n))
        assert response.status_code == 200, response.text[:200]


async def hit_rate(client: httpx.AsyncClient, seconds: float = 3.0, concurrency: int = 8) -> float:
    pick = random.Random(0)
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.post("/v1/generate", json=hot_prompt(pick.randrange(HOT_KEYS)))
            assert response.status_code == 200
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def submit(client: httpx.AsyncClient, job_id: str, key: str) -> str:
    response = await client.post(
        f"/v1/jobs/{job_id}/tasks",
        json={"kind": "noop", "payload": {}},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code in (200, 201, 202), response.text
    return str(response.json()["id"])


async def drain_rate(client: httpx.AsyncClient, tasks: int = 300) -> float:
    job = (await client.post("/v1/jobs", json={"title": "drain"})).json()["id"]
    started = time.perf_counter()
    ids = await asyncio.gather(*(submit(client, job, f"d-{job}-{i}") for i in range(tasks)))
    pending = set(ids)
    while pending:
        for task_id in list(pending)[:50]:
            status = (await client.get(f"/v1/tasks/{task_id}")).json()["status"]
            if status == "completed":
                pending.discard(task_id)
        await asyncio.sleep(0.02)
    return tasks / (time.perf_counter() - started)


async def claim_latency_ms(client: httpx.AsyncClient, repeats: int = 10) -> float:
    job = (await client.post("/v1/jobs", json={"title": "claim"})).json()["id"]
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        task_id = await submit(client, job, f"c-{i}-{time.time_ns()}")
        while (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued":  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def measure(server: Server, url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        found["hit req/s"] = await hit_rate(client)
        found["enqueue+drain tasks/s"] = await drain_rate(client)
        found["claim latency ms"] = await claim_latency_ms(client)
        lists = {"prompts": "/v1/prompts", "jobs": "/v1/jobs", "runs": "/v1/runs"}
        for name, path in lists.items():
            first = functools.partial(client.get, f"{path}?limit={PAGE}")
            found[f"{name} page 1 ms"] = await latency_ms(first)
            cursor = await deep_cursor(url, name)
            # A database smaller than 200 pages has no 200th page: its first page stands in.
            deep = first
            if cursor is not None:
                deep = functools.partial(client.get, f"{path}?limit={PAGE}&cursor={cursor}")
            found[f"{name} page {DEEP_PAGE} (cursor) ms"] = await latency_ms(deep)
            if name != "jobs":  # jobs page by cursor only
                skip = (DEEP_PAGE - 1) * PAGE
                by_offset = functools.partial(client.get, f"{path}?limit={PAGE}&offset={skip}")
                found[f"{name} page {DEEP_PAGE} (offset) ms"] = await latency_ms(by_offset)
        events_job = "j-1"
        found["events page ms"] = await latency_ms(
            lambda: client.get(f"/v1/jobs/{events_job}/events?limit=100")
        )
        found["/metrics ms"] = await latency_ms(lambda: client.get("/metrics"))
        found["duplicates ms"] = await latency_ms(lambda: client.get("/v1/prompts/duplicates"))
    return found


def start_server(url: str, workdir: Path) -> Server:
    env = {
        "GENKEEP_DATABASE_URL": url,
        "GENKEEP_DATA_DIR": str(workdir / "var"),
        "GENKEEP_LOG_LEVEL": "warning",
        "GENKEEP_TASK_MODULES": '["tests.support.handlers"]',
        "GENKEEP_TASK_POLL_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    return Server(env, workdir / "server.log")


async def store_all(servers: dict[str, Server]) -> None:
    for server in servers.values():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            await store_hot_prompts(client)


def in_rounds(
    servers: dict[str, Server], urls: dict[str, str], rounds: int
) -> dict[str, dict[str, float]]:
    """Each measure's median over ``rounds``, the databases taking turns to go first."""
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in servers}
    for round_no in range(rounds):
        order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
        for label in order:
            found = asyncio.run(measure(servers[label], urls[label]))
            for name, value in found.items():
                samples[label].setdefault(name, []).append(value)
            print(f"  round {round_no + 1}/{rounds}: {label} measured", flush=True)
    return {
        label: {name: statistics.median(values) for name, values in measures.items()}
        for label, measures in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    results: dict[str, Any] = {"rows": options.rows, "baseline_rows": BASELINE_ROWS}
    sizes = {"baseline": BASELINE_ROWS, "filled": options.rows}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        urls: dict[str, str] = {}
        servers: dict[str, Server] = {}
        for label, rows in sizes.items():
            workdir = root / label
            workdir.mkdir()
            urls[label] = stack.enter_context(throwaway_database("postgresql", workdir))
            took = asyncio.run(fill(urls[label], rows))
            print(f"  {label}: {rows:,} rows filled in {took:.0f} s", flush=True)
            results[f"fill_{label}_s"] = round(took, 1)
            servers[label] = stack.enter_context(start_server(urls[label], workdir))
        asyncio.run(store_all(servers))
        figures = in_rounds(servers, urls, options.rounds)
    baseline, filled = figures["baseline"], figures["filled"]
    print(f"\nscale_bench: PostgreSQL, {options.rows:,} prompts+results and finished tasks")
    print(f"(baseline: {BASELINE_ROWS:,} of each; medians of {options.rounds} alternating rounds)")
    print(f"{'measure':28} {'baseline':>10} {'filled':>10} {'ratio':>7}  goal")
    rows_out = []
    for name, before in baseline.items():
        after = filled.get(name)
        if after is None:
            continue
        higher_is_better = "/s" in name
        ratio = after / before if before else float("nan")
        if name.startswith(("hit", "enqueue", "claim")):
            goal = ">= 0.85x" if higher_is_better else "<= 1/0.85x"
            met = ratio >= 0.85 if higher_is_better else ratio <= 1 / 0.85
        else:
            goal, met = "<= 2x", ratio <= 2
        verdict = "ok" if met else "MISSED"
        print(f"{name:28} {before:10.2f} {after:10.2f} {ratio:7.2f}  {goal} {verdict}")
        rows_out.append(
            {"measure": name, "baseline": before, "filled": after, "ratio": ratio, "met": met}
        )
    results["measures"] = rows_out
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_bench.json").write_text(json.dumps(results, indent=2))
    print(f"fill took {results['fill_filled_s']} s; written to benchmarks/results/scale_bench.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
