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
    CheckpointOutcome,
    DatabaseClock,
    DbNow,
    DbNowPlus,
    NewTask,
    ReadStatement,
    Row,
    TaskClaim,
    TaskCompletion,
    UpsertStatements,
    each_alone_if_refused,
)
from genkeep.db.drivers.errors import causes, lost_connection, raised_in
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


# One round trip for a batch checkpoint on PostgreSQL: lock the run row if the lease token
# still owns it, upsert the batch unless it is already done, add the new registry entries,
# and bump the counters; it also reports a cancel request, acted on at this boundary.
# Data-modifying CTEs run as one statement, so it commits or fails as a whole.
_PG_CHECKPOINT = """
WITH owned AS (
    SELECT id, cancel_requested FROM runs WHERE id = :run_id AND lease_token = :token FOR UPDATE
), saved AS (
    INSERT INTO run_batches (run_id, batch_index, status, result, checksum, error, attempts,
                             updated_at)
    SELECT :run_id, :batch_index, 'done', :result, :checksum, NULL, 1, :now FROM owned
    ON CONFLICT (run_id, batch_index) DO UPDATE
        SET status = 'done', result = EXCLUDED.result, checksum = EXCLUDED.checksum,
            error = NULL, attempts = run_batches.attempts + 1, updated_at = EXCLUDED.updated_at
        WHERE run_batches.status <> 'done'
    RETURNING batch_index
), added AS (
    INSERT INTO run_entities (run_id, entity_key, first_batch)
    SELECT :run_id, key, :batch_index FROM unnest(CAST(:keys AS TEXT[])) AS key
    WHERE EXISTS (SELECT 1 FROM saved)
    ON CONFLICT DO NOTHING
    RETURNING 1
), counted AS (
    UPDATE runs SET batches_done = batches_done + 1,
                    entities_found = entities_found + (SELECT count(*) FROM added),
                    updated_at = :now
    WHERE id = :run_id AND EXISTS (SELECT 1 FROM saved)
    RETURNING entities_found
)
SELECT (SELECT count(*) FROM owned) AS owned, (SELECT count(*) FROM saved) AS saved,
       (SELECT entities_found FROM counted) AS entities_found,
       (SELECT bool_or(cancel_requested) FROM owned) AS cancel_requested
"""


# Claim and complete on PostgreSQL in one statement each, with their events (Python time
# per task is what bounds a queue on a small machine: every round trip costs some). Due
# times and leases are stamped and compared by the database's clock (``now``).
_CLAIM_CTES = """
picked AS (
    SELECT id FROM tasks
    WHERE status = 'queued' AND run_after <= statement_timestamp()
    ORDER BY run_after
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks AS t
    SET status = 'running', stage = 'starting', lease_token = :token,
        lease_expires_at = statement_timestamp() + CAST(:lease_s AS FLOAT8) * INTERVAL '1 second',
        worker_id = :worker, attempts = t.attempts + 1,
        started_at = statement_timestamp(), updated_at = statement_timestamp()
    FROM picked WHERE t.id = picked.id
    RETURNING t.*
), claim_events AS (
    INSERT INTO job_events (job_id, owner_id, event_type, payload, trace_id, actor, created_at)
    SELECT job_id, owner_id, 'task.started',
           jsonb_build_object('task_id', id, 'attempt', attempts, 'worker', CAST(:worker AS TEXT)),
           trace_id, :actor, statement_timestamp()
    FROM claimed
)"""

_COMPLETE_CTES = """
input AS (
    SELECT * FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:tokens AS VARCHAR[]),
                         CAST(:results AS TEXT[]), CAST(:actors AS TEXT[]))
        AS i(id, token, result, actor)
), done AS (
    UPDATE tasks AS t
    SET status = 'completed', stage = 'done', progress = 1.0, result = CAST(i.result AS JSONB),
        error = NULL, lease_token = NULL, lease_expires_at = NULL, finished_at = :now,
        updated_at = :now
    FROM input AS i
    WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
    RETURNING t.id, t.job_id, t.owner_id, t.trace_id, i.actor
), done_events AS (
    INSERT INTO job_events (job_id, owner_id, event_type, payload, trace_id, actor, created_at)
    SELECT job_id, owner_id, 'task.completed',
           jsonb_build_object('task_id', id, 'artifacts', CAST('[]' AS JSONB)),
           trace_id, actor, :now
    FROM done
)"""

_PG_CLAIM = f"WITH {_CLAIM_CTES}\nSELECT * FROM claimed ORDER BY run_after"
_PG_COMPLETE = f"WITH {_COMPLETE_CTES}\nSELECT id FROM done"
# A worker's completions and its next claim in one round trip (the tasks it completes are
# running, so the claim cannot pick them): one commit where there were two. The first
# column lists the completed ids; the claimed tasks follow, one per row (none: one row of
# NULLs).
_PG_COMPLETE_AND_CLAIM = f"""WITH {_COMPLETE_CTES}, {_CLAIM_CTES}
SELECT (SELECT array_agg(id) FROM done) AS done_ids, c.*
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true
ORDER BY c.run_after
"""


# Many submissions in one statement (a group commit, see db/group_commit.py): each row is
# inserted unless its (owner, idempotency key) exists, even earlier in the same batch; one
# commit and one NOTIFY serve the whole batch.
_PG_SUBMIT_MANY = """
WITH input AS (
    SELECT * FROM unnest(
        CAST(:ids AS VARCHAR[]), CAST(:owner_ids AS VARCHAR[]), CAST(:job_ids AS VARCHAR[]),
        CAST(:kinds AS VARCHAR[]), CAST(:keys AS VARCHAR[]), CAST(:hashes AS VARCHAR[]),
        CAST(:payloads AS TEXT[]), CAST(:max_attempts AS INTEGER[]),
        CAST(:timeouts AS FLOAT8[]), CAST(:trace_ids AS VARCHAR[]), CAST(:actors AS TEXT[]),
        CAST(:nows AS TIMESTAMPTZ[])
    ) WITH ORDINALITY AS i(id, owner_id, job_id, kind, idempotency_key, request_hash, payload,
                           max_attempts, timeout_s, trace_id, actor, now, n)
), created AS (
    INSERT INTO tasks (id, owner_id, job_id, kind, idempotency_key, request_hash, payload,
                       status, stage, progress, attempts, max_attempts, run_after, timeout_at,
                       cancel_requested, trace_id, created_at, updated_at)
    SELECT id, owner_id, job_id, kind, idempotency_key, request_hash, CAST(payload AS JSONB),
           'queued', 'queued', 0.0, 0, max_attempts, statement_timestamp(),
           statement_timestamp() + timeout_s * INTERVAL '1 second', false, trace_id, now, now
    FROM input ORDER BY n
    ON CONFLICT (owner_id, idempotency_key) DO NOTHING
    RETURNING *
), events AS (
    INSERT INTO job_events (job_id, owner_id, event_type, payload, trace_id, actor, created_at)
    SELECT c.job_id, c.owner_id, 'task.queued',
           jsonb_build_object('task_id', c.id, 'kind', c.kind), c.trace_id, i.actor, i.now
    FROM created AS c JOIN input AS i ON i.id = c.id
    ORDER BY i.n
), woken AS (
    SELECT pg_notify('genkeep_tasks', '') WHERE EXISTS (SELECT 1 FROM created)
)
SELECT created.* FROM created LEFT JOIN woken ON true
"""


_PG_CLAIM = f"WITH {_CLAIM_CTES}\nSELECT * FROM claimed ORDER BY run_after"
_PG_COMPLETE = f"WITH {_COMPLETE_CTES}\nSELECT id FROM done"
# A worker's completions and its next claim in one round trip (the tasks it completes are
# running, so the claim cannot pick them): one commit where there were two. The first
# column lists the completed ids; the claimed tasks follow, one per row (none: one row of
# NULLs).
_PG_COMPLETE_AND_CLAIM = f"""WITH {_COMPLETE_CTES}, {_CLAIM_CTES}
SELECT (SELECT array_agg(id) FROM done) AS done_ids, c.*
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true
ORDER BY c.run_after
"""


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
            rows: list[Row] = await connection.fetch(
                self.sql, *(params[name] for name in self.names)
            )
        return rows


_CLAIM = _Statement(_PG_CLAIM)
_COMPLETE = _Statement(_PG_COMPLETE)
_COMPLETE_AND_CLAIM = _Statement(_PG_COMPLETE_AND_CLAIM)
_SUBMIT_MANY = _Statement(_PG_SUBMIT_MANY)
_CHECKPOINT = _Statement(_PG_CHECKPOINT)


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


def hot_pool_size(pool_size: int) -> int:
    """Connections of each of the driver's own pools: one short statement each, so a few
    serve thousands a second; under a burst, callers wait for one instead of opening more."""
    return min(pool_size, 4)


# SQLSTATE classes where the server, not the statement, is the trouble: 08 connection
# exception; 28 the login is refused (role gone, NOLOGIN, password); 3D the database does
# not exist (dropped or renamed); 53 insufficient resources (too many connections, disk
# full); 57 operator intervention (shutdown, database dropped, cannot connect now, a
# statement cancelled by an operator or a timeout); 58 the server's own I/O failed.
_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57", "58")
# A read-only transaction refusing a write: a standby after failover, or writes locked out.
_UNAVAILABLE_CODES = frozenset({"25006"})
# Object not in prerequisite state: at log-in, "database does not allow connections"
# (ALTER DATABASE ... ALLOW_CONNECTIONS false); from a statement, a bug.
_UNAVAILABLE_AT_CONNECT = frozenset({"55000"})
_ASYNCPG_CONNECT = "asyncpg.connect_utils"


def unavailable(error: BaseException) -> bool:
    """Whether PostgreSQL (or the way to it) is unavailable: by SQLSTATE, asyncpg's or the
    one SQLAlchemy keeps, or a socket error while asyncpg connected."""
    for cause in causes(error):
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith(_UNAVAILABLE_CLASSES) or sqlstate in _UNAVAILABLE_CODES:
                return True
            if sqlstate in _UNAVAILABLE_AT_CONNECT and raised_in(cause, _ASYNCPG_CONNECT):
                return True
        # An unknown host, no route, every address refusing ("Multiple exceptions: ..."):
        # plain OSErrors, not ConnectionErrors.
        if isinstance(cause, OSError) and raised_in(cause, _ASYNCPG_CONNECT):
            return True
    return False


class PostgresDriver(DatabaseClock, UpsertStatements):
    """PostgreSQL through asyncpg: SQLAlchemy's engine, and two raw pools for the hot paths."""

    embedded = False
    rebuilds_tables_to_alter = False

    def __init__(self, url: URL, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        # No pre-ping: with asyncpg it is a round trip per checkout (BEGIN; ROLLBACK).
        # Connections are recycled instead, and a dropped one fails one request. The hot
        # pools' connections come out of the overflow allowance, so a process still holds
        # at most three times pool_size connections.
        hot = hot_pool_size(pool_size)
        self.engine = create_async_engine(
            url,
            echo=echo,
            # Parameters are user content: an error's message (and so a log) must not carry them.
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=pool_size * 2 - 2 * hot,
            pool_recycle=300,
        )
        self._dialect = self.engine.dialect
        connect = asyncpg_connect_kwargs(url)
        self._writes = ConnectionPool(connect, hot, json_codecs=True)
        self._reads = ConnectionPool(connect, hot, json_codecs=False)

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
        await self.engine.dispose()

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        sql, names = statement.compiled(self._dialect)
        async with self._reads.connection() as connection:
            row: Row | None = await connection.fetchrow(sql, *(params[name] for name in names))
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
