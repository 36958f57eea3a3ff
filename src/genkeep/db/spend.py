"""Limits, budgets and the usage ledger (I16).

Admission reserves a call's most cost on every counter that limits it (a key's and its
owner's, for the period and for their lifetime) in one transaction, each a conditional
``UPDATE`` that the row lock orders: no process can admit past a cap. Settling moves the
reservation to the spent column with the real cost, and writes the ledger row, in one
transaction. A reservation whose holder died expires (its lease) and the next admission on
that counter releases it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.models import ApiKey, SpendCounter, SpendLimit, SpendReservation, UsageEntry
from genkeep.db.types import utcnow

LIFETIME = "lifetime"
Group = Literal["day", "profile", "key"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a key or an owner may use; None means no limit of that kind."""

    rpm: int | None = None
    tpm: int | None = None
    budget_micros: int | None = None
    budget_period: str | None = None  # day | month
    lifetime_micros: int | None = None

    @property
    def any(self) -> bool:
        return any(
            v is not None for v in (self.rpm, self.tpm, self.budget_micros, self.lifetime_micros)
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """One counter an admission reserves on, and the cap it must stay under."""

    subject: str
    period: str
    cap_micros: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The counter that refused an admission."""

    subject: str
    period: str
    cap_micros: int
    spent_micros: int
    reserved_micros: int


@dataclass(frozen=True, slots=True)
class Usage:
    """One ledger row as written."""

    owner_id: str
    key_id: str | None
    profile_name: str
    result_id: str | None
    trace_id: str | None
    hit: bool
    streamed: bool
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    saved_micros: int
    # Of prompt_tokens, those the provider served from its cache.
    cached_tokens: int = 0


def period_of(period: str | None, at: datetime | None = None) -> str:
    """The counter name of a budget period at ``at`` (UTC): ``2026-12-04`` or ``2026-12``."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m") if period == "month" else at.strftime("%Y-%m-%d")


class SpendStore:
    """Every query on limits, budget counters, reservations and the usage ledger."""

    def __init__(self, database: Database) -> None:
        self.db = database
        now = database.driver.epoch()
        counters: Table = SpendCounter.__table__  # type: ignore[assignment]
        reservations: Table = SpendReservation.__table__  # type: ignore[assignment]
        self._counters, self._reservations = counters, reservations
        self._expired = (
            delete(reservations)
            .where(
                reservations.c.subject == bindparam("c_subject"),
                reservations.c.period == bindparam("c_period"),
                reservations.c.expires_at < now,
            )
            .returning(reservations.c.amount_micros)
        )
        freed, amount = bindparam("freed", type_=BigInteger), bindparam("amount", type_=BigInteger)
        self._reserve = (
            update(counters)
            .where(
                counters.c.subject == bindparam("c_subject"),
                counters.c.period == bindparam("c_period"),
                counters.c.spent_micros + counters.c.reserved_micros - freed + amount
                <= bindparam("cap"),
            )
            .values(reserved_micros=counters.c.reserved_micros - freed + amount)
            .returning(counters.c.spent_micros)
        )
        self._release = update(counters).where(
            counters.c.subject == bindparam("c_subject"), counters.c.period == bindparam("c_period")
        )
        self._read_counter = select(counters.c.spent_micros, counters.c.reserved_micros).where(
            counters.c.subject == bindparam("c_subject"), counters.c.period == bindparam("c_period")
        )
        self._now = now

    # -- limits -------------------------------------------------------------------------

    async def limits_of(self, subject: str) -> Limits | None:
        async with self.db.reading() as session:
            row = await session.get(SpendLimit, subject)
        if row is None:
            return None
        return Limits(row.rpm, row.tpm, row.budget_micros, row.budget_period, row.lifetime_micros)

    async def all_limits(self) -> dict[str, Limits]:
        """Every subject's limits: few rows, read at once so a caller without any costs none."""
        async with self.db.reading() as session:
            rows = (await session.execute(select(SpendLimit))).scalars()
            return {
                row.subject: Limits(
                    row.rpm, row.tpm, row.budget_micros, row.budget_period, row.lifetime_micros
                )
                for row in rows
            }

    async def owner_limits(self, owner_id: str) -> list[tuple[str, str | None, Limits | None]]:
        """The owner's own limits and each of its live keys' (``key:<id>``, its name, its
        limits or None); never another owner's."""
        keys = (
            select(ApiKey.id, ApiKey.name)
            .where(ApiKey.owner_id == owner_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
        async with self.db.reading() as session:
            named: list[tuple[str, str | None]] = [(f"owner:{owner_id}", None)]
            named += [(f"key:{key_id}", name) for key_id, name in await session.execute(keys)]
            found = select(SpendLimit).where(SpendLimit.subject.in_([s for s, _ in named]))
            rows = {row.subject: row for row in (await session.execute(found)).scalars()}
        return [
            (subject, name, _limits(rows[subject]) if subject in rows else None)
            for subject, name in named
        ]

    async def set_limits(self, subject: str, limits: Limits) -> None:
        """Replace ``subject``'s limits (all None: remove them)."""
        async with self.db.transaction() as session:
            row = await session.get(SpendLimit, subject)
            if not limits.any:
                if row is not None:
                    await session.delete(row)
                return
            if row is None:
                row = SpendLimit(subject=subject)
                session.add(row)
            row.rpm, row.tpm = limits.rpm, limits.tpm
            row.budget_micros, row.budget_period = limits.budget_micros, limits.budget_period
            row.lifetime_micros, row.updated_at = limits.lifetime_micros, utcnow()

    # -- admission and settling ---------------------------------------------------------

    @completes_when_cancelled
    async def reserve(
        self, holds: Sequence[Hold], amount_micros: int, lease_s: float
    ) -> str | Refused:
        """Reserve ``amount_micros`` on every hold, or on none; the reservation's id, or the
        counter that refused."""
        reservation = str(uuid.uuid4())
        # One order for every process: two admissions never wait on each other's rows.
        ordered = sorted(holds, key=lambda h: (h.subject, h.period))
        try:
            async with self.db.writing() as connection:
                for hold in ordered:
                    refused = await self._reserve_one(connection, hold, amount_micros)
                    if refused is not None:
                        raise _Refusal(refused)  # rolls back the holds taken before it
                    values = {
                        "id": reservation,
                        "subject": hold.subject,
                        "period": hold.period,
                        "amount_micros": amount_micros,
                        "expires_at": self._now + lease_s,
                    }
                    await connection.execute(insert(self._reservations).values(**values))
        except _Refusal as refusal:
            return refusal.refused
        return reservation

    async def _reserve_one(
        self, connection: AsyncConnection, hold: Hold, amount: int
    ) -> Refused | None:
        row = {"subject": hold.subject, "period": hold.period}
        key = {"c_subject": hold.subject, "c_period": hold.period}
        await connection.execute(
            self.db.driver.insert_ignoring_conflicts(
                self._counters, {**row, "spent_micros": 0, "reserved_micros": 0}
            )
        )
        # Reservations of holders that died (their lease passed) are released here.
        freed = sum(r.amount_micros for r in await connection.execute(self._expired, key))
        params = {**key, "freed": freed, "amount": amount, "cap": hold.cap_micros}
        if (await connection.execute(self._reserve, params)).first() is not None:
            return None
        found = (await connection.execute(self._read_counter, key)).one()
        return Refused(
            hold.subject, hold.period, hold.cap_micros, found.spent_micros, found.reserved_micros
        )

    @completes_when_cancelled
    async def settle(self, reservation: str | None, usage: Usage, holds: Sequence[Hold]) -> None:
        """Spend the real cost on every hold, release the reservation, write the ledger row."""
        async with self.db.writing() as connection:
            held: dict[tuple[str, str], int] = {}
            if reservation is not None:
                gone = await connection.execute(
                    delete(self._reservations)
                    .where(self._reservations.c.id == reservation)
                    .returning(
                        self._reservations.c.subject,
                        self._reservations.c.period,
                        self._reservations.c.amount_micros,
                    )
                )
                held = {(r.subject, r.period): r.amount_micros for r in gone}
            for hold in sorted(holds, key=lambda h: (h.subject, h.period)):
                row = {"subject": hold.subject, "period": hold.period}
                key = {"c_subject": hold.subject, "c_period": hold.period}
                await connection.execute(
                    self.db.driver.insert_ignoring_conflicts(
                        self._counters, {**row, "spent_micros": 0, "reserved_micros": 0}
                    )
                )
                # A reservation already released by lease is not released twice.
                released = held.get((hold.subject, hold.period), 0)
                await connection.execute(
                    self._release.values(
                        spent_micros=self._counters.c.spent_micros + usage.cost_micros,
                        reserved_micros=self._counters.c.reserved_micros - released,
                    ),
                    key,
                )
            await connection.execute(insert(UsageEntry).values(_row(usage)))

    async def record(self, entries: Sequence[Usage]) -> None:
        """Ledger rows that spend no budget (hits, calls of callers without one)."""
        if not entries:
            return
        async with self.db.writing() as connection:
            await connection.execute(insert(UsageEntry), [_row(u) for u in entries])

    async def counter(self, subject: str, period: str) -> tuple[int, int]:
        """(spent, reserved) micro-dollars of one counter."""
        async with self.db.writing() as connection:
            found = (
                await connection.execute(
                    self._read_counter, {"c_subject": subject, "c_period": period}
                )
            ).first()
        return (0, 0) if found is None else (found.spent_micros, found.reserved_micros)

    # -- reading the ledger -------------------------------------------------------------

    async def usage(
        self, owner_id: str, group: Group, since: str | None = None
    ) -> list[dict[str, Any]]:
        """The owner's usage summed per day, profile or key (I3), newest day first."""
        column = {
            "day": UsageEntry.day,
            "profile": UsageEntry.profile_name,
            "key": UsageEntry.key_id,
        }[group]
        query = (
            select(
                column.label("group"),
                func.count().label("entries"),
                func.sum(_if(UsageEntry.hit)).label("hits"),
                func.sum(UsageEntry.prompt_tokens).label("prompt_tokens"),
                func.sum(UsageEntry.completion_tokens).label("completion_tokens"),
                func.sum(UsageEntry.cached_tokens).label("cached_tokens"),
                func.sum(UsageEntry.cost_micros).label("cost_micros"),
                func.sum(UsageEntry.saved_micros).label("saved_micros"),
            )
            .where(UsageEntry.owner_id == owner_id)
            .group_by(column)
            .order_by(column.desc() if group == "day" else column)
        )
        if since is not None:
            query = query.where(UsageEntry.day >= since)
        async with self.db.reading() as session:
            rows = (await session.execute(query)).all()
        return [
            {
                group: row.group,
                "calls": int(row.entries) - int(row.hits or 0),
                "hits": int(row.hits or 0),
                "prompt_tokens": int(row.prompt_tokens or 0),
                "completion_tokens": int(row.completion_tokens or 0),
                "cached_tokens": int(row.cached_tokens or 0),
                "cost_usd": int(row.cost_micros or 0) / 1_000_000,
                "saved_usd": int(row.saved_micros or 0) / 1_000_000,
            }
            for row in rows
        ]


class _Refusal(Exception):
    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.subject)
        self.refused = refused


def _limits(row: SpendLimit) -> Limits:
    return Limits(row.rpm, row.tpm, row.budget_micros, row.budget_period, row.lifetime_micros)


def _if(flag: Any) -> Any:
    return case((flag, 1), else_=0)


def _row(usage: Usage) -> dict[str, Any]:
    now = utcnow()
    return {
        "owner_id": usage.owner_id,
        "key_id": usage.key_id,
        "profile_name": usage.profile_name,
        "result_id": usage.result_id,
        "trace_id": usage.trace_id,
        "hit": usage.hit,
        "streamed": usage.streamed,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost_micros": usage.cost_micros,
        "saved_micros": usage.saved_micros,
        "day": now.strftime("%Y-%m-%d"),
        "created_at": now,
    }
