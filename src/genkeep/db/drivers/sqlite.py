"""The SQLite driver: aiosqlite for transactions, plain sqlite3 for the hit read.

One writer at a time: a write transaction takes the lock up front (BEGIN IMMEDIATE), so a
claim is atomic without ``FOR UPDATE``, and the task queue's statements run as short
transactions through SQLAlchemy Core. Workers live in one process and are woken by its own
event (there is no NOTIFY); change feeds poll. The clock is SQLite's ``strftime('now')``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Table,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.ext.compiler import compiles

from genkeep.db.drivers.base import (
    WRITE_OPTION,
    DbEpoch,
    DbNow,
    DbNowPlus,
    Listener,
    NewTask,
    ReadStatement,
    Row,
    TaskClaim,
    TaskCompletion,
    WriteStatement,
    each_alone_if_refused,
)
from genkeep.db.drivers.errors import lost_connection
from genkeep.db.drivers.sqlite_errors import unavailable
from genkeep.db.drivers.sqlite_runs import SqliteRunBatches
from genkeep.db.types import utcnow
from genkeep.errors import ConfigurationError

BUSY_TIMEOUT_MS = 30_000

# SQLite's time functions give milliseconds; three zeros more make the microsecond text
# that SQLAlchemy writes for DateTime columns, so stored stamps compare as text correctly.
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now'{shift}) || '000'"


@compiles(DbNow, "sqlite")
def _now(element: DbNow, compiler: Any, **kw: Any) -> str:
    return _NOW.format(shift="")


@compiles(DbNowPlus, "sqlite")
def _now_plus(element: DbNowPlus, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return _NOW.format(shift=f", ({seconds}) || ' seconds'")


@compiles(DbEpoch, "sqlite")
def _epoch(element: DbEpoch, compiler: Any, **kw: Any) -> str:
    # julianday('now') has the millisecond clock; 2440587.5 is 1970-01-01 as a Julian day.
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        _set_pragmas(dbapi_connection, busy_timeout_ms)

    return on_connect


def _set_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue
    # instead of failing (and bounds the wait: SQLITE_BUSY is an outage, 503); foreign keys
    # are off by default in SQLite.
    # busy_timeout first: switching a new file to WAL needs it alone, and another process
    # may be creating it at that moment.
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The driver's own implicit BEGIN is turned off so that _begin decides the mode.
    dbapi_connection.isolation_level = None


def _begin(connection: Any) -> None:
    # Write transactions take the write lock up front (BEGIN IMMEDIATE), waiting for it under
    # busy_timeout. A deferred one that reads first and writes later cannot wait: SQLite
    # fails its lock upgrade at once with "database is locked" if another writer got in.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def refuses_a_row(error: BaseException) -> bool:
    """Whether SQLite refused the statement for its data (a constraint, a bad value)."""
    return isinstance(error, (IntegrityError, DataError))


class _Reader:
    """One ``sqlite3`` connection used on the event loop for the hit read.

    A WAL read of one row costs less than a hop to aiosqlite's thread; a reader waits for
    no writer, and in the rare case the file is busy (WAL recovery) the read falls back to
    a thread that may wait.
    """

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None

    def _connect(self, timeout: float) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only=ON")
        return connection

    async def fetch_one(self, sql: str, values: list[Any]) -> Row | None:
        if self._connection is None:
            self._connection = self._connect(timeout=0)
        try:
            return _first(self._connection, sql, values)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        return await asyncio.to_thread(self._fetch_waiting, sql, values)

    def _fetch_waiting(self, sql: str, values: list[Any]) -> Row | None:
        connection = self._connect(timeout=self._busy_timeout_ms / 1000)
        try:
            return _first(connection, sql, values)
        finally:
            connection.close()

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.close()


def _first(connection: sqlite3.Connection, sql: str, values: list[Any]) -> Row | None:
    cursor = connection.execute(sql, values)
    try:
        row: Row | None = cursor.fetchone()
        return row
    finally:
        cursor.close()  # resets the statement: an unfinished one would hold its snapshot open


def _file(url: URL) -> Path | None:
    """The database's file; None in memory or behind a ``file:`` URI."""
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query:
        return None
    return Path(path).expanduser()


class SqliteDriver(SqliteRunBatches):
    """An embedded SQLite file (or memory), one writer at a time."""

    embedded = True
    rebuilds_tables_to_alter = True

    def __init__(
        self,
        url: URL,
        tables: Mapping[str, Table],
        *,
        pool_size: int = 10,
        echo: bool = False,
        statement_timeout_s: float | None = None,
    ) -> None:
        self.url = url
        # SQLite has no statement timeout; the wait that can hang is the one for the write
        # lock, bounded by busy_timeout.
        busy_ms = (
            BUSY_TIMEOUT_MS if statement_timeout_s is None else round(statement_timeout_s * 1000)
        )
        # The tables come from the models, which take their column types from the drivers.
        self._tasks, self._events = tables["tasks"], tables["job_events"]
        self._runs, self._batches = tables["runs"], tables["run_batches"]
        self._entities = tables["run_entities"]
        self._file = _file(url)
        if url.database and url.database != ":memory:":
            # Not made here: only the data folder is genkeep's to create (services).
            folder = Path(url.database).expanduser().absolute().parent
            if not folder.is_dir():
                raise ConfigurationError(
                    f"no folder {folder} for the database {url.database}: "
                    "create it, or name a file in an existing folder"
                )
        self.engine = create_async_engine(
            url,
            echo=echo,
            # Parameters are user content: an error's message (and so a log) must not carry them.
            hide_parameters=True,
            connect_args={"timeout": busy_ms / 1000},
        )
        self._dialect = self.engine.dialect
        event.listen(self.engine.sync_engine, "connect", _pragmas(busy_ms))
        event.listen(self.engine.sync_engine, "begin", _begin)
        # An in-memory database exists only inside the engine's own connection.
        self._reader = None if self._file is None else _Reader(str(self._file), busy_ms)
        self._build_batch_statements()

    @staticmethod
    def _insert(table: Table) -> sqlite.Insert:
        return sqlite.insert(table)

    def location(self) -> str:
        return self.url.database or ":memory:"

    def is_new(self) -> bool:
        return self._file is not None and (
            not self._file.exists() or self._file.stat().st_size == 0
        )

    def snapshot_options(self) -> dict[str, Any]:
        return {}  # a read transaction in WAL mode is one snapshot already

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """One process migrates a file at a time: `make run` and a CLI started together
        would otherwise both create the tables, and the second fails half-way."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; first use is rarely concurrent there
            yield
            return
        if self._file is None:
            yield
            return
        lock = await asyncio.to_thread(open, f"{self._file}.migrate-lock", "a")
        try:
            # Polled, not waited for in a thread: waiters blocked in the default executor's
            # few threads left none for the holder's migration, and all of them waited forever.
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            yield
        finally:
            lock.close()  # closing releases the lock

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def is_unavailable(self, error: BaseException) -> bool:
        return lost_connection(error) or unavailable(error)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self.engine.dispose()

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        if self._reader is None:
            async with self.engine.connect() as connection:
                row = (await connection.execute(statement.query, dict(params))).first()
            return None if row is None else row._mapping
        sql, names = statement.compiled(self._dialect)
        return await self._reader.fetch_one(sql, [params[name] for name in names])

    async def write_transient(
        self, statement: WriteStatement, params: Mapping[str, Any]
    ) -> Row | None:
        # A commit in WAL mode with synchronous=NORMAL is not waited to disk already.
        async with self._writing() as connection:
            row = (await connection.execute(statement.statement, dict(params))).first()
        return None if row is None else row._mapping

    async def task_claim(self, claim: TaskClaim) -> list[Row]:
        async with self._writing() as connection:
            return await self._claim(connection, claim)

    async def _claim(self, connection: AsyncConnection, claim: TaskClaim) -> list[Row]:
        due = (
            select(self._tasks.c.id)
            # The IN repeats the claim index's predicate: SQLite uses a partial index only
            # for a query that names it.
            .where(
                self._tasks.c.status.in_(("queued", "running")),
                self._tasks.c.status == "queued",
                self._tasks.c.run_after <= self.now(),
            )
            .order_by(self._tasks.c.run_after)
            .limit(claim.limit)
        )
        claimed = (
            await connection.execute(
                update(self._tasks)
                .where(self._tasks.c.id.in_(due.scalar_subquery()))
                .values(
                    status="running",
                    stage="starting",
                    lease_token=claim.token,
                    lease_expires_at=self.now_plus(claim.lease_s),
                    worker_id=claim.worker_id,
                    attempts=self._tasks.c.attempts + 1,
                    started_at=self.now(),
                    updated_at=self.now(),
                )
                .returning(*self._tasks.c)
            )
        ).mappings()
        rows = sorted(claimed, key=lambda row: row["run_after"])
        now = utcnow()
        events = [
            _event(
                row,
                "task.started",
                {
                    "task_id": row["id"],
                    "kind": row["kind"],
                    "attempt": row["attempts"],
                    "worker": claim.worker_id,
                },
                claim.actor,
                now,
            )
            for row in rows
        ]
        if events:
            await connection.execute(insert(self._events), events)
        return list(rows)

    async def task_complete_many(self, completions: Sequence[TaskCompletion]) -> set[str]:
        if not completions:
            return set()
        async with self._writing() as connection:
            return await self._complete(connection, completions)

    async def _complete(
        self, connection: AsyncConnection, completions: Sequence[TaskCompletion]
    ) -> set[str]:
        now = utcnow()
        done: set[str] = set()
        events = []
        for completion in completions:
            row = (
                (
                    await connection.execute(
                        update(self._tasks)
                        .where(
                            self._tasks.c.id == completion.task_id,
                            self._tasks.c.lease_token == completion.token,
                            self._tasks.c.status == "running",
                        )
                        .values(
                            status="completed",
                            stage="done",
                            progress=1.0,
                            result=completion.result,
                            error=None,
                            lease_token=None,
                            lease_expires_at=None,
                            finished_at=now,
                            updated_at=now,
                        )
                        .returning(
                            self._tasks.c.id,
                            self._tasks.c.kind,
                            self._tasks.c.job_id,
                            self._tasks.c.owner_id,
                            self._tasks.c.trace_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is not None:
                done.add(row["id"])
                payload = {"task_id": row["id"], "kind": row["kind"], "artifacts": []}
                actor = f"worker:{completion.worker_id}"
                events.append(_event(row, "task.completed", payload, actor, now))
        if events:
            await connection.execute(insert(self._events), events)
        return done

    async def task_complete_and_claim(
        self, completions: Sequence[TaskCompletion], claim: TaskClaim
    ) -> tuple[set[str], list[Row]]:
        async with self._writing() as connection:
            done = await self._complete(connection, completions)
            return done, await self._claim(connection, claim)

    async def task_submit_many(self, tasks: Sequence[NewTask]) -> list[Row | Exception | None]:
        return await each_alone_if_refused(self._submit_batch, tasks, refuses_a_row)

    async def _submit_batch(self, batch: Sequence[NewTask]) -> list[Row | None]:
        outcomes: list[Row | None] = []
        async with self._writing() as connection:
            for new in batch:
                values = {
                    "id": new.id,
                    "owner_id": new.owner_id,
                    "job_id": new.job_id,
                    "kind": new.kind,
                    "idempotency_key": new.idempotency_key,
                    "request_hash": new.request_hash,
                    "payload": new.payload,
                    "max_attempts": new.max_attempts,
                    "trace_id": new.trace_id,
                    "trace_context": new.trace_context,
                    "key_id": new.key_id,
                    "status": "queued",
                    "stage": "queued",
                    "progress": 0.0,
                    "attempts": 0,
                    # Due now and timed out by the database's clock: a submitter whose clock
                    # runs ahead must not postpone its own task.
                    "run_after": self.now(),
                    "timeout_at": self.now_plus(new.timeout_s),
                    "cancel_requested": False,
                    "created_at": new.now,
                    "updated_at": new.now,
                }
                statement = self.insert_ignoring_conflicts(self._tasks, values).returning(
                    *self._tasks.c
                )
                row = (await connection.execute(statement)).mappings().first()
                if row is not None:
                    payload = {"task_id": new.id, "kind": new.kind}
                    await connection.execute(
                        insert(self._events),
                        [_event(row, "task.queued", payload, new.actor, new.now)],
                    )
                outcomes.append(row)
        return outcomes

    async def notify_tasks(self, session: AsyncSession) -> None:
        """Nothing to send: SQLite's workers share the submitter's process and its event."""

    async def listen(self, channel: str, on_message: Callable[[str], None]) -> Listener | None:
        return None


def _event(
    task: Row, event_type: str, payload: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    return {
        "job_id": task["job_id"],
        "owner_id": task["owner_id"],
        "event_type": event_type,
        "payload": payload,
        "trace_id": task["trace_id"],
        "actor": actor,
        "created_at": now,
    }
