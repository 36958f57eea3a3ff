"""The blob store interface every backend implements, and the key rules they all enforce."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from genkeep.errors import BadInput, InvalidBlobKey

MAX_KEY_LENGTH = 512
# Most filesystems refuse longer names; one limit keeps every backend accepting the same keys.
MAX_SEGMENT_LENGTH = 255
MAX_FILENAME_LENGTH = 255
# SigV4 presigned URLs cannot outlive 7 days; one bound for every backend keeps them alike.
MAX_TTL_S = 7 * 24 * 3600
CHUNK_SIZE = 256 * 1024

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a write stored: the key, its size in bytes and the sha256 (hex) of its content."""

    key: str
    size: int
    sha256: str


@runtime_checkable
class BlobStore(Protocol):
    """Bytes under validated keys; every method refuses an invalid key with InvalidBlobKey."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> BlobInfo:
        """Store ``data`` under ``key``, replacing any previous blob atomically."""
        ...

    async def put_file(self, key: str, path: Path, *, content_type: str) -> BlobInfo:
        """Store a file's content, streamed rather than read into memory."""
        ...

    async def get(self, key: str) -> bytes:
        """The blob's bytes; BlobNotFound if absent."""
        ...

    def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The blob in chunks; BlobNotFound is raised on first iteration if absent."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every valid key stored under ``prefix`` (a plain string prefix), in no set order."""
        ...

    async def signed_url(
        self, key: str, *, filename: str | None = None, ttl_s: int | None = None
    ) -> str:
        """A URL that downloads the blob without credentials until it expires."""
        ...

    async def aclose(self) -> None: ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidBlobKey saying why."""
    if not isinstance(key, str):
        raise InvalidBlobKey(f"a blob key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidBlobKey("a blob key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidBlobKey(f"a blob key must be at most {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise InvalidBlobKey("a blob key must be relative (no leading '/')", key=_shown(key))
    if "\\" in key:
        raise InvalidBlobKey("a blob key must use '/' as separator, not '\\'", key=_shown(key))
    for segment in key.split("/"):
        if not segment:
            raise InvalidBlobKey("a blob key must not have empty segments", key=_shown(key))
        if segment in (".", ".."):
            raise InvalidBlobKey("a blob key must not have '.' or '..' segments", key=_shown(key))
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise InvalidBlobKey(
                f"blob key segments must be at most {MAX_SEGMENT_LENGTH} characters",
                key=_shown(key),
            )
        if not _SEGMENT.fullmatch(segment):
            raise InvalidBlobKey(
                "blob key segments may only hold the characters A-Z a-z 0-9 . _ -",
                key=_shown(key),
            )
    return key


def is_valid_key(candidate: str) -> bool:
    try:
        validate_key(candidate)
    except InvalidBlobKey:
        return False
    return True


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key optionally ending in '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


def check_ttl(ttl_s: int) -> int:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 0 < ttl_s <= MAX_TTL_S:
        raise BadInput(f"a signed URL lifetime must be 1..{MAX_TTL_S} seconds", ttl_s=str(ttl_s))
    return ttl_s


def check_filename(filename: str | None) -> str | None:
    """A download filename is shown to users, never used as a path; refuse only the absurd."""
    if filename is None or filename == "":
        return None
    if len(filename) > MAX_FILENAME_LENGTH:
        raise BadInput(f"a download filename must be at most {MAX_FILENAME_LENGTH} characters")
    return filename


def content_disposition(filename: str | None) -> str:
    """An ``attachment`` header value (RFC 6266): an ASCII fallback plus the UTF-8 name."""
    if not filename:
        return "attachment"
    # Control characters would allow header injection; separators mean nothing to a browser.
    cleaned = "".join(
        "_" if unicodedata.category(c).startswith("C") or c in "/\\" else c for c in filename
    )
    fallback = "".join(_ascii_char(c) for c in cleaned)
    value = f'attachment; filename="{fallback}"'
    if fallback != cleaned:
        value += f"; filename*=UTF-8''{quote(cleaned, safe='')}"
    return value


def _ascii_char(c: str) -> str:
    """``c`` for an old client's ASCII file name: é is e, what has no ASCII form is _."""
    if not 0x20 <= ord(c) < 0x7F:
        c = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode("ascii")[:1]
    return c if c and c not in '"\\%' else "_"


def hash_file(path: Path) -> tuple[int, str]:
    """Size and sha256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _shown(key: str) -> str:
    # Echo a bounded, printable form of bad input back in the problem document.
    return key[:80].encode("unicode_escape").decode("ascii")
