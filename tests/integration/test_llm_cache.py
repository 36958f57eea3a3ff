"""DbLlmCache, the LLM answer cache production uses, on SQLite and PostgreSQL, behind a real
LlmExtractor talking to the fake OpenAI-compatible server; calls counted at that server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from sqlalchemy import func, select, update

from genkeep.db.database import Database
from genkeep.db.llm_cache import DbLlmCache
from genkeep.db.models import LlmAnswer, LlmFlight
from genkeep.extract.llm.extractor import LlmExtractor
from genkeep.generate.attempts import ProviderTurn
from tests.integration.test_llm_extractor import CHUNK, VALID, FakeIndex
from tests.support.fake_openai import FakeOpenAI, ok, slow

Make = Callable[[], LlmExtractor]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def make(server: FakeOpenAI, database: Database) -> AsyncIterator[Make]:
    """A new extractor each call (a new process, a resumed run), all on one database cache."""
    made: list[LlmExtractor] = []

    def build() -> LlmExtractor:
        extractor = LlmExtractor(
            model="gpt-test-extract",
            cache=DbLlmCache(database),
            base_url=server.base_url,
            api_key="sk-test-cache",
            timeout_s=5.0,
            max_retries=0,
        )
        made.append(extractor)
        return extractor

    yield build
    for extractor in made:
        await extractor.aclose()


async def stored(database: Database) -> dict[str, str]:
    async with database.reading() as session:
        rows = (await session.execute(select(LlmAnswer.request_hash, LlmAnswer.answer))).all()
    return {key: answer for key, answer in rows}


async def test_get_put_miss_and_replace(database: Database) -> None:
    cache = DbLlmCache(database)
    assert await cache.get("a" * 64) is None
    await cache.put("a" * 64, '{"entities": []}')
    assert await cache.get("a" * 64) == '{"entities": []}'
    await cache.put("a" * 64, '{"entities": [], "relations": []}')  # a newer valid answer wins
    assert await DbLlmCache(database).get("a" * 64) == '{"entities": [], "relations": []}'
    assert await cache.get("b" * 64) is None


async def test_a_miss_asks_the_model_once_and_a_hit_from_another_extractor_asks_nothing(
    server: FakeOpenAI, make: Make, database: Database
) -> None:
    server.plan(ok(VALID))
    index = FakeIndex()
    first = await make().for_owner("alice").extract(CHUNK, index)
    assert server.calls == 1
    assert list((await stored(database)).values()) == [VALID]
    again = make().for_owner("alice")
    assert await again.extract(CHUNK, index) == first
    assert server.calls == 1 and again.stats.cache_hits == 1


async def test_owners_never_read_each_others_answers(
    server: FakeOpenAI, make: Make, database: Database
) -> None:
    server.plan(ok(VALID), ok(VALID))
    index = FakeIndex()
    await make().for_owner("alice").extract(CHUNK, index)
    bob = make().for_owner("bob")
    await bob.extract(CHUNK, index)
    assert server.calls == 2 and bob.stats.cache_hits == 0
    keys = await stored(database)
    assert len(keys) == 2
    assert bob.cache_key(CHUNK, index) in keys
    assert make().for_owner("alice").cache_key(CHUNK, index) in keys


@pytest.mark.parametrize("damage", ["truncated", "not-the-schema"])
async def test_a_corrupt_entry_is_asked_again_and_replaced(
    server: FakeOpenAI, make: Make, database: Database, damage: str
) -> None:
    server.plan(ok(VALID), ok(VALID))
    index = FakeIndex()
    expected = await make().for_owner("alice").extract(CHUNK, index)
    bad = VALID[: len(VALID) // 2] if damage == "truncated" else '{"entities": 3}'
    async with database.transaction() as session:
        await session.execute(update(LlmAnswer).values(answer=bad))
    repaired = make().for_owner("alice")
    assert await repaired.extract(CHUNK, index) == expected
    assert server.calls == 2 and repaired.stats.cache_hits == 0
    assert list((await stored(database)).values()) == [VALID]
    # Repaired for good: the next reader is served from the cache.
    assert await make().for_owner("alice").extract(CHUNK, index) == expected
    assert server.calls == 2
    async with database.reading() as session:
        assert (await session.execute(select(func.count()).select_from(LlmAnswer))).scalar() == 1


class CountingLimit:
    """A ProviderLimit that admits every call and counts them."""

    def __init__(self) -> None:
        self.acquired: list[int] = []

    def gate(self, tokens: int) -> ProviderTurn | None:
        self.acquired.append(tokens)
        return None


async def test_each_model_call_passes_the_provider_limit_and_a_hit_does_not(
    server: FakeOpenAI, make: Make
) -> None:
    server.plan(ok(VALID))
    index = FakeIndex()
    limit = CountingLimit()
    first = make().for_owner("alice")
    first.limit = limit
    await first.extract(CHUNK, index)
    again = make().for_owner("alice")
    again.limit = limit
    await again.extract(CHUNK, index)
    assert server.calls == 1 and len(limit.acquired) == 1 and limit.acquired[0] > 0


async def flights(database: Database) -> int:
    async with database.reading() as session:
        return int(
            (await session.execute(select(func.count()).select_from(LlmFlight))).scalar_one()
        )


async def test_two_workers_asking_one_uncached_prompt_at_once_make_one_call(
    server: FakeOpenAI, make: Make, database: Database
) -> None:
    server.plan(slow(0.3, ok(VALID)), ok(VALID))
    index = FakeIndex()
    # Two extractors on one database, as in two worker processes; neither has the answer.
    first, second = make().for_owner("alice"), make().for_owner("alice")
    results = await asyncio.gather(first.extract(CHUNK, index), second.extract(CHUNK, index))
    assert server.calls == 1
    assert results[0] == results[1]
    assert sorted([first.stats.waited, second.stats.waited]) == [0, 1]
    assert await flights(database) == 0  # landed


async def test_a_dead_workers_call_is_asked_again_once_its_lease_ends(
    server: FakeOpenAI, make: Make, database: Database
) -> None:
    server.plan(ok(VALID))
    index = FakeIndex()
    extractor = make().for_owner("alice")
    # A worker SIGKILLed while asking: its flight is never renewed nor landed.
    key = extractor.cache_key(CHUNK, index)
    assert await DbLlmCache(database).claim(key, "killed-worker", lease_s=0.5)
    started = time.monotonic()
    asking = asyncio.create_task(extractor.extract(CHUNK, index))
    await asyncio.sleep(0.25)
    assert server.calls == 0 and not asking.done()  # its lease still runs: waited for
    await asking
    assert server.calls == 1 and time.monotonic() - started >= 0.45
    assert await flights(database) == 0
