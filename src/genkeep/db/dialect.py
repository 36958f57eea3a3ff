"""The dialect seam: the few statements whose SQL differs between SQLite and PostgreSQL.

Both dialects spell ``INSERT … ON CONFLICT`` the same way in SQLAlchemy, but through
different constructs; ``FOR UPDATE SKIP LOCKED`` renders on PostgreSQL and is omitted on
SQLite, whose single writer makes a claim atomic on its own; ``NOTIFY`` exists only on
PostgreSQL (SQLite workers live in one process and wake through an in-process event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, TextClause, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql.dml import Insert

if TYPE_CHECKING:
    from genkeep.db.database import Database

TASKS_CHANNEL = "genkeep_tasks"


def _insert(backend: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if backend == "postgresql" else sqlite.insert(table)


def insert_ignoring_conflicts(backend: str, table: Table, values: dict[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: the loser of a race inserts nothing."""
    return _insert(backend, table).values(**values).on_conflict_do_nothing()


def bump_counter(backend: str, table: Table, keys: dict[str, Any], column: str) -> Insert:
    """``INSERT (…, 1) ON CONFLICT DO UPDATE SET column = column + 1 RETURNING column``."""
    statement = _insert(backend, table).values(**keys, **{column: 1})
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={column: table.c[column] + 1}
    ).returning(table.c[column])


def upsert_if_newer(
    backend: str, table: Table, keys: dict[str, Any], values: dict[str, Any], order: str
) -> Insert:
    """Insert, or update the row only if ``values[order]`` is greater than the stored one."""
    statement = _insert(backend, table).values(**keys, **values)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: statement.excluded[name] for name in values},
        where=table.c[order] < statement.excluded[order],
    )


def wake_workers(backend: str) -> TextClause | None:
    """The statement that wakes listening workers when the transaction commits, if any."""
    if backend == "postgresql":
        return text(f"SELECT pg_notify('{TASKS_CHANNEL}', '')")
    return None


# Any constant works; it only has to be the same in every genkeep process.
_MIGRATION_LOCK_KEY = 0x67656E6B  # "genk"


def migration_lock(backend: str) -> TextClause | None:
    """The statement that makes concurrent ``db upgrade`` runs take turns, if one is needed.

    Without it two migration Jobs on an empty PostgreSQL database both see no schema and
    both create it; the slower one fails on a duplicate table. SQLite needs none: the
    migration's write transaction (BEGIN IMMEDIATE) already makes the second one wait.
    """
    if backend == "postgresql":
        return text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
    return None


TASK_CHANGES_CHANNEL = "genkeep_task_changes"


# Sent by migration 0006's trigger when a stream watches the run (``run_watchers``).
RUN_CHANGES_CHANNEL = "genkeep_run_changes"


def upsert_unless(
    backend: str,
    table: Table,
    keys: dict[str, Any],
    values: dict[str, Any],
    updates: dict[str, Any],
    unless: Any,
) -> Insert:
    """Insert; on conflict apply ``updates`` (``EXCLUDED`` values for names in ``values``
    given as None) unless ``unless`` holds for the stored row. RETURNING the key columns,
    so an empty result means the stored row was kept."""
    statement = _insert(backend, table).values(**keys, **values)
    changes = {
        name: (statement.excluded[name] if change is None else change)
        for name, change in updates.items()
    }
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_=changes, where=~unless
    ).returning(*[table.c[name] for name in keys])


def insert_each_ignoring_conflicts(backend: str, table: Table, returning: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING column`` for executemany: build it once,
    run it with a list of rows; the rows returned are the ones inserted."""
    return _insert(backend, table).on_conflict_do_nothing().returning(table.c[returning])


# One round trip for a batch checkpoint on PostgreSQL: lock the run row if the lease token
# still owns it, upsert the batch unless it is already done, add the new registry entries,
# and bump the counters; it also reports a cancel request, acted on at this boundary.
# Data-modifying CTEs run as one statement, so it commits or fails as a whole, exactly like
# the multi-statement transaction used on SQLite.
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


def checkpoint_statement(backend: str) -> DriverStatement | None:
    """The single-statement batch checkpoint, where the database has one (PostgreSQL)."""
    return DriverStatement(_PG_CHECKPOINT) if backend == "postgresql" else None


# Claim and complete on PostgreSQL in one statement each, with their events (Python time
# per task is what bounds a queue on a small machine: every round trip costs some). Due
# times and leases are stamped and compared by the database's clock (see db/clock.py).
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


def claim_statement(backend: str) -> DriverStatement | None:
    """PostgreSQL's one-statement claim, or None elsewhere."""
    return DriverStatement(_PG_CLAIM) if backend == "postgresql" else None


def complete_statement(backend: str) -> DriverStatement | None:
    """PostgreSQL's one-statement completion of tasks without artifacts (many at once)."""
    return DriverStatement(_PG_COMPLETE) if backend == "postgresql" else None


def complete_and_claim_statement(backend: str) -> DriverStatement | None:
    """PostgreSQL's completion of many tasks and claim of the next ones in one statement."""
    return DriverStatement(_PG_COMPLETE_AND_CLAIM) if backend == "postgresql" else None


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


def submit_many_statement(backend: str) -> DriverStatement | None:
    """PostgreSQL's one-statement submit of many tasks (insert unless the key exists, events,
    one NOTIFY), or None elsewhere."""
    return DriverStatement(_PG_SUBMIT_MANY) if backend == "postgresql" else None


class DriverStatement:
    """A self-contained PostgreSQL statement run on the pooled asyncpg connection itself.

    These run once or more per task or batch. A single statement is atomic on its own, so
    it runs in autocommit; and SQLAlchemy's execution layer would add about 120 µs of Python
    to each (a third of a no-op task's cost), so these few bypass it. Rows are asyncpg
    Records: JSON decoded by the codecs SQLAlchemy installs on its asyncpg connections,
    timestamps timezone-aware UTC, as ``UTCDateTime`` gives them.
    """

    def __init__(self, sql: str) -> None:
        compiled = text(sql).compile(dialect=pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())

    async def fetch(self, database: Database, params: Mapping[str, Any]) -> list[Any]:
        async with database.driver_connection() as connection:
            rows: list[Any] = await connection.fetch(
                self.sql, *(params[name] for name in self.names)
            )
        return rows
