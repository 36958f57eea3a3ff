"""Upstream attempts per prompt and window: how a client's retries join a claim's retries
instead of multiplying them (each client retry would otherwise start 1 + max_retries more)."""

from __future__ import annotations

from sqlalchemy import Float, Integer, Table, bindparam, case, select, update

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.models import UpstreamWindow


class UpstreamWindows:
    """``admit(prompt)`` counts an attempt if its window has one left; ``throttled`` records
    the provider's Retry-After for the refusals that follow."""

    def __init__(self, database: Database) -> None:
        self.db = database
        now = database.driver.epoch()
        table: Table = UpstreamWindow.__table__  # type: ignore[assignment]
        expired = table.c.started_at < now - bindparam("window_s", type_=Float)
        self._admit = (
            update(table)
            .where(
                table.c.prompt_id == bindparam("prompt"),
                expired | (table.c.attempts < bindparam("most", type_=Integer)),
            )
            .values(
                attempts=case((expired, 1), else_=table.c.attempts + 1),
                retry_after_s=case((expired, None), else_=table.c.retry_after_s),
                started_at=case((expired, now), else_=table.c.started_at),
            )
        )
        self._refusal = select(table.c.retry_after_s).where(
            table.c.prompt_id == bindparam("prompt")
        )

    @completes_when_cancelled
    async def admit(self, prompt_id: str, window_s: float, most: int) -> float | None:
        """None if an attempt is admitted (and counted); else the Retry-After to answer."""
        params = {"prompt": prompt_id, "window_s": window_s, "most": most}
        async with self.db.writing() as connection:
            if (await connection.execute(self._admit, params)).rowcount == 1:
                return None
            found = (await connection.execute(self._refusal, params)).first()
            if found is None:
                new = self.db.driver.insert_ignoring_conflicts(
                    UpstreamWindow.__table__,  # type: ignore[arg-type]
                    {"prompt_id": prompt_id, "started_at": 0.0, "attempts": 0},
                )
                await connection.execute(new)
                await connection.execute(self._admit, params)
                return None
        return found.retry_after_s if found.retry_after_s is not None else 1.0

    @completes_when_cancelled
    async def throttled(self, prompt_id: str, retry_after_s: float) -> None:
        """Remember the provider's Retry-After for this window's refusals."""
        async with self.db.writing() as connection:
            await connection.execute(
                update(UpstreamWindow)
                .where(UpstreamWindow.prompt_id == prompt_id)
                .values(retry_after_s=retry_after_s)
            )

    async def refusal(self, prompt_id: str, window_s: float) -> float | None:
        """The provider's Retry-After if this window's last attempt was rate limited."""
        table: Table = UpstreamWindow.__table__  # type: ignore[assignment]
        now = self.db.driver.epoch()
        query = select(table.c.retry_after_s).where(
            table.c.prompt_id == prompt_id,
            table.c.started_at >= now - window_s,
            table.c.retry_after_s.is_not(None),
        )
        async with self.db.reading() as session:
            found = (await session.execute(query)).first()
        return None if found is None else float(found.retry_after_s)
