"""Group commit: the first write goes alone, the writes that arrive meanwhile share the next
one, and each caller gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from genkeep.db.group_commit import GroupCommit


class Recorder:
    """A write_many that records its batches and refuses negative items, one by one."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def write_many(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await self.release.wait()
        return [ValueError(f"refused {n}") if n < 0 else n * 10 for n in items]


async def test_writes_arriving_meanwhile_share_the_next_batch() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder.write_many, max_batch=3)
    first = asyncio.create_task(group.write(1))
    await asyncio.sleep(0)  # the first batch is in flight with item 1 alone
    rest = [asyncio.create_task(group.write(n)) for n in (2, -3, 4, 5)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 10
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[2:] == [40, 50]
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "refused -3"
    assert recorder.batches == [[1], [2, -3, 4], [5]]


async def test_a_failed_batch_fails_each_of_its_callers() -> None:
    async def broken(items: list[int]) -> list[int | Exception]:
        raise ConnectionError("database gone")

    group: GroupCommit[int, int] = GroupCommit(broken)
    outcomes = await asyncio.gather(*(group.write(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)


async def test_a_cancelled_caller_does_not_cancel_its_batch() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder.write_many)
    waiting = asyncio.create_task(group.write(7))
    neighbour = asyncio.create_task(group.write(8))
    await asyncio.sleep(0)
    waiting.cancel()
    recorder.release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await neighbour == 80
    assert recorder.batches == [[7, 8]]  # its row was still written
