"""Cost control: rate buckets, upstream attempt windows, spend limits and reservations,
and the usage ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import BigId, UTCDateTime
from genkeep.db.models.base import Base
from genkeep.db.types import utcnow


class RateBucket(Base):
    """A token bucket shared by every process: requests and tokens left, refilled by the
    database's clock (epoch seconds). Named ``provider:<profile>``, ``key:<id>``, ``owner:<id>``."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    requests: Mapped[float] = mapped_column(Float)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)


class UpstreamWindow(Base):
    """The upstream attempts made for one prompt in its current window (bounded, so client
    retries cannot multiply them)."""

    __tablename__ = "upstream_windows"

    prompt_id: Mapped[str] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True
    )
    started_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    # The provider's last Retry-After, told to every refused request of the window.
    retry_after_s: Mapped[float | None] = mapped_column(Float)


class SpendLimit(Base):
    """The limits of a key (``key:<id>``) or an owner (``owner:<id>``); money in micro-dollars."""

    __tablename__ = "spend_limits"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    budget_period: Mapped[str | None] = mapped_column(String(8))  # day | month
    lifetime_micros: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SpendCounter(Base):
    """Spent and reserved money of one subject in one period (``2026-12-04``, ``2026-12``,
    ``lifetime``); admission moves ``reserved`` in the transaction that admits (I16)."""

    __tablename__ = "spend_counters"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    spent_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class SpendReservation(Base):
    """One admitted call's hold on one counter, until settled or its lease (epoch) expires."""

    __tablename__ = "spend_reservations"
    __table_args__ = (Index("ix_spend_reservations_counter", "subject", "period"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)


class UsageEntry(Base):
    """One generator call (or a hit, which saved its cost): tokens, cost, who and what."""

    __tablename__ = "usage_entries"
    __table_args__ = (Index("ix_usage_entries_owner_day", "owner_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    profile_name: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str | None] = mapped_column(String(36))
    trace_id: Mapped[str | None] = mapped_column(String(64))
    hit: Mapped[bool] = mapped_column(Boolean, default=False)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Of prompt_tokens, those the provider served from its cache (its cached-input price).
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    saved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    day: Mapped[str] = mapped_column(String(10))  # UTC, for grouping alike on both databases
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
