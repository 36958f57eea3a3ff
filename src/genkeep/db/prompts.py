"""Prompt and result repository: the claim protocol of single flight (I1) and versioning."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, bindparam, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genkeep.core import interleave
from genkeep.core.generation import Generation, details_of, details_text
from genkeep.core.hashes import sha256_hex
from genkeep.db.database import Database, completes_when_cancelled
from genkeep.db.drivers.base import ReadStatement
from genkeep.db.models import Prompt, Result
from genkeep.db.paging import Position, newest_first
from genkeep.db.types import utc_from_driver, utcnow


@dataclass(frozen=True, slots=True)
class LegacyKey:
    """Where an older key version stored the same request, and how to tell that a row
    found there (by its prompt text) still means what the request means."""

    normalized_hash: str
    same_meaning: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class PromptKey:
    """Identifies one prompt row: the unique (owner, profile, normalized hash) triple."""

    owner_id: str
    profile_name: str
    profile_key: str
    normalized_hash: str
    normalized_text: str
    prompt_text: str
    # Read when the key finds no row: computed only then (it costs a second canonical form).
    legacy: Callable[[], LegacyKey] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The columns of a result that answer a generate request."""

    id: str
    version: int
    source: str
    content: str
    content_sha256: str
    model: str
    created_at: datetime
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PromptState:
    """A prompt's claim state and its latest result, as read-first sees them."""

    id: str
    status: str
    claim_token: str | None
    claim_holder: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    latest_version: int
    result: StoredResult | None
    now: datetime  # the database's clock when it was read: leases and ages are judged by it
    prompt_text: str | None = None  # read only by ``find_with_text``


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to generate for a prompt until ``lease_expires_at``, fenced by ``token``."""

    prompt_id: str
    token: str
    holder: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    owner_id: str
    profile_key: str
    normalized_hash: str
    count: int
    prompt_ids: list[str]


def _find_query(now: ColumnElement[datetime], *, with_text: bool = False) -> ReadStatement:
    """The query of every cache hit, with the database's clock read in it."""
    extra = (Prompt.prompt_text,) if with_text else ()
    query = (
        select(
            *extra,
            Prompt.id,
            Prompt.status,
            Prompt.claim_token,
            Prompt.claim_holder,
            Prompt.lease_expires_at,
            Prompt.last_error,
            Prompt.latest_version,
            Result.id.label("r_id"),
            Result.version.label("r_version"),
            Result.source.label("r_source"),
            Result.content.label("r_content"),
            Result.content_sha256.label("r_sha"),
            Result.model.label("r_model"),
            Result.created_at.label("r_created_at"),
            Result.prompt_tokens.label("r_prompt_tokens"),
            Result.completion_tokens.label("r_completion_tokens"),
            Result.details.label("r_details"),
            now.label("db_now"),
        )
        .outerjoin(Result, Result.id == Prompt.latest_result_id)
        .where(
            Prompt.owner_id == bindparam("owner_id"),
            Prompt.profile_key == bindparam("profile_key"),
            Prompt.normalized_hash == bindparam("normalized_hash"),
        )
    )
    return ReadStatement(query)


@dataclass(frozen=True, slots=True)
class StoredUsage:
    """One owner's stored results of one profile and source, and their tokens."""

    profile: str
    source: str
    results: int
    prompt_tokens: int
    completion_tokens: int


class PromptStore:
    """Every query on prompts and results; methods take the owner where data is read (I3)."""

    def __init__(self, database: Database) -> None:
        self.db = database
        # Built once: SQLAlchemy compiles it once per store, not per hit.
        self._find = _find_query(database.driver.now())
        self._find_with_text = _find_query(database.driver.now(), with_text=True)

    async def find(self, key: PromptKey) -> PromptState | None:
        """The prompt for ``key`` with its latest result, in one indexed query (the hot path)."""
        params = {
            "owner_id": key.owner_id,
            "profile_key": key.profile_key,
            "normalized_hash": key.normalized_hash,
        }
        found = await self.db.driver.fetch_one(self._find, params)
        return None if found is None else _prompt_state(found)

    async def find_with_text(self, key: PromptKey) -> PromptState | None:
        """``find`` with the prompt's text: a key read under an older meaning is checked by it."""
        params = {
            "owner_id": key.owner_id,
            "profile_key": key.profile_key,
            "normalized_hash": key.normalized_hash,
        }
        found = await self.db.driver.fetch_one(self._find_with_text, params)
        return None if found is None else _prompt_state(found, found["prompt_text"])

    @completes_when_cancelled
    async def claim_new(
        self, key: PromptKey, holder: str, lease_s: float, trace: str | None = None
    ) -> Claim | None:
        """Insert the prompt already claimed; None when another request inserted it first.
        ``trace``: the claimant's traceparent, for the waiters' span links."""
        token, prompt_id, now = str(uuid.uuid4()), str(uuid.uuid4()), utcnow()
        values: dict[str, Any] = {
            "id": prompt_id,
            "owner_id": key.owner_id,
            "profile_name": key.profile_name,
            "profile_key": key.profile_key,
            "normalized_hash": key.normalized_hash,
            "normalized_text": key.normalized_text,
            "prompt_text": key.prompt_text,
            "status": "generating",
            "claim_token": token,
            "claim_holder": holder,
            "claim_trace": trace,
            "lease_expires_at": self.db.driver.now_plus(lease_s),
            "attempts": 1,
            "latest_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        statement = self.db.driver.insert_ignoring_conflicts(Prompt.__table__, values)  # type: ignore[arg-type]
        async with self.db.transaction() as session:
            inserted = (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
        return Claim(prompt_id, token, holder) if inserted == 1 else None

    @completes_when_cancelled
    async def claim_existing(
        self,
        prompt_id: str,
        expected_version: int,
        holder: str,
        lease_s: float,
        trace: str | None = None,
    ) -> Claim | None:
        """Claim a prompt that is unclaimed or whose lease expired, if no version landed since."""
        token = str(uuid.uuid4())
        statement = (
            update(Prompt)
            .where(
                Prompt.id == prompt_id,
                Prompt.latest_version == expected_version,
                (Prompt.claim_token.is_(None)) | (Prompt.lease_expires_at < self.db.driver.now()),
            )
            .values(
                status="generating",
                claim_token=token,
                claim_holder=holder,
                claim_trace=trace,
                lease_expires_at=self.db.driver.now_plus(lease_s),
                attempts=Prompt.attempts + 1,
                updated_at=utcnow(),
            )
        )
        async with self.db.transaction() as session:
            claimed = (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
        return Claim(prompt_id, token, holder) if claimed == 1 else None

    async def claim_trace(self, prompt_id: str) -> str | None:
        """The traceparent of the generation holding the prompt's claim, if it stored one."""
        async with self.db.reading() as session:
            found = await session.execute(select(Prompt.claim_trace).where(Prompt.id == prompt_id))
            return found.scalar_one_or_none()

    @completes_when_cancelled
    async def extend_lease(self, claim: Claim, lease_s: float) -> bool:
        """Heartbeat; False when the claim was taken over (the lease had expired)."""
        statement = (
            update(Prompt)
            .where(Prompt.id == claim.prompt_id, Prompt.claim_token == claim.token)
            .values(lease_expires_at=self.db.driver.now_plus(lease_s))
        )
        async with self.db.transaction() as session:
            return bool((await session.execute(statement)).rowcount == 1)  # type: ignore[attr-defined]

    @completes_when_cancelled
    async def complete(self, claim: Claim, result_id: str, generation: Generation) -> Result | None:
        """Store the generation as the next version and release the claim, atomically.

        Returns None when the claim was fenced out: a taker-over owns the prompt now. The
        result is stamped by the database's clock, the one its age is judged by.
        """
        now = utcnow()
        async with self.db.transaction() as session:
            version = (
                await session.execute(
                    update(Prompt)
                    .where(Prompt.id == claim.prompt_id, Prompt.claim_token == claim.token)
                    .values(
                        latest_version=Prompt.latest_version + 1,
                        latest_result_id=result_id,
                        status="ready",
                        claim_token=None,
                        claim_holder=None,
                        claim_trace=None,
                        lease_expires_at=None,
                        last_error=None,
                        updated_at=now,
                    )
                    .returning(
                        Prompt.latest_version, Prompt.owner_id, self.db.driver.now().label("db_now")
                    )
                )
            ).first()
            if version is None:
                return None
            await interleave.point("prompts.complete.before_commit")
            result = Result(
                id=result_id,
                prompt_id=claim.prompt_id,
                owner_id=version.owner_id,
                version=version.latest_version,
                source="generated" if version.latest_version == 1 else "regenerated",
                content=generation.content,
                content_sha256=sha256_hex(generation.content),
                model=generation.model,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                details=details_text(generation.details),
                created_at=version.db_now,
            )
            session.add(result)
        return result

    @completes_when_cancelled
    async def fail(self, claim: Claim, error: str) -> None:
        """Release the claim and record why, so the next request retries."""
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                update(Prompt)
                .where(Prompt.id == claim.prompt_id, Prompt.claim_token == claim.token)
                .values(
                    status="failed",
                    claim_token=None,
                    claim_holder=None,
                    claim_trace=None,
                    lease_expires_at=None,
                    last_error=error[:2000],
                    failed_at=now,
                    updated_at=now,
                )
            )

    async def get_prompt(self, owner_id: str, prompt_id: str) -> Prompt | None:
        async with self.db.reading() as session:
            return await _owned(session, Prompt, owner_id, prompt_id)

    async def list_prompts(
        self,
        owner_id: str,
        *,
        search: str = "",
        limit: int = 50,
        offset: int = 0,
        after: Position | None = None,
    ) -> list[Prompt]:
        """The owner's prompts, newest first, after ``after`` (keyset) or skipping ``offset``;
        ``search`` matches the prompt text (any case)."""
        query = select(Prompt).where(Prompt.owner_id == owner_id)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Prompt.prompt_text.ilike(f"%{escaped}%", escape="\\"))
        query = newest_first(query, Prompt.created_at, Prompt.id, after)
        query = query.limit(limit).offset(offset)
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def usage(self, owner_id: str) -> list[StoredUsage]:
        """The owner's stored results by profile and source (a generated one is one paid call)."""
        query = (
            select(
                Prompt.profile_name,
                Result.source,
                func.count(),
                func.coalesce(func.sum(Result.prompt_tokens), 0),
                func.coalesce(func.sum(Result.completion_tokens), 0),
            )
            .join(Prompt, Prompt.id == Result.prompt_id)
            .where(Result.owner_id == owner_id, Prompt.owner_id == owner_id)
            .group_by(Prompt.profile_name, Result.source)
            .order_by(Prompt.profile_name, Result.source)
        )
        async with self.db.reading() as session:
            rows = (await session.execute(query)).all()
        return [StoredUsage(p, s, n, int(pt or 0), int(ct or 0)) for p, s, n, pt, ct in rows]

    async def list_results(self, owner_id: str, prompt_id: str) -> list[Result]:
        query = (
            select(Result)
            .where(Result.owner_id == owner_id, Result.prompt_id == prompt_id)
            .order_by(Result.version)
        )
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())

    async def get_result(self, owner_id: str, result_id: str) -> Result | None:
        async with self.db.reading() as session:
            return await _owned(session, Result, owner_id, result_id)

    async def latest_result(self, owner_id: str, prompt_id: str) -> Result | None:
        query = (
            select(Result)
            .join(Prompt, Prompt.latest_result_id == Result.id)
            .where(Prompt.owner_id == owner_id, Prompt.id == prompt_id)
        )
        async with self.db.reading() as session:
            return (await session.execute(query)).scalars().first()

    async def add_edit(self, owner_id: str, result_id: str, content: str) -> Result | None:
        """Store edited content as the prompt's next version (source=edited)."""
        now = utcnow()
        async with self.db.transaction() as session:
            base = await _owned(session, Result, owner_id, result_id)
            if base is None:
                return None
            row = (
                await session.execute(
                    update(Prompt)
                    .where(Prompt.id == base.prompt_id, Prompt.owner_id == owner_id)
                    .values(latest_version=Prompt.latest_version + 1, updated_at=now)
                    .returning(Prompt.latest_version, self.db.driver.now().label("db_now"))
                )
            ).first()
            assert row is not None, "a result's prompt exists (foreign key)"
            edited = Result(
                id=str(uuid.uuid4()),
                prompt_id=base.prompt_id,
                owner_id=owner_id,
                version=row.latest_version,
                source="edited",
                content=content,
                content_sha256=sha256_hex(content),
                model=base.model,
                edited_from_id=base.id,
                created_at=row.db_now,
            )
            session.add(edited)
            await session.execute(
                update(Prompt).where(Prompt.id == base.prompt_id).values(latest_result_id=edited.id)
            )
        return edited

    async def find_duplicates(self, owner_id: str | None = None) -> list[Duplicate]:
        """Rows sharing a normalized key: the seed's duplicate-detection query, over
        ``owner_id``'s prompts, or every owner's when None (the operator's CLI check)."""
        query = (
            select(
                Prompt.owner_id,
                Prompt.profile_key,
                Prompt.normalized_hash,
                func.count().label("n"),
            )
            .group_by(Prompt.owner_id, Prompt.profile_key, Prompt.normalized_hash)
            .having(func.count() > 1)
            .order_by(Prompt.owner_id, Prompt.profile_key, Prompt.normalized_hash)
        )
        if owner_id is not None:
            query = query.where(Prompt.owner_id == owner_id)
        duplicates = []
        async with self.db.reading() as session:
            if await _key_enforced(session):
                # The database refuses a second row of a key: none can exist, and proving it
                # costs a catalog read, not a pass over every prompt (410 ms at 1M rows).
                return []
            for owner_id, profile, hashed, count in (await session.execute(query)).all():
                ids = await session.execute(
                    select(Prompt.id)
                    .where(
                        Prompt.owner_id == owner_id,
                        Prompt.profile_key == profile,
                        Prompt.normalized_hash == hashed,
                    )
                    .order_by(Prompt.created_at)
                )
                duplicates.append(Duplicate(owner_id, profile, hashed, count, list(ids.scalars())))
        return duplicates


def _prompt_state(row: Mapping[str, Any], prompt_text: str | None = None) -> PromptState:
    """The hit query's row, its timestamps as the driver read them made aware UTC."""
    stamp = utc_from_driver
    result = None
    if row["r_id"] is not None:
        result = StoredResult(
            id=row["r_id"],
            version=row["r_version"],
            source=row["r_source"],
            content=row["r_content"],
            content_sha256=row["r_sha"],
            model=row["r_model"],
            created_at=stamp(row["r_created_at"]),
            prompt_tokens=row["r_prompt_tokens"],
            completion_tokens=row["r_completion_tokens"],
            details=details_of(row["r_details"]),
        )
    lease = row["lease_expires_at"]
    return PromptState(
        id=row["id"],
        status=row["status"],
        claim_token=row["claim_token"],
        claim_holder=row["claim_holder"],
        lease_expires_at=None if lease is None else stamp(lease),
        last_error=row["last_error"],
        latest_version=row["latest_version"],
        result=result,
        now=stamp(row["db_now"]),
        prompt_text=prompt_text,
    )


_Row = TypeVar("_Row", Prompt, Result)


async def _owned(
    session: AsyncSession, model: type[_Row], owner_id: str, row_id: str
) -> _Row | None:
    query = select(model).where(model.id == row_id, model.owner_id == owner_id)
    return (await session.execute(query)).scalars().first()


_UNIQUE_KEY = ["owner_id", "profile_key", "normalized_hash"]


async def _key_enforced(session: AsyncSession) -> bool:
    """Whether the prompts table has its unique key (data imported without it may not)."""

    def read(sync: Any) -> bool:
        found = inspect(sync).get_unique_constraints("prompts")
        return any(c["column_names"] == _UNIQUE_KEY for c in found)

    connection = await session.connection()
    return await connection.run_sync(read)
