"""The sweep: deletions a crash cut short, the retention rules (ops/retention.py), expired
non-latest artifacts, then orphan blobs (crash-safe).

A row is deleted before its blob, so a crash leaves at worst an orphan blob, never a row
pointing at nothing; orphans are collected on the next run. A task's blob counts as an
orphan only once its task is finished or gone, so files of running tasks are never touched;
rows and task states are read in one snapshot (db/blob_refs.py), and every attempt writes
under keys of its own, so a blob found orphaned can never be referenced later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from genkeep.core import identity
from genkeep.db.blob_refs import read_references
from genkeep.db.retention import RetentionStore
from genkeep.db.tasks import FINISHED
from genkeep.db.types import utcnow
from genkeep.ops.deletion import finish_pending
from genkeep.ops.retention import apply_retention
from genkeep.ops.sweep_files import collect_unreferenced_files
from genkeep.services import Services

# The database row that records the last sweep (table ``sweeps``).
SWEEP = "sweep"

_TASK_BLOB = re.compile(r"^owners/[^/]+/jobs/(?P<job>[^/]+)/tasks/(?P<task>[^/]+)/")
_FILE_BLOB = re.compile(r"^owners/[^/]+/jobs/(?P<job>[^/]+)/files/")
# A run's documents: written while its row exists, so a missing row means a deleted run.
_RUN_BLOB = re.compile(r"^owners/[^/]+/runs/(?P<run>[^/]+)/")


@dataclass
class SweepReport:
    artifacts_deleted: int = 0
    blobs_deleted: int = 0
    orphans_deleted: int = 0
    files_deleted: int = 0
    deletions_finished: int = 0
    # Rows each retention rule deleted, by rule.
    retention: dict[str, int] = field(default_factory=dict)


async def sweep_if_due(services: Services, holder: str | None = None) -> SweepReport | None:
    """Sweep if no process has in the last ``sweep_interval_s`` (by the database's record);
    None when another process has. What a worker runs periodically."""
    holder = holder or identity.process_id()
    interval = services.settings.sweep_interval_s
    if not await RetentionStore(services.database).claim_sweep(SWEEP, holder, interval):
        return None
    return await sweep(services, holder=holder)


async def sweep(
    services: Services, *, batch: int | None = None, holder: str | None = None
) -> SweepReport:
    batch = batch or services.settings.sweep_batch
    holder = holder or identity.process_id()
    report = SweepReport()
    slot = RetentionStore(services.database)
    await slot.record_sweep(SWEEP, holder)
    report.deletions_finished = await finish_pending(services)
    if services.settings.retention_enabled:
        report.retention = await apply_retention(
            services, batch, renew=lambda: slot.renew_sweep(SWEEP, holder)
        )
    while True:
        keys = await services.artifacts.delete_expired(utcnow(), limit=batch)
        report.artifacts_deleted += len(keys)
        for key in keys:
            await services.blobs.delete(key)
            report.blobs_deleted += 1
        if len(keys) < batch:
            break
    report.orphans_deleted = await collect_orphans(services, batch=batch)
    grace_s = services.settings.orphan_grace_s
    report.files_deleted = await collect_unreferenced_files(services, grace_s=grace_s, batch=batch)
    return report


async def collect_orphans(services: Services, *, batch: int = 500) -> int:
    deleted = 0
    pending: list[str] = []
    async for key in services.blobs.list_keys("owners/"):
        pending.append(key)
        if len(pending) >= batch:
            deleted += await _delete_orphans(services, pending)
            pending = []
    if pending:
        deleted += await _delete_orphans(services, pending)
    return deleted


async def _delete_orphans(services: Services, keys: list[str]) -> int:
    task_ids = [m["task"] for k in keys if (m := _TASK_BLOB.match(k))]
    job_ids = [m["job"] for k in keys if (m := _FILE_BLOB.match(k))]
    run_ids = [m["run"] for k in keys if (m := _RUN_BLOB.match(k))]
    found = await read_references(services.database, keys, task_ids, job_ids, run_ids)
    statuses, jobs = found.task_status, found.jobs
    deleted = 0
    for key in (k for k in keys if k not in found.referenced):
        if (task := _TASK_BLOB.match(key)) is not None:
            orphan = statuses.get(task["task"], "gone") in (*FINISHED, "gone")
        elif (file := _FILE_BLOB.match(key)) is not None:
            orphan = file["job"] not in jobs
        elif (run := _RUN_BLOB.match(key)) is not None:
            orphan = run["run"] not in found.runs
        else:
            orphan = False
        if orphan:
            await services.blobs.delete(key)
            deleted += 1
    return deleted
