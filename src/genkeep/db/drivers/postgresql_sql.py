"""The PostgreSQL driver's hot statements: each one self-contained, run in autocommit."""

from __future__ import annotations

# One round trip for a batch checkpoint on PostgreSQL: lock the run row if the lease token
# still owns it, upsert the batch unless it is already done, add the new registry entries,
# and bump the counters; it also reports a cancel request, acted on at this boundary.
# Data-modifying CTEs run as one statement, so it commits or fails as a whole.
PG_CHECKPOINT = """
WITH owned AS (
    SELECT id, cancel_requested FROM runs
    WHERE id = :run_id AND (
        lease_token = :token
        OR EXISTS (SELECT 1 FROM run_batches
                   WHERE run_id = :run_id AND batch_index = :batch_index AND lease_token = :token)
    )
    FOR UPDATE
), saved AS (
    INSERT INTO run_batches (run_id, batch_index, status, result, checksum, error, attempts,
                             updated_at)
    SELECT :run_id, :batch_index, 'done', :result, :checksum, NULL, 1, :now FROM owned
    ON CONFLICT (run_id, batch_index) DO UPDATE
        SET status = 'done', result = EXCLUDED.result, checksum = EXCLUDED.checksum,
            error = NULL, attempts = run_batches.attempts + 1, updated_at = EXCLUDED.updated_at,
            lease_token = NULL, lease_expires_at = NULL
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


# A fleet's batch claim, in one transaction: the candidate run, then the owner's advisory
# lock, then the claim. Under the lock the claim statement takes a fresh snapshot (read
# committed), so the concurrency counts it checks are exact: two workers of one owner never
# both take the last free slot. Claimable: pending, or running under an expired lease.
_LIVE_RUN = """r.status = 'running' AND NOT r.cancel_requested
    AND r.lease_expires_at > statement_timestamp()"""
_CLAIMABLE = """(b.status = 'pending'
    OR (b.status = 'running' AND b.lease_expires_at < statement_timestamp()))"""
_LIVE_BATCH = "l.status = 'running' AND l.lease_expires_at >= statement_timestamp()"
PG_BATCH_CANDIDATE = f"""
SELECT r.id, r.owner_id FROM runs AS r
WHERE {_LIVE_RUN}
  AND r.extractor_name = ANY(CAST(:extractors AS TEXT[]))
  AND NOT (r.id = ANY(CAST(:exclude AS TEXT[])))
  AND (CAST(:only_run AS TEXT) IS NULL OR r.id = CAST(:only_run AS TEXT))
  AND (CAST(:not_holder AS TEXT) IS NULL OR r.holder IS DISTINCT FROM CAST(:not_holder AS TEXT))
  AND EXISTS (SELECT 1 FROM run_batches AS b WHERE b.run_id = r.id AND {_CLAIMABLE})
  AND (SELECT count(*) FROM run_batches AS l WHERE l.run_id = r.id AND {_LIVE_BATCH})
      < COALESCE(r.concurrency, :run_limit)
ORDER BY r.created_at, r.id
LIMIT 1
"""
PG_OWNER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('genkeep-batches:' || :owner))"
PG_BATCH_CLAIM = f"""
UPDATE run_batches AS t
SET status = 'running', holder = :holder, lease_token = :token,
    lease_expires_at = statement_timestamp() + CAST(:lease_s AS FLOAT8) * INTERVAL '1 second',
    claimed_at = statement_timestamp(), updated_at = statement_timestamp()
FROM runs AS r
WHERE r.id = :run_id AND t.run_id = r.id AND {_LIVE_RUN}
  AND t.batch_index = (
      SELECT b.batch_index FROM run_batches AS b
      WHERE b.run_id = :run_id AND {_CLAIMABLE}
      ORDER BY b.batch_index LIMIT 1 FOR UPDATE SKIP LOCKED)
  AND (SELECT count(*) FROM run_batches AS l WHERE l.run_id = :run_id AND {_LIVE_BATCH})
      < COALESCE(r.concurrency, :run_limit)
  AND (CAST(:owner_limit AS INTEGER) = 0
       OR (SELECT count(*) FROM run_batches AS l JOIN runs AS o ON o.id = l.run_id
           WHERE o.owner_id = r.owner_id AND {_LIVE_BATCH}) < :owner_limit)
RETURNING t.run_id, r.owner_id, t.batch_index
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
           jsonb_build_object('task_id', id, 'kind', kind, 'attempt', attempts,
                              'worker', CAST(:worker AS TEXT)),
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
    RETURNING t.id, t.kind, t.job_id, t.owner_id, t.trace_id, i.actor
), done_events AS (
    INSERT INTO job_events (job_id, owner_id, event_type, payload, trace_id, actor, created_at)
    SELECT job_id, owner_id, 'task.completed',
           jsonb_build_object('task_id', id, 'kind', kind, 'artifacts', CAST('[]' AS JSONB)),
           trace_id, actor, :now
    FROM done
)"""

PG_CLAIM = f"WITH {_CLAIM_CTES}\nSELECT * FROM claimed ORDER BY run_after"
PG_COMPLETE = f"WITH {_COMPLETE_CTES}\nSELECT id FROM done"
# A worker's completions and its next claim in one round trip (the tasks it completes are
# running, so the claim cannot pick them): one commit where there were two. The first
# column lists the completed ids; the claimed tasks follow, one per row (none: one row of
# NULLs).
PG_COMPLETE_AND_CLAIM = f"""WITH {_COMPLETE_CTES}, {_CLAIM_CTES}
SELECT (SELECT array_agg(id) FROM done) AS done_ids, c.*
FROM (SELECT 1) AS one LEFT JOIN claimed AS c ON true
ORDER BY c.run_after
"""


# Many submissions in one statement (a group commit, see db/group_commit.py): each row is
# inserted unless its (owner, idempotency key) exists, even earlier in the same batch; one
# commit and one NOTIFY serve the whole batch.
PG_SUBMIT_MANY = """
WITH input AS (
    SELECT * FROM unnest(
        CAST(:ids AS VARCHAR[]), CAST(:owner_ids AS VARCHAR[]), CAST(:job_ids AS VARCHAR[]),
        CAST(:kinds AS VARCHAR[]), CAST(:keys AS VARCHAR[]), CAST(:hashes AS VARCHAR[]),
        CAST(:payloads AS TEXT[]), CAST(:max_attempts AS INTEGER[]),
        CAST(:timeouts AS FLOAT8[]), CAST(:trace_ids AS VARCHAR[]), CAST(:actors AS TEXT[]),
        CAST(:nows AS TIMESTAMPTZ[]), CAST(:trace_contexts AS VARCHAR[]),
        CAST(:key_ids AS VARCHAR[])
    ) WITH ORDINALITY AS i(id, owner_id, job_id, kind, idempotency_key, request_hash, payload,
                           max_attempts, timeout_s, trace_id, actor, now, trace_context, key_id,
                           n)
), created AS (
    INSERT INTO tasks (id, owner_id, job_id, kind, idempotency_key, request_hash, payload,
                       status, stage, progress, attempts, max_attempts, run_after, timeout_at,
                       cancel_requested, trace_id, trace_context, key_id, created_at,
                       updated_at)
    SELECT id, owner_id, job_id, kind, idempotency_key, request_hash, CAST(payload AS JSONB),
           'queued', 'queued', 0.0, 0, max_attempts, statement_timestamp(),
           statement_timestamp() + timeout_s * INTERVAL '1 second', false, trace_id,
           trace_context, key_id, now, now
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
