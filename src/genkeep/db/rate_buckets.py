"""Token buckets in the database, shared by every API and worker process.

One statement, ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING``, creates a bucket full
or refills it by the database's clock, and takes from it only if both its requests and its
tokens suffice, so processes cannot overdraw it between a check and a charge: the row lock
(PostgreSQL) or the write lock (SQLite) orders them. The driver runs it alone (on PostgreSQL
in autocommit, one round trip); only a refusal reads the bucket again, for the wait. The
one-request takes of a bucket that arrive in a process while its statement is out go in the
next statement together (a hot key's hits: one statement for many, each still counted).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Table,
    bindparam,
    case,
    literal_column,
    select,
    update,
)

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.drivers.base import ReadStatement, WriteStatement
from genkeep.db.models import RateBucket

# A rate "without limit": large enough never to bind, small enough for a double's precision.
UNLIMITED = 1e12


@dataclass(frozen=True, slots=True)
class BucketRates:
    """Per-minute rates and how many seconds' worth a bucket holds (its burst)."""

    rpm: float | None
    tpm: float | None
    burst_s: float = 1.0

    def request_capacity(self) -> float:
        return UNLIMITED if self.rpm is None else max(1.0, self.rpm * self.burst_s / 60)

    def token_capacity(self, cost: float) -> float:
        # At least one call's tokens, or a call larger than a burst could never pass.
        if self.tpm is None:
            return UNLIMITED
        return max(cost, self.tpm * self.burst_s / 60)


@dataclass(frozen=True, slots=True)
class Taken:
    """What a take left: granted or not, the levels after it, and the wait until it would pass."""

    granted: bool
    requests_left: float
    tokens_left: float
    wait_s: float


# The takes waiting for a bucket's next statement, and the loop of the task serving them.
_Queue = tuple[asyncio.AbstractEventLoop, list[asyncio.Future[Taken]]]


def _settle(waiting: asyncio.Future[Taken], taken: Taken) -> None:
    if not waiting.done():  # its caller may have given up
        waiting.set_result(taken)


def _least(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


class RateBuckets:
    """``take(name, rates, tokens)``: one request and ``tokens`` from a bucket, or the wait."""

    def __init__(self, database: Database) -> None:
        self.db = database
        # One-request takes waiting per bucket, and the tasks serving them.
        self._queues: dict[tuple[str, BucketRates], _Queue] = {}
        self._draining: set[asyncio.Task[None]] = set()
        now = database.driver.epoch()
        table: Table = RateBucket.__table__  # type: ignore[assignment]
        # Constants written out, not bound: the drivers pass the statements' own parameters only.
        zero = literal_column("0.0", Float)
        elapsed = case((now > table.c.refilled_at, now - table.c.refilled_at), else_=zero)
        requests = _least(
            bindparam("req_cap", type_=Float),
            table.c.requests + elapsed * bindparam("req_rate", type_=Float),
        )
        tokens = _least(
            bindparam("tok_cap", type_=Float),
            table.c.tokens + elapsed * bindparam("tok_rate", type_=Float),
        )
        cost = bindparam("cost", type_=Float)
        wanted = bindparam("wanted", type_=Float)
        later = case((now > table.c.refilled_at, now), else_=table.c.refilled_at)
        # Built once: each compiled once per process, not per call. A new bucket starts
        # full, less what this take takes (a capacity holds at least one take).
        self._take = WriteStatement(
            database.driver.upsert_where(
                table,
                ["name"],
                {
                    "name": bindparam("bucket"),
                    "requests": bindparam("req_cap", type_=Float) - wanted,
                    "tokens": bindparam("tok_cap", type_=Float) - cost,
                    "refilled_at": now,
                },
                {
                    "requests": requests - wanted,
                    "tokens": tokens - cost,
                    "refilled_at": later,
                },
                where=(requests >= wanted) & (tokens >= cost),
                returning=["requests", "tokens"],
            )
        )
        self._peek = ReadStatement(
            select(requests.label("requests"), tokens.label("tokens")).where(
                table.c.name == bindparam("bucket")
            )
        )
        # A call's estimate corrected to what it used: given back (up to the capacity it was
        # taken under) or taken, below zero if need be, so the next admission waits for it.
        self._correct = (
            update(table)
            .where(table.c.name == bindparam("bucket"))
            .values(
                tokens=_least(
                    bindparam("tok_cap", type_=Float),
                    table.c.tokens + bindparam("delta", type_=Float),
                )
            )
        )

    async def take(
        self, name: str, rates: BucketRates, tokens: float = 0.0, requests: float = 1.0
    ) -> Taken:
        """Take ``requests`` and ``tokens`` if the bucket has both; else say how long to wait."""
        if tokens or requests != 1.0:
            return await self._take_alone(name, rates, tokens, requests)
        # One request (a hit's): joined to the takes of this bucket waiting in this process.
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[Taken] = loop.create_future()
        key = (name, rates)
        found = self._queues.get(key)
        if found is None or found[0] is not loop:  # (a queue of a loop since closed: left)
            found = self._queues[key] = (loop, [])
            drain = loop.create_task(self._drain(key, found))
            self._draining.add(drain)
            drain.add_done_callback(self._draining.discard)
        found[1].append(waiting)
        return await waiting

    async def _drain(self, key: tuple[str, BucketRates], found: _Queue) -> None:
        """Serve a bucket's one-request takes: those that arrived while a statement was out go
        together in the next (their own task: a caller's cancel does not stop the others)."""
        name, rates = key
        queue = found[1]
        try:
            while batch := [waiting for waiting in queue if not waiting.done()]:
                queue.clear()
                try:
                    await self._serve(name, rates, batch)
                except Exception as exc:  # the database's error is each caller's
                    for waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(exc)
        finally:
            # No await since the queue was seen empty: none is lost.
            if self._queues.get(key) is found:
                del self._queues[key]

    async def _serve(
        self, name: str, rates: BucketRates, batch: list[asyncio.Future[Taken]]
    ) -> None:
        """``len(batch)`` requests in one statement if the bucket has them all; else one by
        one until one is refused: the bucket had less than a request then, so the rest are
        refused with it. Every request given is taken in the database, so it stays exact."""
        count = len(batch)
        if 1 < count <= rates.request_capacity():
            row = await self.db.driver.write_transient(
                self._take, self._params(name, rates, 0.0, float(count))
            )
            if row is not None:
                for place, waiting in enumerate(batch):
                    left = row["requests"] + (count - 1 - place)
                    _settle(waiting, Taken(True, left, row["tokens"], 0.0))
                return
        for place, waiting in enumerate(batch):
            taken = await self._take_now(name, rates, 0.0, 1.0)
            if not taken.granted:
                for refused in batch[place:]:
                    _settle(refused, taken)
                return
            _settle(waiting, taken)

    @staticmethod
    def _params(name: str, rates: BucketRates, tokens: float, requests: float) -> dict[str, Any]:
        return {
            "wanted": requests,
            "bucket": name,
            "req_cap": rates.request_capacity(),
            "req_rate": (rates.rpm if rates.rpm is not None else UNLIMITED) / 60,
            "tok_cap": rates.token_capacity(tokens),
            "tok_rate": (rates.tpm if rates.tpm is not None else UNLIMITED) / 60,
            "cost": float(tokens),
        }

    @completes_when_cancelled
    async def _take_alone(
        self, name: str, rates: BucketRates, tokens: float, requests: float
    ) -> Taken:
        return await self._take_now(name, rates, tokens, requests)

    async def _take_now(
        self, name: str, rates: BucketRates, tokens: float, requests: float
    ) -> Taken:
        params = self._params(name, rates, tokens, float(requests))
        driver = self.db.driver
        row = await driver.write_transient(self._take, params)
        if row is not None:
            return Taken(True, row["requests"], row["tokens"], 0.0)
        peek = await driver.fetch_one(self._peek, params)
        if peek is None:  # deleted meanwhile (a reset): made again on the next take
            return Taken(False, 0.0, 0.0, 0.0)
        left_requests, left_tokens = peek["requests"], peek["tokens"]
        waits = [0.0]
        if left_requests < requests:
            waits.append((requests - left_requests) / params["req_rate"])
        if left_tokens < tokens:
            waits.append((tokens - left_tokens) / params["tok_rate"])
        return Taken(False, left_requests, left_tokens, max(waits))

    @completes_when_cancelled
    async def correct(self, name: str, rates: BucketRates, tokens: float, taken: float) -> None:
        """Give ``tokens`` back to a bucket ``taken`` tokens were taken from (negative: take
        that many more)."""
        params = {"bucket": name, "delta": float(tokens), "tok_cap": rates.token_capacity(taken)}
        async with self.db.writing() as connection:
            await connection.execute(self._correct, params)
