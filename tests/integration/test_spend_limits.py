"""Rate buckets, budget reservations and the ledger on both databases, as several processes
see them (each its own ``Database``): counted in the database (I16)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import select

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.database import Database
from genkeep.db.llm_cache import DbLlmCache
from genkeep.db.rate_buckets import BucketRates, RateBuckets
from genkeep.db.spend import Hold, Refused, SpendStore, Usage
from genkeep.db.upstream_windows import UpstreamWindows
from genkeep.errors import GenerationFailed
from genkeep.extract.limits import provider_limit
from genkeep.extract.llm.extractor import LlmExtractor
from genkeep.generate.attempts import AttemptGate
from genkeep.generate.limits import ProviderLimiter
from genkeep.generate.openai_client import ChatClient
from tests.conftest import REPO
from tests.integration.test_llm_extractor import CHUNK, VALID, FakeIndex
from tests.support.fake_openai import FakeOpenAI, busiest_second, ok, status


def usage(cost: int, *, hit: bool = False) -> Usage:
    return Usage("alice", "k1", "default", None, None, hit, False, 10, 5, cost, 0)


async def test_a_bucket_shared_by_processes_admits_exactly_its_capacity(
    database: Database, db_url: str
) -> None:
    other = Database(db_url)
    try:
        buckets = [RateBuckets(database), RateBuckets(other)]
        # 6 a minute, a minute's burst: 6 now, the next one 10 s later.
        rates = BucketRates(rpm=6, tpm=None, burst_s=60)
        taken = await asyncio.gather(
            *(buckets[i % 2].take("rate:key:k1", rates) for i in range(30))
        )
        assert sum(t.granted for t in taken) == 6
        refused = [t for t in taken if not t.granted]
        assert all(0 < t.wait_s <= 10.0 for t in refused), refused[:3]
        # Tokens: 100 a minute, a call of 60 passes once, then waits for the refill.
        tokens = BucketRates(rpm=None, tpm=100, burst_s=60)
        first = await buckets[0].take("rate:key:k2", tokens, tokens=60)
        second = await buckets[1].take("rate:key:k2", tokens, tokens=60)
        assert first.granted and not second.granted
        assert 0 < second.wait_s <= 12.0  # 20 more tokens at 100/min
    finally:
        await other.dispose()


async def test_a_provider_bucket_spaces_calls_evenly(database: Database) -> None:
    buckets = RateBuckets(database)
    rates = BucketRates(rpm=60, tpm=None, burst_s=0)  # one a second, never two at once
    first = await buckets.take("provider:default", rates)
    second = await buckets.take("provider:default", rates)
    assert first.granted and not second.granted
    assert 0 < second.wait_s <= 1.0


async def test_reservations_never_overdraw_a_budget_across_processes(
    database: Database, db_url: str
) -> None:
    other = Database(db_url)
    try:
        stores = [SpendStore(database), SpendStore(other)]
        holds = (Hold("key:k1", "2026-12-04", 1000), Hold("owner:alice", "lifetime", 5000))
        outcomes = await asyncio.gather(
            *(stores[i % 2].reserve(holds, 100, lease_s=60) for i in range(30))
        )
        admitted = [o for o in outcomes if isinstance(o, str)]
        assert len(admitted) == 10
        assert all(
            isinstance(o, Refused) and o.subject == "key:k1" for o in outcomes if o not in admitted
        )
        assert await stores[0].counter("key:k1", "2026-12-04") == (0, 1000)
        # A refusal took nothing from the other counter (one transaction).
        assert await stores[0].counter("owner:alice", "lifetime") == (0, 1000)
        for reservation in admitted:
            await stores[1].settle(reservation, usage(60), holds)
        assert await stores[0].counter("key:k1", "2026-12-04") == (600, 0)
        assert await stores[0].counter("owner:alice", "lifetime") == (600, 0)
        # Exactly what is left: 4 more of 100.
        again = [await stores[0].reserve(holds, 100, lease_s=60) for _ in range(5)]
        assert sum(isinstance(o, str) for o in again) == 4
        rows = await stores[0].usage("alice", "key")
        assert rows[0]["calls"] == 10 and rows[0]["cost_usd"] == pytest.approx(0.0006)
        assert await stores[0].usage("bob", "day") == []  # owner-scoped (I3)
    finally:
        await other.dispose()


_HOLDER = """
import asyncio, sys, time
from genkeep.db.database import Database
from genkeep.db.llm_cache import DbLlmCache
from genkeep.db.spend import Hold, SpendStore

async def main():
    database = Database(sys.argv[1])
    reserved = await SpendStore(database).reserve([Hold("key:k1", "lifetime", 1000)], 700, 1.0)
    print(reserved, flush=True)
    time.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_holders_reservation_is_released_by_its_lease(
    database: Database, db_url: str
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, db_url, stdout=subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout is not None
        line = await holder.stdout.readline()
        assert len(line.strip()) == 36, line
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    store = SpendStore(database)
    hold = [Hold("key:k1", "lifetime", 1000)]
    assert await store.counter("key:k1", "lifetime") == (0, 700)
    assert isinstance(await store.reserve(hold, 400, lease_s=60), Refused)  # 700 still held
    deadline = time.monotonic() + 5
    while isinstance(admitted := await store.reserve(hold, 1000, lease_s=60), Refused):
        assert time.monotonic() < deadline, "the lease never released the reservation"
        await asyncio.sleep(0.05)
    await store.settle(admitted, usage(1000), hold)
    # The dead holder's 700 never spent, the whole budget spent once: exact.
    assert await store.counter("key:k1", "lifetime") == (1000, 0)


async def test_both_drivers_read_the_same_epoch_clock(database: Database) -> None:
    async with database.reading() as session:
        first = (await session.execute(select(database.driver.epoch()))).scalar_one()
        second = (await session.execute(select(database.driver.epoch()))).scalar_one()
    assert abs(first - time.time()) < 5  # seconds since 1970, as the buckets count them
    assert 0 <= second - first < 5


async def test_an_extractors_model_shares_its_profiles_provider_bucket(
    database: Database, db_url: str
) -> None:
    profiles = {
        "default": GeneratorProfile(),
        "gpt": GeneratorProfile(backend="openai", model="gpt-x", rpm=60),
    }
    settings = Settings(database_url=db_url, profiles=profiles, _env_file=None)
    limiter = ProviderLimiter(RateBuckets(database), settings)
    assert provider_limit(limiter, settings, "another-model") is None
    limit = provider_limit(limiter, settings, "gpt-x")
    assert limit is not None
    gate = limit.gate(100)
    assert gate is not None
    await gate.turn()
    # The extractor's call took from the same bucket a generation of "gpt" takes from.
    rates = BucketRates(rpm=60, tpm=None, burst_s=0)
    assert not (await RateBuckets(database).take("provider:gpt", rates)).granted


async def test_an_extractors_retry_waits_for_its_own_provider_turn(
    database: Database, db_url: str
) -> None:
    """60 RPM: an LLM extractor's call meets a 429 (Retry-After 0) and retries. The retry is
    a call to the provider like any other, so it reaches the upstream a turn (about 1 s)
    after the first attempt, not after the client's short backoff."""
    profiles = {
        "default": GeneratorProfile(),
        "gpt": GeneratorProfile(backend="openai", model="gpt-x", rpm=60),
    }
    settings = Settings(database_url=db_url, profiles=profiles, _env_file=None)
    limit = provider_limit(ProviderLimiter(RateBuckets(database), settings), settings, "gpt-x")
    with FakeOpenAI() as upstream:
        upstream.plan(status(429, retry_after="0"), ok(VALID))
        extractor = LlmExtractor(
            model="gpt-x",
            cache=DbLlmCache(database),
            base_url=upstream.base_url,
            api_key="sk-test",
            timeout_s=5.0,
            max_retries=1,
            limit=limit,
        )
        try:
            await extractor.for_owner("alice").extract(CHUNK, FakeIndex())
        finally:
            await extractor.aclose()
        times = [r.at for r in upstream.requests]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.95, times


async def test_a_provider_limit_holds_at_the_upstream_across_processes(
    database: Database, db_url: str
) -> None:
    """600 RPM: callers in three processes at once, through the OpenAI client as a generation
    calls (its first calls included), counted where the calls arrive: no second of the
    upstream's clock, on the second or sliding, sees more than 10."""
    profiles = {
        "default": GeneratorProfile(),
        "gpt": GeneratorProfile(backend="openai", model="gpt-x", rpm=600),
    }
    settings = Settings(database_url=db_url, profiles=profiles, _env_file=None)
    others = [Database(db_url), Database(db_url)]
    try:
        with FakeOpenAI() as upstream:
            processes = [
                (
                    AttemptGate(
                        windows=UpstreamWindows(db),
                        limiter=ProviderLimiter(RateBuckets(db), settings),
                        prompt_id=None,
                        profile_name="gpt",
                        profile=profiles["gpt"],
                        tokens=0,
                        window_s=60,
                        most=3,
                    ),
                    ChatClient(
                        base_url=upstream.base_url,
                        api_key="sk-test",
                        timeout_s=30,
                        max_retries=0,
                        who="upstream",
                        purpose="the test",
                        error=GenerationFailed,
                    ),
                )
                for db in (database, *others)
            ]

            async def call(i: int) -> None:
                gate, client = processes[i % len(processes)]
                await client.complete(
                    gate=gate,
                    model="gpt-x",
                    messages=[{"role": "user", "content": f"question {i}"}],
                )

            await asyncio.gather(*(call(i) for i in range(36)))
            for _, client in processes:
                await client.aclose()
            times = [r.at for r in upstream.requests]
    finally:
        for other in others:
            await other.dispose()
    assert len(times) == 36
    on_the_second, sliding = busiest_second(times)
    assert on_the_second <= 10 and sliding <= 10, (on_the_second, sliding)


async def test_takes_waiting_together_go_in_one_statement_and_stay_exact(
    database: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Database(db_url)
    try:
        statements = 0
        for db in (database, other):
            write = db.driver.write_transient

            async def counted(*args: Any, write: Any = write) -> Any:
                nonlocal statements
                statements += 1
                return await write(*args)

            monkeypatch.setattr(db.driver, "write_transient", counted)
        buckets = [RateBuckets(database), RateBuckets(other)]
        # 100 deep, refilled at 0.1 a second: what the takes below leave is what they took.
        rates = BucketRates(rpm=6, tpm=None, burst_s=1000)
        first = await asyncio.gather(
            *(buckets[i % 2].take("rate:key:k1", rates) for i in range(40))
        )
        assert all(t.granted for t in first)
        assert statements < 40  # each process's waiting takes went together
        # 60 left (and a refill too small to make a 61st): of 70 more, exactly 60 pass.
        second = await asyncio.gather(
            *(buckets[i % 2].take("rate:key:k1", rates) for i in range(70))
        )
        assert sum(t.granted for t in second) == 60
        assert all(t.wait_s > 0 for t in second if not t.granted)
    finally:
        await other.dispose()
