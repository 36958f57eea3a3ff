"""The fleet's batch claim, on both databases: the run's and the owner's concurrency are
exact, a cancel or a dead executor stops claims, and a batch commits only under its lease."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genkeep.config import Settings
from genkeep.db.drivers.base import BatchClaim
from genkeep.db.run_batches import ClaimedBatch, RunLease
from genkeep.errors import LeaseLost
from genkeep.services import Services
from tests.support.services import opened_services

MANIFEST = {
    "input_name": "in.txt",
    "input_sha256": "0" * 64,
    "input_blob_key": "owners/alice/inputs/none",
    "input_chars": 0,
    "ontology_hash": "0" * 64,
    "extractor_name": "genkeep-builtin",
    "extractor_version": "1",
}


@pytest.fixture
async def services(settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    async with opened_services(settings, tmp_path) as opened:
        yield opened


def claim(holder: str, *, run_limit: int = 16, owner_limit: int = 0) -> BatchClaim:
    return BatchClaim(
        holder=holder,
        token=str(uuid.uuid4()),
        lease_s=30,
        extractors=["genkeep-builtin"],
        run_concurrency=run_limit,
        owner_concurrency=owner_limit,
    )


async def running_run(services: Services, owner: str, batches: int) -> RunLease:
    run = await services.runs.create(owner, MANIFEST)
    lease = await services.runs.acquire(run.id, "executor", 30)
    assert lease is not None
    await services.runs.open_batches(lease, batches)
    return lease


async def test_concurrency_of_a_run_and_of_an_owner_is_exact(services: Services) -> None:
    first = await running_run(services, "alice", 5)
    second = await running_run(services, "alice", 5)
    # Ten claimers at once against a limit of 2 per run and 3 per owner: 3 leases in all.
    got = await asyncio.gather(
        *(services.runs.claim_batch(claim(f"w{i}", run_limit=2, owner_limit=3)) for i in range(10))
    )
    leased = [c for c in got if c is not None]
    assert len(leased) == 3
    per_run = {first.run_id: 0, second.run_id: 0}
    for claimed in leased:
        per_run[claimed.run_id] += 1
    assert sorted(per_run.values()) == [1, 2]
    # Oldest run first, lowest index first, no batch twice.
    assert len({(c.run_id, c.index) for c in leased}) == 3
    assert {c.index for c in leased if c.run_id == first.run_id} == {0, 1}


async def test_a_cancelled_run_or_a_dead_executor_gives_no_batch(services: Services) -> None:
    lease = await running_run(services, "bob", 3)
    await services.runs.request_cancel("bob", lease.run_id)
    assert await services.runs.claim_batch(claim("w")) is None
    other = await services.runs.create("bob", MANIFEST)
    short = await services.runs.acquire(other.id, "executor", 0.2)
    assert short is not None
    await services.runs.open_batches(short, 3)
    await asyncio.sleep(0.3)  # the executor's lease ends: it is dead for the fleet
    assert await services.runs.claim_batch(claim("w")) is None


async def test_a_batch_commits_only_under_its_own_lease(services: Services) -> None:
    lease = await running_run(services, "carol", 2)
    taken = await services.runs.claim_batch(claim("a"))
    assert taken is not None and taken.index == 0
    stale = ClaimedBatch(taken.run_id, taken.owner_id, taken.index, str(uuid.uuid4()))
    with pytest.raises(LeaseLost):
        await services.runs.save_batch(stale.lease, stale.index, '{"start":0}', [])
    saved = await services.runs.save_batch(taken.lease, taken.index, '{"start":0}', ["k|x"])
    assert saved.saved and saved.entities == 1
    with pytest.raises(LeaseLost):  # committed: its lease is gone, a second commit is refused
        await services.runs.save_batch(taken.lease, taken.index, '{"start":0}', [])
    counts = await services.runs.batch_counts(lease.run_id)
    assert (counts.done, counts.pending, counts.running) == (1, 1, 0)
    shares = await services.runs.worker_shares("carol", lease.run_id)
    assert [(s.holder, s.batches) for s in shares] == [("a", 1)]
