"""A feed hands every reader every piece, however late it starts reading."""

from __future__ import annotations

import asyncio

from genkeep.generate.feed import Feed


async def collect(feed: Feed) -> list[str]:
    return [piece async for piece in feed.read()]


async def test_early_and_late_readers_read_every_piece() -> None:
    feed = Feed()
    early = asyncio.create_task(collect(feed))
    await asyncio.sleep(0)
    feed.push("a ", "m")
    feed.push("b ", "m")
    late = asyncio.create_task(collect(feed))
    await asyncio.sleep(0)
    feed.push("c", "m")
    feed.close()
    assert await early == await late == ["a ", "b ", "c"]
    assert await collect(feed) == ["a ", "b ", "c"]


async def test_started_tells_a_first_piece_from_a_closed_empty_feed() -> None:
    feed = Feed()
    waiting = asyncio.create_task(feed.started())
    await asyncio.sleep(0)
    assert not waiting.done()
    feed.push("x", "m")
    assert await waiting
    empty = Feed()
    empty.close()
    assert not await empty.started()
