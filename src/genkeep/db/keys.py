"""API keys: created with a one-time token, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select, update

from genkeep.db.database import Database
from genkeep.db.models import ApiKey
from genkeep.db.types import utcnow

TOKEN_PREFIX = "gk_"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed token (``gk_<id>_<secret>``), else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    key_id, _, secret = token[len(TOKEN_PREFIX) :].partition("_")
    return key_id if _KEY_ID.match(key_id) and secret else None


def _hash(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force
    # that a slow password hash would protect.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    async def create(self, owner_id: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for ``owner_id`` and its token (``gk_<id>_<secret>``), shown only now."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = ApiKey(
            id=key_id,
            owner_id=owner_id,
            name=name or "",
            key_hash=_hash(secret),
            created_at=utcnow(),
        )
        async with self.db.transaction() as session:
            session.add(key)
        return key, f"{TOKEN_PREFIX}{key_id}_{secret}"

    async def authenticate(self, token: str) -> str | None:
        """The owner a valid, unrevoked token belongs to, else None."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        secret = token.split("_", 2)[2]
        async with self.db.reading() as session:
            key = await session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return None
        return key.owner_id if hmac.compare_digest(key.key_hash, _hash(secret)) else None

    async def revoke(self, key_id: str) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list_keys(self, owner_id: str | None = None) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if owner_id is not None:
            query = query.where(ApiKey.owner_id == owner_id)
        async with self.db.reading() as session:
            return list((await session.execute(query)).scalars())
