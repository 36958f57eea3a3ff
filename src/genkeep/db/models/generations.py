"""Prompts (the single-flight claim, I1) and the results stored for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genkeep.db.drivers.types import UTCDateTime
from genkeep.db.models.base import Base
from genkeep.db.types import utcnow


class Prompt(Base):
    """One normalized prompt per (owner, profile, hash); also the single-flight claim (I1)."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("owner_id", "profile_key", "normalized_hash", name="uq_prompts_key"),
        # A page of an owner's prompts, newest first, read from the index (keyset paging).
        Index("ix_prompts_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    profile_name: Mapped[str] = mapped_column(String(64))
    profile_key: Mapped[str] = mapped_column(String(64))
    normalized_hash: Mapped[str] = mapped_column(String(64))
    normalized_text: Mapped[str] = mapped_column(Text)
    prompt_text: Mapped[str] = mapped_column(Text)
    # pending -> generating -> ready | failed; a ready prompt is generating again on regenerate.
    status: Mapped[str] = mapped_column(String(16))
    claim_token: Mapped[str | None] = mapped_column(String(36))
    claim_holder: Mapped[str | None] = mapped_column(String(128))
    # The claimant's generation span (W3C traceparent), for the waiters' links (I18).
    claim_trace: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    latest_result_id: Mapped[str | None] = mapped_column(String(36))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Result(Base):
    """One version of a prompt's content: generated, regenerated or edited."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("prompt_id", "version", name="uq_results_prompt_version"),
        Index("ix_results_owner", "owner_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prompt_id: Mapped[str] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    # What an OpenAI-compatible answer said beside its text, as JSON (core.generation).
    details: Mapped[str | None] = mapped_column(Text)
    edited_from_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
