"""`genkeep owners purge` killed with SIGKILL mid-purge, then run again: nothing of the owner
is left, nothing of another owner is touched, and one audit record says it is done (I17)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from genkeep.config import Settings
from genkeep.db.deletions import DeletionStore
from genkeep.db.models import Deletion, JobEvent, Task
from genkeep.db.types import utcnow
from genkeep.services import Services
from tests.integration.test_deletion import AUDIT, seed, state
from tests.support.server import genkeep_command, run_cli
from tests.support.services import opened_services

pytestmark = pytest.mark.e2e

TASKS = 600  # rows enough that a purge in batches of 20 is caught half done


async def pile_up(services: Services, owner: str) -> None:
    """A job with TASKS finished tasks (their change rows by trigger) and as many events."""
    job = await services.jobs.create(owner, {"title": "history"}, AUDIT)
    now = utcnow()
    tasks = [
        {
            "id": str(uuid.uuid4()),
            "owner_id": owner,
            "job_id": job.id,
            "kind": "noop",
            "idempotency_key": f"k{index}",
            "request_hash": "-",
            "payload": {},
            "status": "completed",
            "progress": 1.0,
            "attempts": 1,
            "max_attempts": 3,
            "run_after": now,
            "trace_id": AUDIT.trace_id,
            "created_at": now,
            "updated_at": now,
            "finished_at": now,
            "cancel_requested": False,
            "timeout_at": now + timedelta(hours=1),
        }
        for index in range(TASKS)
    ]
    events = [
        {
            "job_id": job.id,
            "owner_id": owner,
            "event_type": "task.completed",
            "payload": {"task_id": task["id"]},
            "trace_id": AUDIT.trace_id,
            "actor": "seed",
            "created_at": now,
        }
        for task in tasks
    ]
    async with services.database.transaction() as session:
        await session.execute(insert(Task), tasks)
        await session.execute(insert(JobEvent), events)


async def owner_tasks(services: Services, owner: str) -> int:
    async with services.database.reading() as session:
        query = select(func.count()).select_from(Task).where(Task.owner_id == owner)
        return int((await session.execute(query)).scalar_one())


async def test_a_purge_killed_midway_and_run_again_leaves_nothing(
    settings: Settings, db_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "GENKEEP_DATABASE_URL": db_url,
        "GENKEEP_DATA_DIR": str(tmp_path / "var"),
        "GENKEEP_BLOB_DIR": str(tmp_path / "blobs"),
        "GENKEEP_SWEEP_BATCH": "20",
        "GENKEEP_LOG_LEVEL": "warning",
    }
    async with opened_services(settings, tmp_path) as services:
        await seed(services, "alice")
        await pile_up(services, "alice")
        await seed(services, "bob")
        bob_before = await state(services, "bob")
        total = await owner_tasks(services, "alice")

        purge = subprocess.Popen(  # noqa: ASYNC220 - polled below, never waited on blocking
            [*genkeep_command(), "owners", "purge", "alice", "--yes"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            # Killed once it has deleted some of the tasks, long before it is through.
            while not 0 < await owner_tasks(services, "alice") < total:
                assert purge.poll() is None, purge.stderr.read() if purge.stderr else ""
                assert time.monotonic() < deadline, "the purge never started"
                await asyncio.sleep(0.01)
            purge.send_signal(signal.SIGKILL)
        finally:
            purge.wait(timeout=30)
        assert purge.returncode == -signal.SIGKILL
        halfway = await state(services, "alice")
        assert halfway["tasks"] > 0 and halfway["prompts"] == 1  # cut short, for real
        [pending] = await DeletionStore(services.database).pending()
        assert (pending.kind, pending.owner_id) == ("owner", "alice")

        again = run_cli(["owners", "purge", "alice", "--yes"], env)
        assert again.returncode == 0, again.stderr
        assert not any((await state(services, "alice")).values())
        assert await state(services, "bob") == bob_before
        async with services.database.reading() as session:
            records = list((await session.execute(select(Deletion))).scalars())
        assert [(r.id, r.finished_at is not None) for r in records] == [(pending.id, True)]
        # Counts are what the run that finished deleted (the killed one's died with it).
        assert records[0].counts["tasks"] == halfway["tasks"]
