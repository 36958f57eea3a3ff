"""The Driver interface: everything that differs between databases, one class per database.

Repositories hold one implementation per method and call the driver where SQL or behaviour
differs: upserts, the clock, the task queue's claim/complete/submit statements, the batch
checkpoint, wake-ups, the hit read, the migration lock, connection set-up and the
classification of errors. A speed-up (one statement instead of a transaction, a raw
driver connection instead of SQLAlchemy's) is a property of a driver, never a second path.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Float, Select, Table, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement

from genkeep.db.drivers.types import UTCDateTime

# A row as a driver returns it: column name -> value.
Row = Mapping[Any, Any]

# Execution option marking a write transaction (a driver may take its write lock up front).
WRITE_OPTION = "genkeep_write"

# Channels of the wake-ups: new tasks (sent by submit and release), and the change feeds'
# (sent by migration 0005's and 0006's triggers when a stream watches the row).
TASKS_CHANNEL = "genkeep_tasks"
TASK_CHANGES_CHANNEL = "genkeep_task_changes"
RUN_CHANGES_CHANNEL = "genkeep_run_changes"


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """A worker's claim of up to ``limit`` due tasks, each leased ``lease_s`` under ``token``."""

    worker_id: str
    token: str
    lease_s: float
    limit: int

    @property
    def actor(self) -> str:
        return f"worker:{self.worker_id}"


@dataclass(frozen=True, slots=True)
class TaskCompletion:
    """A task's output, committed only while ``token`` still holds its lease."""

    task_id: str
    token: str
    worker_id: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewTask:
    """A submission: inserted queued unless (owner, idempotency key) exists."""

    id: str
    owner_id: str
    job_id: str
    kind: str
    idempotency_key: str
    request_hash: str
    payload: dict[str, Any]
    max_attempts: int
    timeout_s: float
    trace_id: str
    actor: str
    now: datetime
    # The submitter's PRODUCER span as a W3C traceparent (None while tracing is off).
    trace_context: str | None = None
    # The API key it was submitted with (None: none, or a trusted gateway's owner header).
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchCheckpoint:
    """A batch result to commit with its new registry entries, fenced by the run's lease."""

    run_id: str
    token: str
    batch_index: int
    result: str
    checksum: str
    entity_keys: Sequence[str]
    now: datetime


@dataclass(frozen=True, slots=True)
class BatchClaim:
    """A worker's claim of one batch of a running run (or of ``run_id`` only), leased
    ``lease_s`` under ``token``: at most ``run_concurrency`` live batch leases per run
    (a run's own ``concurrency`` first) and ``owner_concurrency`` per owner (0: no total)."""

    holder: str
    token: str
    lease_s: float
    extractors: Sequence[str]
    run_concurrency: int
    owner_concurrency: int = 0
    run_id: str | None = None
    exclude_runs: Sequence[str] = ()
    # Not runs this executor holds: a process extracts its own runs' batches at its own
    # concurrency, and helps only other processes' runs.
    not_executed_by: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointOutcome:
    """``owned``: the lease still held; ``saved``: the batch was new (counted once)."""

    owned: bool
    saved: bool
    entities_found: int
    cancel_requested: bool


class Listener(Protocol):
    """An open LISTEN: messages arrive until it is closed."""

    async def close(self) -> None: ...


class ReadStatement:
    """A SELECT compiled once per dialect, with its parameter names in positional order."""

    def __init__(self, query: Select[*tuple[Any, ...]]) -> None:
        self.query = query
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.query.compile(dialect=dialect)
            found = (compiled.string, tuple(compiled.positiontup or ()))
            self._compiled[dialect.name] = found
        return found


class WriteStatement:
    """One self-contained write with RETURNING (an upsert), compiled once per dialect; its
    constants are bound parameters with their values kept."""

    def __init__(self, statement: Insert) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def positional(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL for ``dialect`` and its parameters in order."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            found = (compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params))
            self._compiled[dialect.name] = found
        sql, names, constants = found
        return sql, [params[name] if name in params else constants[name] for name in names]


class Driver(Protocol):
    """One database's way of doing what genkeep needs; nothing outside drivers branches."""

    url: URL
    engine: AsyncEngine
    # The database is a file this process opens: created and migrated on first use.
    embedded: bool
    # ALTER TABLE is done by copying the table (Alembic's batch mode).
    rebuilds_tables_to_alter: bool

    # -- set-up, health and errors --------------------------------------------------------

    def location(self) -> str:
        """Where the data lives, for people: a file path, or the URL without its password."""
        ...

    def is_new(self) -> bool:
        """Whether the database was never created (an embedded file missing or empty)."""
        ...

    def snapshot_options(self) -> dict[str, Any]:
        """Execution options under which a read transaction sees one snapshot throughout."""
        ...

    def migration_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while migrating: other processes' migrations wait until it is released."""
        ...

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query now."""
        ...

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` means the database could not be reached (a 503, not a bug)."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...

    # -- statements repositories run in their own transactions ----------------------------

    def now(self) -> ColumnElement[datetime]:
        """The database's current time: every lease and due time is judged by it."""
        ...

    def epoch(self) -> ColumnElement[float]:
        """The database's clock in seconds since 1970 (rate buckets, attempt windows)."""
        ...

    def now_plus(self, seconds: float) -> ColumnElement[datetime]:
        """The database's current time plus ``seconds``."""
        ...

    def insert_ignoring_conflicts(self, table: Table, values: dict[str, Any]) -> Insert:
        """``INSERT … ON CONFLICT DO NOTHING``: the loser of a race inserts nothing."""
        ...

    def insert_each_ignoring_conflicts(self, table: Table, returning: str) -> Insert:
        """The same for executemany, RETURNING ``returning`` of the rows inserted."""
        ...

    def bump_counter(self, table: Table, keys: dict[str, Any], column: str) -> Insert:
        """Insert ``column`` = 1, or add one to it; RETURNING its new value."""
        ...

    def upsert_if_newer(
        self, table: Table, keys: dict[str, Any], values: dict[str, Any], order: str
    ) -> Insert:
        """Insert, or update only if ``values[order]`` is greater than the stored one."""
        ...

    def upsert_where(
        self,
        table: Table,
        keys: list[str],
        values: dict[str, Any],
        updates: dict[str, Any],
        where: Any,
        returning: list[str],
    ) -> Insert:
        """Insert ``values``; on conflict on ``keys`` apply ``updates`` only where ``where``
        holds for the stored row. RETURNING ``returning``: no row means nothing changed."""
        ...

    def upsert_unless(
        self,
        table: Table,
        keys: dict[str, Any],
        values: dict[str, Any],
        updates: dict[str, Any],
        unless: Any,
    ) -> Insert:
        """Insert; on conflict apply ``updates`` (None: the new value) unless ``unless`` holds
        for the stored row. RETURNING the keys: no row means the stored one was kept."""
        ...

    # -- the hot paths: one call each -----------------------------------------------------

    async def fetch_one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Row | None:
        """The first row of a lone SELECT (a cache hit), read outside any transaction."""
        ...

    async def write_transient(
        self, statement: WriteStatement, params: Mapping[str, Any]
    ) -> Row | None:
        """Run one write statement alone, committed on its own, the first row it returns;
        for state a database server's crash may lose the last moments of (a rate bucket's
        take): the commit may not be waited to disk."""
        ...

    async def task_claim(self, claim: TaskClaim) -> list[Row]:
        """Lease up to ``claim.limit`` queued tasks due by the database's clock, oldest due
        first, each with its ``task.started`` event; the tasks' rows."""
        ...

    async def task_complete_many(self, completions: Sequence[TaskCompletion]) -> set[str]:
        """Complete each task still leased under its token (with its event); the ids done."""
        ...

    async def task_complete_and_claim(
        self, completions: Sequence[TaskCompletion], claim: TaskClaim
    ) -> tuple[set[str], list[Row]]:
        """``task_complete_many`` then ``task_claim``, committed together."""
        ...

    async def task_submit_many(self, tasks: Sequence[NewTask]) -> list[Row | Exception | None]:
        """Insert each task (with its event) unless its key exists; per task its row, None
        when the key existed, or the error the database refused that task alone with."""
        ...

    async def run_checkpoint(self, checkpoint: BatchCheckpoint) -> CheckpointOutcome:
        """Commit a batch, its new registry entries and the run's counters atomically, if
        the token owns the run or the batch's lease and the batch is not already done."""
        ...

    async def run_batch_claim(self, claim: BatchClaim) -> Row | None:
        """Lease one claimable batch (pending, or running under an expired lease) of a run
        whose executor's lease is live and which no cancel was asked of, within the run's
        and the owner's concurrency, lowest index of the oldest run first; its
        ``run_id``, ``owner_id`` and ``batch_index``, or None."""
        ...

    # -- wake-ups -------------------------------------------------------------------------

    async def notify_tasks(self, session: AsyncSession) -> None:
        """Wake other processes' workers when ``session`` commits (if the database can)."""
        ...

    async def listen(self, channel: str, on_message: Callable[[str], None]) -> Listener | None:
        """Hear ``channel``'s messages; None where the database sends none (callers poll)."""
        ...


class DbNow(FunctionElement[datetime]):
    """The database's current time; each driver compiles it for its own database."""

    type = UTCDateTime()
    inherit_cache = True


class DbNowPlus(FunctionElement[datetime]):
    """The database's current time plus some seconds (a lease's expiry)."""

    type = UTCDateTime()
    inherit_cache = True


class DbEpoch(FunctionElement[float]):
    """The database's current time in seconds since 1970, read when evaluated (a rate
    bucket's refill must see the time after it waited for the row, not the statement's)."""

    type = Float()
    inherit_cache = True


class DatabaseClock:
    """``now()``, ``now_plus()`` and ``epoch()`` as the drivers share them: one expression
    each, which every driver compiles its own way."""

    def now(self) -> ColumnElement[datetime]:
        return DbNow()

    def epoch(self) -> ColumnElement[float]:
        return DbEpoch()

    def now_plus(self, seconds: float) -> ColumnElement[datetime]:
        return DbNowPlus(literal(float(seconds), Float))


class UpsertStatements(abc.ABC):
    """The upserts, spelled alike by both dialects' ``insert`` constructs."""

    @staticmethod
    @abc.abstractmethod
    def _insert(table: Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's own ``insert``, which knows ``on_conflict``."""

    def insert_ignoring_conflicts(self, table: Table, values: dict[str, Any]) -> Insert:
        return self._insert(table).values(**values).on_conflict_do_nothing()

    def insert_each_ignoring_conflicts(self, table: Table, returning: str) -> Insert:
        return self._insert(table).on_conflict_do_nothing().returning(table.c[returning])

    def bump_counter(self, table: Table, keys: dict[str, Any], column: str) -> Insert:
        statement = self._insert(table).values(**keys, **{column: 1})
        return statement.on_conflict_do_update(
            index_elements=list(keys), set_={column: table.c[column] + 1}
        ).returning(table.c[column])

    def upsert_if_newer(
        self, table: Table, keys: dict[str, Any], values: dict[str, Any], order: str
    ) -> Insert:
        statement = self._insert(table).values(**keys, **values)
        return statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: statement.excluded[name] for name in values},
            where=table.c[order] < statement.excluded[order],
        )

    def upsert_where(
        self,
        table: Table,
        keys: list[str],
        values: dict[str, Any],
        updates: dict[str, Any],
        where: Any,
        returning: list[str],
    ) -> Insert:
        """Insert ``values``; on conflict on ``keys`` apply ``updates`` only where ``where``
        holds for the stored row. RETURNING ``returning``: no row means nothing changed."""
        statement = self._insert(table).values(**values)
        return statement.on_conflict_do_update(
            index_elements=keys, set_=updates, where=where
        ).returning(*[table.c[name] for name in returning])

    def upsert_unless(
        self,
        table: Table,
        keys: dict[str, Any],
        values: dict[str, Any],
        updates: dict[str, Any],
        unless: Any,
    ) -> Insert:
        statement = self._insert(table).values(**keys, **values)
        changes = {
            name: (statement.excluded[name] if change is None else change)
            for name, change in updates.items()
        }
        return statement.on_conflict_do_update(
            index_elements=list(keys), set_=changes, where=~unless
        ).returning(*[table.c[name] for name in keys])


Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


async def each_alone_if_refused(
    write: Callable[[Sequence[Item]], Awaitable[list[Outcome]]],
    batch: Sequence[Item],
    refuses_a_row: Callable[[BaseException], bool],
) -> list[Outcome | Exception]:
    """Write ``batch`` at once; if the database refuses it for one row's data (say, its job
    was just deleted), write each alone, so only the offending row fails. A lost connection
    fails them all: the database is unavailable."""
    try:
        return list(await write(batch))
    except Exception as exc:
        if len(batch) == 1 or not refuses_a_row(exc):
            raise
    outcomes: list[Outcome | Exception] = []
    for item in batch:
        try:
            outcomes.extend(await write([item]))
        except Exception as exc:
            if not refuses_a_row(exc):
                raise
            outcomes.append(exc)
    return outcomes
