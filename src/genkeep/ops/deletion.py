"""Deleting a job, a prompt or a whole owner: crash-safe, audited, work stopped first (I17).

The audit record is written first; then the scope's work is stopped (queued tasks
cancelled, running tasks and live runs asked to stop, an owner's keys revoked) and the
running tasks are given ``deletion_wait_s`` to stop; then rows go child tables first, in
bounded batches, each batch its own transaction. A run's blobs go before its row (the row
is how they are found again); a job's and an owner's blobs go by prefix after the rows.
The record is stamped finished last, so a SIGKILL anywhere leaves a pending record that
``finish_pending`` (``genkeep ops sweep``) or the same request again carries to the end.
A worker still holding a lease on a deleted task is fenced out and commits nothing; a blob
it writes later is an orphan of a task that is gone, which the sweep collects.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from genkeep.blobs import BlobStore
from genkeep.db.deletions import DeletionStore, Scope
from genkeep.db.jobs import Audit
from genkeep.errors import NotFound
from genkeep.services import Services

log = logging.getLogger(__name__)


async def delete_job(services: Services, owner_id: str, job_id: str, audit: Audit) -> None:
    """Delete the owner's job, its tasks, events, artifacts, runs and blobs; 404 if none."""
    if await services.jobs.get(owner_id, job_id) is None:
        raise NotFound(f"job {job_id} not found")
    await _delete(services, Scope(owner_id, "job", job_id), audit)


async def delete_prompt(services: Services, owner_id: str, prompt_id: str, audit: Audit) -> None:
    """Delete the owner's prompt, every result version and every export rendered from them."""
    if not await DeletionStore(services.database).prompt_exists(owner_id, prompt_id):
        raise NotFound(f"prompt {prompt_id} not found")
    await _delete(services, Scope(owner_id, "prompt", prompt_id), audit)


async def purge_owner(services: Services, owner_id: str, audit: Audit) -> dict[str, int]:
    """Delete everything of the owner (keys revoked first); what went, by kind."""
    store = DeletionStore(services.database)
    if not await store.owner_exists(owner_id):
        raise NotFound(f"owner {owner_id} has nothing stored")
    for unfinished in await store.pending():
        if unfinished.kind == "owner" and unfinished.owner_id == owner_id:
            # A purge a crash cut short: finish that one, under its own record.
            scope = Scope(owner_id, "owner", owner_id)
            return await carry_out(services, unfinished.id, scope)
    return await _delete(services, Scope(owner_id, "owner", owner_id), audit)


async def finish_pending(services: Services) -> int:
    """Carry every deletion a crash cut short to its end; how many were finished."""
    store = DeletionStore(services.database)
    finished = 0
    for deletion in await store.pending():
        scope = Scope(deletion.owner_id, deletion.kind, deletion.target_id)
        await carry_out(services, deletion.id, scope)
        finished += 1
    return finished


async def _delete(services: Services, scope: Scope, audit: Audit) -> dict[str, int]:
    deletion_id = await DeletionStore(services.database).begin(scope, audit)
    return await carry_out(services, deletion_id, scope)


async def carry_out(services: Services, deletion_id: str, scope: Scope) -> dict[str, int]:
    """Run (or run again) every step of one deletion, then stamp its record finished."""
    store = DeletionStore(services.database)
    batch = services.settings.sweep_batch
    counts: Counter[str] = Counter()
    if scope.kind in ("job", "owner"):
        await store.stop_work(scope)
        await _wait_for_running(store, scope, services.settings.deletion_wait_s)
        counts.update(await _delete_runs(store, services.blobs, scope, batch))
        while True:
            step = await store.delete_job_rows(scope, batch)
            counts.update(step)
            if not any(step.values()):
                break
        prefix = f"owners/{scope.owner_id}/"
        if scope.kind == "job":
            prefix += f"jobs/{scope.target_id}/"
        counts["blobs"] += await _delete_prefix(services.blobs, prefix, batch)
    if scope.kind == "prompt":
        while keys := await store.delete_prompt_exports(scope, batch):
            counts["artifacts"] += len(keys)
            for key in keys:
                await services.blobs.delete(key)
            counts["blobs"] += len(keys)
    if scope.kind in ("prompt", "owner"):
        while True:
            step = await store.delete_prompt_rows(scope, batch)
            counts.update(step)
            if not any(step.values()):
                break
    if scope.kind == "owner":
        while deleted := await store.delete_usage(scope, batch):
            counts["usage"] += deleted
        while deleted := await store.delete_keys(scope, batch):
            counts["api_keys"] += deleted
    kept = {name: count for name, count in counts.items() if count}
    await store.finish(deletion_id, kept)
    log.info("deleted %s %s of owner %s: %s", scope.kind, scope.target_id, scope.owner_id, kept)
    return kept


async def _wait_for_running(store: DeletionStore, scope: Scope, wait_s: float) -> None:
    """Give the running tasks asked to stop a moment to do so (fencing covers the rest)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    # Polled: the worker that stops a task runs in another process, with nothing to await.
    while await store.running_tasks(scope) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _delete_runs(
    store: DeletionStore, blobs: BlobStore, scope: Scope, batch: int
) -> Counter[str]:
    counts: Counter[str] = Counter()
    while runs := await store.run_blobs(scope, batch):
        kept = await store.inputs_kept(scope, [key for _, key in runs])
        for run_id, input_key in runs:
            counts["blobs"] += await _delete_prefix(
                blobs, f"owners/{scope.owner_id}/runs/{run_id}/", batch
            )
            if input_key not in kept and await blobs.exists(input_key):
                await blobs.delete(input_key)
                counts["blobs"] += 1
        run_ids = [run_id for run_id, _ in runs]
        while True:
            step = await store.delete_runs(scope, run_ids, batch)
            counts.update(step)
            if "runs" in step:
                break
    return counts


async def _delete_prefix(blobs: BlobStore, prefix: str, batch: int) -> int:
    deleted = 0
    pending: list[str] = []
    async for key in blobs.list_keys(prefix):
        pending.append(key)
        if len(pending) >= batch:
            for found in pending:
                await blobs.delete(found)
            deleted, pending = deleted + len(pending), []
    for found in pending:
        await blobs.delete(found)
    return deleted + len(pending)
