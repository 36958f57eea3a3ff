"""The PostgreSQL driver: asyncpg, with the hot statements as single raw statements.

The task queue's claim, completion and submission and a run's batch checkpoint are one
statement each (data-modifying CTEs, atomic on their own), run in autocommit on an asyncpg
pool of the driver's own: SQLAlchemy's execution layer and pooled connection would add
about 120 µs of Python to each, a third of a no-op task's cost. The cache-hit read has a
pool of its own too, so a burst of hits never waits behind writes. Wake-ups are
LISTEN/NOTIFY; the clock is ``statement_timestamp()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.ext.compiler import compiles

from genkeep.db.drivers.base import (
    TASKS_CHANNEL,
    BatchCheckpoint,
    BatchClaim,
    CheckpointOutcome,
    DatabaseClock,
    DbEpoch,
    DbNow,
    DbNowPlus,
    NewTask,
    ReadStatement,
    Row,
    TaskClaim,
    TaskCompletion,
    UpsertStatements,
    WriteStatement,
    each_alone_if_refused,
)
from genkeep.db.drivers.errors import lost_connection
from genkeep.db.drivers.postgresql_errors import unavailable
from genkeep.db.drivers.postgresql_sql import (
    PG_BATCH_CANDIDATE,
    PG_BATCH_CLAIM,
    PG_CHECKPOINT,
    PG_CLAIM,
    PG_COMPLETE,
    PG_COMPLETE_AND_CLAIM,
    PG_OWNER_LOCK,
    PG_SUBMIT_MANY,
)
from genkeep.db.types import utcnow
from genkeep.db.url import libpq_dsn, redacted

# URL query options SQLAlchemy's asyncpg dialect consumes itself; asyncpg.connect refuses them.
_SQLALCHEMY_ONLY = (
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_fallback",
)
# Any constant works; it only has to be the same in every genkeep process.
_MIGRATION_LOCK_KEY = 0x67656E6B  # "genk"


@compiles(DbNow, "postgresql")
def _now(element: DbNow, compiler: Any, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(DbNowPlus, "postgresql")
def _now_plus(element: DbNowPlus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + CAST({seconds} AS DOUBLE PRECISION) * INTERVAL '1 second')"


@compiles(DbEpoch, "postgresql")
def _epoch(element: DbEpoch, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(): a statement that waited for a row lock refills by the time it got it.
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Autocommit statements leave nothing to reset (asyncpg's default is a round trip)."""


async def _json_codecs(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
        )


def refuses_a_row(error: BaseException) -> bool:
    """Whether the server refused the statement for its data (a constraint, a bad value),
    not for want of a connection."""
    return isinstance(error, (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError))


def is_closed(connection: asyncpg.Connection) -> bool:
    """Whether the session is over; asyncpg's pool takes a closed connection back at once,
    and every call on it then raises InterfaceError."""
    try:
        closed: bool = connection.is_closed()
    except asyncpg.InterfaceError:
        return True
    return closed


class ConnectionPool:
    """At most ``size`` asyncpg connections in autocommit, opened on first use, never
    trimmed while in use, resetting nothing on release (an autocommit statement leaves no
    session state). With ``json_codecs``, JSON columns decode to Python and JSON
    parameters are given as serialized text, as on SQLAlchemy's own asyncpg connections."""

    def __init__(self, connect_kwargs: Mapping[str, Any], size: int, *, json_codecs: bool) -> None:
        self._kwargs = dict(connect_kwargs)
        self._size = size
        self._init = _json_codecs if json_codecs else None
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def pool(self) -> asyncpg.Pool:
        return self._pool or await self._opened()

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=0,
                        max_size=self._size,
                        max_inactive_connection_lifetime=300.0,
                        init=self._init,
                        reset=_no_reset,
                        **self._kwargs,
                    )
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool or await self._opened()
        connection = await pool.acquire()
        try:
            yield connection
        except asyncpg.PostgresError:
            raise  # the server refused the statement; the connection is fine
        except BaseException as exc:
            if not is_closed(connection):
                # Cut off mid-statement (cancelled): the protocol state is unknown.
                connection.terminate()
            elif isinstance(exc, Exception):
                # The server ended the session (terminated, the database dropped), maybe while
                # it sat idle in the pool: asyncpg then fails the statement with a client-side
                # error ("another operation is in progress") that says nothing of the cause.
                raise ConnectionResetError("the database server closed the connection") from exc
            raise
        finally:
            await pool.release(connection)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class _Statement:
    """A self-contained statement with named parameters, run positionally on asyncpg.

    Rows are asyncpg Records: JSON decoded by the pool's codecs, timestamps aware UTC, as
    ``UTCDateTime`` gives them.
    """

    def __init__(self, sql: str) -> None:
        compiled = text(sql).compile(dialect=pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())

    async def fetch(self, pool: ConnectionPool, params: Mapping[str, Any]) -> list[Row]:
        async with pool.connection() as connection:
            return await self.fetch_on(connection, params)

    async def fetch_on(
        self, connection: asyncpg.Connection, params: Mapping[str, Any]
    ) -> list[Row]:
        rows: list[Row] = await connection.fetch(self.sql, *(params[name] for name in self.names))
        return rows


_CLAIM = _Statement(PG_CLAIM)
_COMPLETE = _Statement(PG_COMPLETE)
_COMPLETE_AND_CLAIM = _Statement(PG_COMPLETE_AND_CLAIM)
_SUBMIT_MANY = _Statement(PG_SUBMIT_MANY)
_CHECKPOINT = _Statement(PG_CHECKPOINT)
_BATCH_CANDIDATE = _Statement(PG_BATCH_CANDIDATE)
_OWNER_LOCK = _Statement(PG_OWNER_LOCK)
_BATCH_CLAIM = _Statement(PG_BATCH_CLAIM)


def _claim_params(claim: TaskClaim) -> dict[str, Any]:
    return {
        "limit": claim.limit,
        "token": claim.token,
        "worker": claim.worker_id,
        "lease_s": claim.lease_s,
        "actor": claim.actor,
    }


def _complete_params(completions: Sequence[TaskCompletion]) -> dict[str, Any]:
    return {
        "ids": [done.task_id for done in completions],
        "tokens": [done.token for done in completions],
        "results": [json.dumps(done.result) for done in completions],
        "actors": [f"worker:{done.worker_id}" for done in completions],
        "now": utcnow(),
    }


def _without_done_ids(row: Row) -> Row:
    found = dict(row.items())
    del found["done_ids"]
    return found


def asyncpg_connect_kwargs(url: URL) -> dict[str, Any]:
    """What asyncpg.connect needs for ``url``, as SQLAlchemy's asyncpg dialect reads it."""
    _, kwargs = pg_asyncpg.dialect().create_connect_args(url)  # type: ignore[no-untyped-call]
    for name in _SQLALCHEMY_ONLY:
        kwargs.pop(name, None)
    return dict(kwargs)


async def _listen_connection(dsn: str) -> asyncpg.Connection:
    """A connection of its own for LISTEN: it holds its session for as long as it listens."""
    return await asyncpg.connect(dsn)


class _Listening:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()


def _session_bounds(statement_timeout_s: float | None) -> dict[str, str]:
    """The session settings that bound a statement and its wait for a lock."""
    if statement_timeout_s is None:
        return {}
    milliseconds = str(max(1, round(statement_timeout_s * 1000)))
    return {"statement_timeout": milliseconds, "lock_timeout": milliseconds}


def hot_pool_size(pool_size: int) -> int:
    """Connections of each of the driver's own pools: one short statement each, so a few
    serve thousands a second; under a burst, callers wait for one instead of opening more."""
    return min(pool_size, 4)


class PostgresDriver(DatabaseClock, UpsertStatements):
    """PostgreSQL through asyncpg: SQLAlchemy's engine, and raw pools for the hot paths."""

    embedded = False
    rebuilds_tables_to_alter = False

    def __init__(
        self,
        url: URL,
        *,
        pool_size: int = 10,
        echo: bool = False,
        statement_timeout_s: float | None = None,
    ) -> None:
        self.url = url
        # Each session bounds its statements and lock waits; the server cancels one past
        # it (SQLSTATE 57014 or 55P03), which is_unavailable judges an outage: 503.
        bounds = _session_bounds(statement_timeout_s)
        # No pre-ping: with asyncpg it is a round trip per checkout (BEGIN; ROLLBACK).
        # Connections are recycled instead, and a dropped one fails one request. The hot
        # pools' connections come out of the overflow allowance, so a process still holds
        # at most three times pool_size connections (a pool_size under 5: one or two more).
        hot = hot_pool_size(pool_size)
        transient = 1 if hot <= 2 else 2
        self.engine = create_async_engine(
            url,
            echo=echo,
            # Parameters are user content: an error's message (and so a log) must not carry them.
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=max(0, pool_size * 2 - 2 * hot - transient),
            pool_recycle=300,
            connect_args={"server_settings": bounds} if bounds else {},
        )
        self._dialect = self.engine.dialect
        connect = asyncpg_connect_kwargs(url)
        if bounds:
            connect["server_settings"] = {**connect.get("server_settings", {}), **bounds}
        self._writes = ConnectionPool(connect, hot, json_codecs=True)
        self._reads = ConnectionPool(connect, hot, json_codecs=False)
        # Rate buckets' takes: a commit not waited to disk (a WAL flush took 4.6 of a take's
        # 4.9 ms here). A server crash may lose the last moments' takes, never another
        # process's view of them: a few requests more let through after a crash.
        settings = {**connect.get("server_settings", {}), "synchronous_commit": "off"}
        self._transient = ConnectionPool(
            {**connect, "server_settings": settings}, transient, json_codecs=False
        )

    @staticmethod
    def _insert(table: Table) -> postgresql.Insert:
        return postgresql.insert(table)

    def location(self) -> str:
        return redacted(self.url)

    def is_new(self) -> bool:
        return False  # a server's database is created by its operator, never on first use

    def snapshot_options(self) -> dict[str, Any]:
        # READ COMMITTED, the default, takes a new snapshot per statement.
        return {"isolation_level": "REPEATABLE READ"}

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """An advisory lock on a connection of its own: without it two migration Jobs on an
        empty database both see no schema and both create it; the slower one fails."""
        connection = await asyncpg.connect(libpq_dsn(self.url))
        try:
            await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
            yield
        finally:
            await connection.close()  # ending the session releases the lock

    async def ping(self) -> None:
        async with self._reads.connection() as connection:
            await connection.fetchval("SELECT 1")

    def is_unavailable(self, error: BaseException) -> bool:
        return lost_connection(error) or unavailable(error)

    async def close(self) -> None:
        await self._reads.close()
        await self._writes.close()
        await self._transient.close()
        await self.engine.dispose()

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        sql, names = statement.compiled(self._dialect)
        async with self._reads.connection() as connection:
            row: Row | None = await connection.fetchrow(sql, *(params[name] for name in names))
        return row

    async def write_transient(
        self, statement: WriteStatement, params: Mapping[str, Any]
    ) -> Row | None:
        # Autocommit on a pool of its own: one round trip, where a transaction takes three.
        sql, values = statement.positional(self._dialect, params)
        async with self._transient.connection() as connection:
            row: Row | None = await connection.fetchrow(sql, *values)
        return row

    async def task_claim(self, claim: TaskClaim) -> list[Row]:
        return await _CLAIM.fetch(self._writes, _claim_params(claim))

    async def task_complete_many(self, completions: Sequence[TaskCompletion]) -> set[str]:
        if not completions:
            return set()
        rows = await _COMPLETE.fetch(self._writes, _complete_params(completions))
        return {row["id"] for row in rows}

    async def task_complete_and_claim(
        self, completions: Sequence[TaskCompletion], claim: TaskClaim
    ) -> tuple[set[str], list[Row]]:
        params = _complete_params(completions) | _claim_params(claim)
        rows = await _COMPLETE_AND_CLAIM.fetch(self._writes, params)
        done = set(rows[0]["done_ids"] or ())
        return done, [_without_done_ids(row) for row in rows if row["id"] is not None]

    async def task_submit_many(self, tasks: Sequence[NewTask]) -> list[Row | Exception | None]:
        return await each_alone_if_refused(self._submit_batch, tasks, refuses_a_row)

    async def _submit_batch(self, batch: Sequence[NewTask]) -> list[Row | None]:
        params = {
            "ids": [new.id for new in batch],
            "owner_ids": [new.owner_id for new in batch],
            "job_ids": [new.job_id for new in batch],
            "kinds": [new.kind for new in batch],
            "keys": [new.idempotency_key for new in batch],
            "hashes": [new.request_hash for new in batch],
            "payloads": [json.dumps(new.payload) for new in batch],
            "max_attempts": [new.max_attempts for new in batch],
            "timeouts": [new.timeout_s for new in batch],
            "trace_ids": [new.trace_id for new in batch],
            "trace_contexts": [new.trace_context for new in batch],
            "key_ids": [new.key_id for new in batch],
            "actors": [new.actor for new in batch],
            "nows": [new.now for new in batch],
        }
        created = {row["id"]: row for row in await _SUBMIT_MANY.fetch(self._writes, params)}
        return [created.get(new.id) for new in batch]

    async def run_checkpoint(self, checkpoint: BatchCheckpoint) -> CheckpointOutcome:
        params = {
            "run_id": checkpoint.run_id,
            "token": checkpoint.token,
            "batch_index": checkpoint.batch_index,
            "result": checkpoint.result,
            "checksum": checkpoint.checksum,
            "keys": list(checkpoint.entity_keys),
            "now": checkpoint.now,
        }
        [row] = await _CHECKPOINT.fetch(self._writes, params)
        return CheckpointOutcome(
            owned=row["owned"] > 0,
            saved=row["saved"] > 0,
            entities_found=int(row["entities_found"] or 0),
            cancel_requested=bool(row["cancel_requested"]),
        )

    async def run_batch_claim(self, claim: BatchClaim) -> Row | None:
        params: dict[str, Any] = {
            "extractors": list(claim.extractors),
            "exclude": list(claim.exclude_runs),
            "only_run": claim.run_id,
            "not_holder": claim.not_executed_by,
            "run_limit": claim.run_concurrency,
            "owner_limit": claim.owner_concurrency,
            "holder": claim.holder,
            "token": claim.token,
            "lease_s": claim.lease_s,
        }
        async with self._writes.connection() as connection, connection.transaction():
            candidates = await _BATCH_CANDIDATE.fetch_on(connection, params)
            if not candidates:
                return None
            params |= {"run_id": candidates[0]["id"], "owner": candidates[0]["owner_id"]}
            await _OWNER_LOCK.fetch_on(connection, params)
            claimed = await _BATCH_CLAIM.fetch_on(connection, params)
        return claimed[0] if claimed else None

    async def notify_tasks(self, session: AsyncSession) -> None:
        # NOTIFY is delivered when the transaction commits, and dropped if it rolls back.
        await session.execute(text(f"SELECT pg_notify('{TASKS_CHANNEL}', '')"))

    async def listen(self, channel: str, on_message: Callable[[str], None]) -> _Listening:
        connection = await _listen_connection(libpq_dsn(self.url))
        try:
            await connection.add_listener(
                channel, lambda _c, _pid, _channel, payload: on_message(cast(str, payload))
            )
        except BaseException:
            await connection.close()
            raise
        return _Listening(connection)
