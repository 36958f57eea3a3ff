"""The generate-once service against SQLite and PostgreSQL (I1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from genkeep.api.app import attach, create_app
from genkeep.config import GeneratorProfile, Settings
from genkeep.db.database import Database
from genkeep.db.models import Prompt, Result
from genkeep.db.prompts import PromptKey, PromptStore
from genkeep.errors import (
    GenerationFailed,
    GenerationTimeout,
    NotFound,
    PromptEmpty,
    PromptTooLarge,
    UnknownProfile,
)
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.service import GenerateService
from genkeep.services import close_services, open_services
from tests.support.generators import CountingGenerator

OWNER = "alice"

ServiceFactory = Callable[..., GenerateService]


@pytest.fixture
async def make_service(database: Database, settings: Settings) -> AsyncIterator[ServiceFactory]:
    made: list[GenerateService] = []

    def make(generator: CountingGenerator | None = None, **overrides: object) -> GenerateService:
        configured = settings.model_copy(update={"claim_poll_s": 0.005, **overrides})
        service = GenerateService(
            PromptStore(database), configured, {"builtin": generator or CountingGenerator()}
        )
        made.append(service)
        return service

    yield make
    for service in made:
        await service.aclose()


async def count(database: Database, model: type[Prompt] | type[Result]) -> int:
    async with database.reading() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_read_first_returns_stored_result_without_generator(
    make_service: ServiceFactory, database: Database
) -> None:
    generator = CountingGenerator()
    service = make_service(generator)
    first = await service.generate(OWNER, "Write about durable data")
    again = await service.generate(OWNER, "  write ABOUT durable   data ")
    assert generator.calls == 1
    assert not first.cached and first.persisted and first.version == 1
    assert again.cached and again.result_id == first.result_id
    assert again.content == first.content
    assert await count(database, Prompt) == 1


class WatchedStore(PromptStore):
    """A PromptStore that counts its reads of a prompt (how the test sees a waiter poll) and
    sets ``read`` after each."""

    def __init__(self, database: Database, read: asyncio.Event) -> None:
        super().__init__(database)
        self.finds, self.read = 0, read

    async def find(self, key: PromptKey) -> Any:
        found = await super().find(key)
        self.finds += 1
        self.read.set()
        return found


async def test_concurrent_identical_requests_across_services_call_generator_once(
    database: Database, settings: Settings
) -> None:
    gate = asyncio.Event()
    generator = CountingGenerator(gate=gate)
    # Three services on one database stand for three processes: each has its own flights.
    configured = settings.model_copy(update={"claim_poll_s": 0.005})
    read = asyncio.Event()
    stores = [WatchedStore(database, read) for _ in range(3)]

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            read.clear()
            await read.wait()

    services = [GenerateService(s, configured, {"builtin": generator}) for s in stores]
    variants = ["Summarize the report", "summarize the REPORT", " Summarize  the report\n"]
    tasks = [
        asyncio.create_task(services[i % 3].generate(OWNER, variants[i % 3])) for i in range(30)
    ]
    try:
        await until(lambda: generator.calls == 1)  # one flight claimed and is generating
        seen = [s.finds for s in stores]
        # The other two flights read the prompt again after the claim: they are waiting on
        # it, so none of the thirty can be a plain hit once the gate opens.
        await until(lambda: sum(s.finds > n for s, n in zip(stores, seen, strict=True)) >= 2)
        gate.set()
        outcomes = await asyncio.gather(*tasks)
    finally:
        gate.set()
        for service in services:
            await service.aclose()
    assert generator.calls == 1
    assert {o.result_id for o in outcomes} == {outcomes[0].result_id}
    assert {o.content for o in outcomes} == {outcomes[0].content}
    # Thirty requests: one generated, twenty-nine coalesced onto it, none a plain cache hit.
    assert [o.coalesced for o in outcomes].count(True) == 29
    assert not any(o.cached for o in outcomes)
    assert await count(database, Prompt) == 1
    assert await count(database, Result) == 1


async def test_different_owners_and_profiles_do_not_share(
    make_service: ServiceFactory, database: Database
) -> None:
    generator = CountingGenerator()
    profiles = {"default": GeneratorProfile(), "other": GeneratorProfile(model="other-model")}
    service = make_service(generator, profiles=profiles)
    a = await service.generate("alice", "Same prompt")
    b = await service.generate("bob", "Same prompt")
    c = await service.generate("alice", "Same prompt", "other")
    assert generator.calls == 3
    assert len({a.prompt_id, b.prompt_id, c.prompt_id}) == 3
    assert c.model == "other-model" and a.content != c.content


async def test_failed_generation_releases_claim_and_next_request_retries(
    make_service: ServiceFactory, database: Database
) -> None:
    generator = CountingGenerator(fail=1)
    service = make_service(generator)
    with pytest.raises(GenerationFailed, match="upstream exploded"):
        await service.generate(OWNER, "fragile prompt")
    prompt = await _only_prompt(database)
    assert prompt.status == "failed" and prompt.claim_token is None
    assert "upstream exploded" in (prompt.last_error or "")
    retried = await service.generate(OWNER, "fragile prompt")
    assert retried.version == 1 and generator.calls == 2
    prompt = await _only_prompt(database)
    assert prompt.status == "ready" and prompt.last_error is None and prompt.attempts == 2


async def test_waiters_of_a_failed_generation_get_the_error(
    make_service: ServiceFactory, database: Database
) -> None:
    gate = asyncio.Event()
    generator = CountingGenerator(fail=1, gate=gate)
    leader, follower = make_service(generator), make_service(generator)
    first = asyncio.create_task(leader.generate(OWNER, "doomed"))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(follower.generate(OWNER, "doomed"))
    await asyncio.sleep(0.1)
    gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, GenerationFailed) for r in results)
    assert generator.calls == 1


async def test_waiter_gives_up_after_claim_wait_and_writes_nothing(
    make_service: ServiceFactory, database: Database
) -> None:
    gate = asyncio.Event()
    generator = CountingGenerator(gate=gate)
    # Two services stand for two processes: the waiter cannot join the leader's local flight.
    leader = make_service(generator)
    waiter = make_service(generator, claim_wait_s=0.3)
    leading = asyncio.create_task(leader.generate(OWNER, "slow to write"))
    try:
        await _until_claimed(database)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(GenerationTimeout, match=r"waited 0\.3s"):
            # A waiter that never gave up would hang: turn that into a failure instead.
            await asyncio.wait_for(waiter.generate(OWNER, "SLOW to write"), 30)
        waited = loop.time() - started
        assert 0.3 <= waited < 10  # it waited out claim_wait_s, no less
        assert generator.calls == 1  # the waiter never called the generator itself
        prompt = await _only_prompt(database)
        assert prompt.attempts == 1 and prompt.claim_token is not None  # leader still holds it
        assert await count(database, Result) == 0
        assert not leading.done()
    finally:
        gate.set()
    outcome = await leading
    assert outcome.persisted and outcome.version == 1 and generator.calls == 1
    assert await count(database, Prompt) == 1 and await count(database, Result) == 1
    # A request after the leader finished is served from storage, not a second generation.
    again = await waiter.generate(OWNER, "slow to write")
    assert again.cached and again.result_id == outcome.result_id and generator.calls == 1


async def test_waiter_timeout_answers_504_over_http(
    make_service: ServiceFactory, database: Database, settings: Settings
) -> None:
    gate = asyncio.Event()
    generator = CountingGenerator(gate=gate)
    leader = make_service(generator)
    configured = settings.model_copy(update={"claim_wait_s": 0.3, "claim_poll_s": 0.005})
    app = create_app(configured)
    services = await open_services(configured)
    attach(app, services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    leading = asyncio.create_task(leader.generate(configured.default_owner, "held by another"))
    try:
        await _until_claimed(database)
        async with httpx.AsyncClient(transport=transport, base_url="http://genkeep") as client:
            response = await asyncio.wait_for(
                client.post("/v1/generate", json={"prompt": "held by another"}), 30
            )
        assert response.status_code == 504, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "generation-timeout" and body["status"] == 504
        assert generator.calls == 1 and await count(database, Result) == 0
        prompt = await _only_prompt(database)  # one row, claimed once: the API never led
        assert prompt.attempts == 1 and prompt.claim_token is not None
    finally:
        gate.set()
        await close_services(services)
    outcome = await leading
    assert outcome.version == 1 and await count(database, Result) == 1


async def test_expired_lease_is_taken_over(
    make_service: ServiceFactory, database: Database
) -> None:
    store = PromptStore(database)
    service = make_service(CountingGenerator(), claim_lease_s=0.3)
    key, _ = service.key_for(OWNER, "orphaned prompt", None)
    # A claimant that never heartbeats: as if its process died right after claiming.
    dead = await store.claim_new(key, "dead-host:1", 0.3)
    assert dead is not None
    outcome = await service.generate(OWNER, "orphaned prompt")
    assert outcome.persisted and outcome.coalesced is False and outcome.version == 1
    prompt = await _only_prompt(database)
    assert prompt.attempts == 2 and prompt.claim_token is None
    # The dead claimant wakes up and tries to commit: it is fenced out.
    from genkeep.core.generation import Generation

    assert await store.complete(dead, "late-result", Generation("late", "m")) is None
    assert await count(database, Result) == 1


async def test_no_cache_makes_one_new_version_for_concurrent_requests(
    make_service: ServiceFactory, database: Database
) -> None:
    generator = CountingGenerator()
    service, other = make_service(generator), make_service(generator)
    first = await service.generate(OWNER, "versioned")
    # Stored an hour ago: a result made within a request's read latency of its arrival
    # counts as simultaneous with it (docs/generate.md), which this test is not about.
    async with database.transaction() as session:
        await session.execute(
            update(Result).values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    fresh = await asyncio.gather(
        *[
            (service if i % 2 else other).generate(
                OWNER, "versioned", None, CacheControl(no_cache=True)
            )
            for i in range(10)
        ]
    )
    assert generator.calls == 2
    assert {o.version for o in fresh} == {2}
    assert {o.source for o in fresh} == {"regenerated"}
    assert first.version == 1
    latest = await service.generate(OWNER, "versioned")
    assert latest.cached and latest.version == 2


async def test_max_age_refuses_old_results(
    make_service: ServiceFactory, database: Database
) -> None:
    generator = CountingGenerator()
    service = make_service(generator)
    await service.generate(OWNER, "aging")
    await asyncio.sleep(1.1)
    young_enough = await service.generate(OWNER, "aging", None, CacheControl(max_age=60))
    assert young_enough.cached and generator.calls == 1
    renewed = await service.generate(OWNER, "aging", None, CacheControl(max_age=1))
    assert not renewed.cached and renewed.version == 2 and generator.calls == 2


async def test_no_store_persists_nothing(make_service: ServiceFactory, database: Database) -> None:
    service = make_service()
    outcome = await service.generate(OWNER, "ephemeral", None, CacheControl(no_store=True))
    assert not outcome.persisted and outcome.prompt_id is None and outcome.content
    assert await count(database, Prompt) == 0


async def test_persistence_off_writes_nothing(
    make_service: ServiceFactory, database: Database
) -> None:
    gate = asyncio.Event()
    generator = CountingGenerator(gate=gate)
    service = make_service(generator, persistence_enabled=False)
    tasks = [asyncio.create_task(service.generate(OWNER, "not kept")) for _ in range(5)]
    await asyncio.sleep(0.1)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert all(not o.persisted and o.result_id is None for o in outcomes)
    assert generator.calls == 1  # still single flight within the process
    assert await count(database, Prompt) == 0 and await count(database, Result) == 0


async def test_persistence_await_on_commits_before_answering(
    make_service: ServiceFactory, database: Database
) -> None:
    service = make_service(persistence_await=True)
    outcome = await service.generate(OWNER, "committed first")
    assert outcome.persisted and service.pending_persistence == 0
    stored = await PromptStore(database).get_result(OWNER, outcome.result_id or "")
    assert stored is not None and stored.content == outcome.content


async def test_persistence_await_off_commits_after_answering(
    make_service: ServiceFactory, database: Database
) -> None:
    service = make_service(persistence_await=False)
    outcome = await service.generate(OWNER, "committed later")
    assert not outcome.persisted and outcome.result_id is not None
    assert service.pending_persistence == 1
    await service.wait_for_persistence()
    stored = await PromptStore(database).get_result(OWNER, outcome.result_id)
    assert stored is not None and stored.content == outcome.content and stored.version == 1


async def test_persistence_failure_await_off_is_counted_not_returned(
    make_service: ServiceFactory, database: Database, backend: str
) -> None:
    await _break_result_inserts(database, backend)
    from genkeep.telemetry.metrics import PERSISTENCE_FAILURES

    before = PERSISTENCE_FAILURES.labels("best-effort")._value.get()
    service = make_service(persistence_await=False)
    outcome = await service.generate(OWNER, "cannot be stored")
    assert outcome.content and not outcome.persisted
    await service.wait_for_persistence()
    assert PERSISTENCE_FAILURES.labels("best-effort")._value.get() == before + 1
    assert await count(database, Result) == 0
    prompt = await _only_prompt(database)
    assert prompt.status == "failed" and prompt.claim_token is None


async def test_persistence_failure_await_on_is_returned(
    make_service: ServiceFactory, database: Database, backend: str
) -> None:
    await _break_result_inserts(database, backend)
    from genkeep.errors import PersistenceFailed

    with pytest.raises(PersistenceFailed):
        await make_service(persistence_await=True).generate(OWNER, "cannot be stored")
    assert await count(database, Result) == 0


async def test_edits_and_regenerate_make_versions(
    make_service: ServiceFactory, database: Database
) -> None:
    store = PromptStore(database)
    service = make_service()
    first = await service.generate(OWNER, "draft me")
    assert first.result_id and first.prompt_id
    edited = await store.add_edit(OWNER, first.result_id, "# Better\n\nHand-edited.\n")
    assert edited is not None and edited.version == 2 and edited.source == "edited"
    assert edited.edited_from_id == first.result_id
    cached = await service.generate(OWNER, "DRAFT me")
    assert cached.cached and cached.result_id == edited.id
    regenerated = await service.regenerate(OWNER, first.prompt_id)
    assert regenerated.version == 3 and regenerated.source == "regenerated"
    versions = [(r.version, r.source) for r in await store.list_results(OWNER, first.prompt_id)]
    assert versions == [(1, "generated"), (2, "edited"), (3, "regenerated")]


async def test_other_owner_sees_nothing(make_service: ServiceFactory, database: Database) -> None:
    store = PromptStore(database)
    service = make_service()
    mine = await service.generate(OWNER, "private")
    assert mine.prompt_id and mine.result_id
    assert await store.get_prompt("mallory", mine.prompt_id) is None
    assert await store.get_result("mallory", mine.result_id) is None
    assert await store.add_edit("mallory", mine.result_id, "defaced") is None
    with pytest.raises(NotFound):
        await service.regenerate("mallory", mine.prompt_id)


@pytest.mark.parametrize(
    ("prompt", "profile", "error"),
    [
        ("", None, PromptEmpty),
        (" \n\t ", None, PromptEmpty),
        ("x" * (64 * 1024 + 1), None, PromptTooLarge),
        ("fine", "no-such-profile", UnknownProfile),
    ],
)
async def test_bad_input_writes_nothing(
    make_service: ServiceFactory,
    database: Database,
    prompt: str,
    profile: str | None,
    error: type[Exception],
) -> None:
    generator = CountingGenerator()
    with pytest.raises(error):
        await make_service(generator).generate(OWNER, prompt, profile)
    assert generator.calls == 0
    assert await count(database, Prompt) == 0


async def _until_claimed(database: Database) -> None:
    """Wait until a leader holds the claim on the one prompt row."""
    for _ in range(1000):
        async with database.reading() as session:
            prompt = (await session.execute(select(Prompt))).scalar_one_or_none()
        if prompt is not None and prompt.claim_token is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the leader never claimed the prompt")


async def _only_prompt(database: Database) -> Prompt:
    async with database.reading() as session:
        return (await session.execute(select(Prompt))).scalar_one()


async def _break_result_inserts(database: Database, backend: str) -> None:
    """Make every INSERT into results fail inside the database itself."""
    from sqlalchemy import text

    statements = (
        [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'results are read-only today'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_results BEFORE INSERT ON results "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
        if backend == "postgresql"
        else [
            "CREATE TRIGGER refuse_results BEFORE INSERT ON results "
            "BEGIN SELECT RAISE(ABORT, 'results are read-only today'); END"
        ]
    )
    async with database.transaction() as session:
        for statement in statements:
            await session.execute(text(statement))
