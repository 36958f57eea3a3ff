"""Deletions in progress and retention sweeps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import JSONType, UTCDateTime
from genkeep.db.models.base import Base


class Deletion(Base):
    """Who deleted what and when (a job, a prompt, an owner), never the content (I17).

    Written before the first row goes and stamped ``finished_at`` after the last blob, so a
    deletion a crash cut short is found again and finished (``genkeep ops sweep``).
    """

    __tablename__ = "deletions"
    __table_args__ = (
        Index("ix_deletions_owner", "owner_id", "requested_at"),
        Index("ix_deletions_pending", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # job | prompt | owner
    target_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How many rows and blobs of each kind went: numbers only.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Sweep(Base):
    """When a periodic sweep last started and who started it: one process per period."""

    __tablename__ = "sweeps"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    swept_at: Mapped[datetime] = mapped_column(UTCDateTime())
    holder: Mapped[str] = mapped_column(String(128))
