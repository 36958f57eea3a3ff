"""Token buckets in the database, shared by every API and worker process.

One statement, ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING``, creates a bucket full
or refills it by the database's clock, and takes from it only if both its requests and its
tokens suffice, so processes cannot overdraw it between a check and a charge: the row lock
(PostgreSQL) or the write lock (SQLite) orders them. The driver runs it alone (on PostgreSQL
in autocommit, one round trip); only a refusal reads the bucket again, for the wait.
"""

from __future__ import annotations

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


def _least(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


class RateBuckets:
    """``take(name, rates, tokens)``: one request and ``tokens`` from a bucket, or the wait."""

    def __init__(self, database: Database) -> None:
        self.db = database
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
