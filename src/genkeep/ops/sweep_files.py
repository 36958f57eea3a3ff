"""Sweep job-file blobs no job names any more: a replaced upload whose deletion was lost,
or an upload whose request failed after writing it.

Kept apart from ``genkeep.ops.sweep``'s artifact pass. An upload's key starts with the Unix
time it was written (``files/<time>-<nonce>-<sha256>``), so an upload still in flight (its
blob written, its job row not yet committed) is younger than the grace period and stays.
Keys of the older form (``files/<sha256>``) carry no time and are left to the job-gone rule.
"""

from __future__ import annotations

import re
import time

from genkeep.db.jobs import referenced_file_keys
from genkeep.services import Services

_FILE_KEY = re.compile(r"^owners/[^/]+/jobs/[^/]+/files/(?P<written>[0-9]{1,12})-[^/]+$")


async def collect_unreferenced_files(
    services: Services, *, grace_s: float, now: float | None = None, batch: int = 500
) -> int:
    """Delete file blobs older than ``grace_s`` that no job names; returns how many."""
    cutoff = (time.time() if now is None else now) - grace_s
    deleted = 0
    pending: list[str] = []
    async for key in services.blobs.list_keys("owners/"):
        match = _FILE_KEY.match(key)
        if match is not None and int(match["written"]) < cutoff:
            pending.append(key)
        if len(pending) >= batch:
            deleted += await _delete_unreferenced(services, pending)
            pending = []
    if pending:
        deleted += await _delete_unreferenced(services, pending)
    return deleted


async def _delete_unreferenced(services: Services, keys: list[str]) -> int:
    referenced = await referenced_file_keys(services.database, keys)
    unreferenced = [key for key in keys if key not in referenced]
    for key in unreferenced:
        await services.blobs.delete(key)
    return len(unreferenced)
