"""Token buckets in the database, shared by every API and worker process.

One conditional ``UPDATE`` refills a bucket by the database's clock and takes from it only
if both its requests and its tokens suffice, so processes cannot overdraw it between a check
and a charge: the row lock (PostgreSQL) or the write lock (SQLite) orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Float, Table, bindparam, case, literal, select, update

from genkeep.db.database import Database, completes_when_cancelled
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


def _least(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


class RateBuckets:
    """``take(name, rates, tokens)``: one request and ``tokens`` from a bucket, or the wait."""

    def __init__(self, database: Database) -> None:
        self.db = database
        now = database.driver.epoch()
        table: Table = RateBucket.__table__  # type: ignore[assignment]
        elapsed = case((now > table.c.refilled_at, now - table.c.refilled_at), else_=0.0)
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
        # Built once: SQLAlchemy compiles each once per process, not per call.
        self._take = (
            update(table)
            .where(table.c.name == bindparam("bucket"), requests >= wanted, tokens >= cost)
            .values(
                requests=requests - wanted,
                tokens=tokens - cost,
                refilled_at=case((now > table.c.refilled_at, now), else_=table.c.refilled_at),
            )
            .returning(table.c.requests, table.c.tokens)
        )
        self._peek = select(
            requests.label("requests"), tokens.label("tokens"), literal(1).label("found")
        ).where(table.c.name == bindparam("bucket"))
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
        self._known: set[str] = set()

    @completes_when_cancelled
    async def take(
        self, name: str, rates: BucketRates, tokens: float = 0.0, requests: float = 1.0
    ) -> Taken:
        """Take ``requests`` and ``tokens`` if the bucket has both; else say how long to wait."""
        params = {
            "wanted": float(requests),
            "bucket": name,
            "req_cap": rates.request_capacity(),
            "req_rate": (rates.rpm if rates.rpm is not None else UNLIMITED) / 60,
            "tok_cap": rates.token_capacity(tokens),
            "tok_rate": (rates.tpm if rates.tpm is not None else UNLIMITED) / 60,
            "cost": float(tokens),
        }
        if name not in self._known:
            await self._create(name, rates, tokens)
            self._known.add(name)
        async with self.db.writing() as connection:
            row = (await connection.execute(self._take, params)).first()
            if row is not None:
                return Taken(True, row.requests, row.tokens, 0.0)
            peek = (await connection.execute(self._peek, params)).first()
        if peek is None:  # deleted meanwhile (a reset): made again on the next take
            self._known.discard(name)
            return Taken(False, 0.0, 0.0, 0.0)
        waits = [0.0]
        if peek.requests < requests:
            waits.append((requests - peek.requests) / params["req_rate"])
        if peek.tokens < tokens:
            waits.append((tokens - peek.tokens) / params["tok_rate"])
        return Taken(False, peek.requests, peek.tokens, max(waits))

    @completes_when_cancelled
    async def correct(self, name: str, rates: BucketRates, tokens: float, taken: float) -> None:
        """Give ``tokens`` back to a bucket ``taken`` tokens were taken from (negative: take
        that many more)."""
        params = {"bucket": name, "delta": float(tokens), "tok_cap": rates.token_capacity(taken)}
        async with self.db.writing() as connection:
            await connection.execute(self._correct, params)

    async def _create(self, name: str, rates: BucketRates, tokens: float) -> None:
        """A new bucket starts full."""
        values = {
            "name": name,
            "requests": rates.request_capacity(),
            "tokens": rates.token_capacity(tokens),
            "refilled_at": 0.0,
        }
        statement = self.db.driver.insert_ignoring_conflicts(RateBucket.__table__, values)  # type: ignore[arg-type]
        async with self.db.writing() as connection:
            await connection.execute(statement)
