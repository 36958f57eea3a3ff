"""The retention rules, each run to its end in bounded batches (db/retention.py).

Settings name every period (``GENKEEP_RETENTION_*``, ``GENKEEP_LLM_CACHE_TTL_S``, a
profile's ``keep_versions`` and ``keep_days``); docs/operations.md gives their defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from genkeep.db.retention import RetentionStore
from genkeep.services import Services

log = logging.getLogger(__name__)

# How long after its lease ended an LLM-call flight nobody took over is deleted.
DEAD_FLIGHT_S = 3600.0


async def apply_retention(
    services: Services, batch: int, renew: Callable[[], Awaitable[None]] | None = None
) -> dict[str, int]:
    """Apply every rule, calling ``renew`` after each batch (the sweep's slot); the rows each
    deleted, by rule. A rule that fails is logged and left to the next sweep."""
    settings = services.settings
    store = RetentionStore(services.database)
    # The change logs are swept whole in one call each (walked by key, db/retention.py).
    logs = {
        # Change rows first: the tasks' cascade would delete them in larger statements.
        "task_changes": store.delete_task_changes,
        "run_changes": store.delete_run_changes,
    }
    deleted: dict[str, int] = {}
    for name, sweep_log in logs.items():
        try:
            deleted[name] = await sweep_log(settings.retention_changes_s, batch, renew)
        except Exception:
            log.exception("retention rule %s failed; the next sweep goes on", name)
            deleted[name] = 0
    rules: dict[str, Callable[[], Awaitable[int]]] = {
        "tasks": lambda: store.delete_finished_tasks(settings.retention_tasks_s, batch),
        "run_batches": lambda: store.delete_run_batches(settings.retention_run_batches_s, batch),
        "llm_cache": lambda: store.delete_llm_answers(settings.llm_cache_ttl_s, batch),
        # A flight's row outlives a leader killed mid-call; an hour after its lease it is dead.
        "llm_flights": lambda: store.delete_dead_llm_flights(DEAD_FLIGHT_S, batch),
    }
    if settings.retention_task_events_s is not None:
        events_s = settings.retention_task_events_s
        rules["task_events"] = lambda: store.delete_task_events(events_s, batch)
    for name, profile in settings.profiles.items():
        if profile.keep_versions is None and profile.keep_days is None:
            continue

        def results(
            name: str = name,
            versions: int | None = profile.keep_versions,
            days: float | None = profile.keep_days,
        ) -> Awaitable[int]:
            return store.delete_results(name, keep_versions=versions, keep_days=days, limit=batch)

        rules[f"results:{name}"] = results
    for name, rule in rules.items():
        total = 0
        try:
            while True:
                count = await rule()
                total += count
                if renew is not None:
                    await renew()
                if count < batch:
                    break
        except Exception:
            log.exception(
                "retention rule %s failed after %d rows; the next sweep goes on", name, total
            )
        deleted[name] = total
    return deleted
