"""Blobs as files under one folder, with HMAC-signed download URLs served by the API."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from genkeep.blobs.store import (
    CHUNK_SIZE,
    BlobInfo,
    check_filename,
    check_ttl,
    is_valid_key,
    validate_key,
    validate_prefix,
)
from genkeep.config import Settings
from genkeep.errors import (
    BlobKeyConflict,
    BlobNotFound,
    ConfigurationError,
    InvalidBlobKey,
    SignedUrlExpired,
    SignedUrlInvalid,
)

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "signing.key"
SIGNING_KEY_BYTES = 32
MIN_SIGNING_KEY_BYTES = 16
# Domain separation: these MACs can never be confused with any other use of the same key.
_SIGNING_CONTEXT = b"genkeep-blob-url-v1\n"
# '~' is not allowed in keys, so a temp file can never be mistaken for a blob.
_TMP_PREFIX = ".~"


class LocalBlobStore:
    """Files under ``root``; writes are atomic (temp file, fsync, rename) and keys stay inside.

    Content types are not kept: the download route derives one from the signed filename.
    """

    def __init__(
        self,
        root: Path,
        signing_key: bytes,
        public_url: str,
        default_ttl_s: int = 300,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(signing_key) < MIN_SIGNING_KEY_BYTES:
            raise ConfigurationError(
                f"the blob signing key must be at least {MIN_SIGNING_KEY_BYTES} bytes"
            )
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.public_url = public_url.rstrip("/")
        self.default_ttl_s = check_ttl(default_ttl_s)
        self._signing_key = signing_key
        self._clock = clock

    async def put(self, key: str, data: bytes, *, content_type: str) -> BlobInfo:
        path = self._path(key)
        size, digest = await asyncio.to_thread(self._write_atomic, key, path, (data,))
        return BlobInfo(key, size, digest)

    async def put_file(self, key: str, path: Path, *, content_type: str) -> BlobInfo:
        target = self._path(key)
        size, digest = await asyncio.to_thread(
            self._write_atomic, key, target, _read_file_chunks(path)
        )
        return BlobInfo(key, size, digest)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        file = await asyncio.to_thread(_open_blob, key, path)
        with file:
            return await asyncio.to_thread(file.read)

    async def open_download(
        self, key: str, *, chunk_size: int = CHUNK_SIZE
    ) -> tuple[int, AsyncGenerator[bytes, None]]:
        """Open now (so a missing blob fails before a response starts): size and chunks."""
        path = self._path(key)
        file = await asyncio.to_thread(_open_blob, key, path)
        return os.fstat(file.fileno()).st_size, _chunks(file, chunk_size)

    async def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        _, chunks = await self.open_download(key, chunk_size=chunk_size)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        # A missing blob, or a folder standing where a blob would be, is simply not a blob.
        with suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            await asyncio.to_thread(path.unlink)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        validate_prefix(prefix)
        parent = prefix.rpartition("/")[0]
        base = self.root / parent if parent else self.root
        if not Path(await asyncio.to_thread(os.path.realpath, base)).is_relative_to(self.root):
            return
        pending = [base]
        while pending:
            directory = pending.pop()
            entries = await asyncio.to_thread(_scan, directory)
            for name, is_dir in entries:
                relative = (directory / name).relative_to(self.root).as_posix()
                if is_dir:
                    if relative.startswith(prefix) or prefix.startswith(relative + "/"):
                        pending.append(directory / name)
                elif relative.startswith(prefix) and is_valid_key(relative):
                    yield relative

    async def signed_url(
        self, key: str, *, filename: str | None = None, ttl_s: int | None = None
    ) -> str:
        validate_key(key)
        filename = check_filename(filename)
        expires = int(self._clock()) + check_ttl(self.default_ttl_s if ttl_s is None else ttl_s)
        query: dict[str, str | int] = {"expires": expires}
        if filename is not None:
            query["filename"] = filename
        query["signature"] = self._sign(key, expires, filename)
        return f"{self.public_url}/v1/blobs/{key}?{urlencode(query, quote_via=quote)}"

    def verify(
        self,
        key: str,
        expires: int | str | None,
        filename: str | None,
        signature: str | None,
        now: float | None = None,
    ) -> None:
        """Raise SignedUrlInvalid if the URL was altered, SignedUrlExpired if it is too old."""
        validate_key(key)
        if signature is None or expires is None:
            raise SignedUrlInvalid("the URL lacks its signature or expiry")
        expiry = _parse_expires(expires)
        expected = self._sign(key, expiry, filename or None)
        # Compare bytes: compare_digest refuses non-ASCII str, and the signature is client input.
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise SignedUrlInvalid("the URL's signature does not match its key, expiry or filename")
        current = self._clock() if now is None else now
        if current >= expiry:
            raise SignedUrlExpired("this download link has expired; ask for a new one")

    async def aclose(self) -> None:
        return None

    def _sign(self, key: str, expires: int, filename: str | None) -> str:
        # The key holds no newline and expires is digits, so the fields cannot run together.
        message = _SIGNING_CONTEXT + f"{key}\n{expires}\n{filename or ''}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _path(self, key: str) -> Path:
        validate_key(key)
        # Defense in depth: even a valid key must not lead outside root through a symlink.
        path = Path(os.path.realpath(self.root / key))
        if path == self.root or not path.is_relative_to(self.root):
            log.warning("blob key %r resolves outside the blob folder", key)
            raise InvalidBlobKey("the blob key leads outside the blob folder")
        return path

    def _write_atomic(self, key: str, path: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".tmp")
        except (FileExistsError, NotADirectoryError) as exc:
            raise BlobKeyConflict(
                "a blob already uses part of this key as its name", key=key
            ) from exc
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.replace(tmp, path)
            except OSError as exc:
                if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise BlobKeyConflict(
                        "other blobs are stored under this key as a folder", key=key
                    ) from exc
                raise
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
        return size, digest.hexdigest()


def load_signing_key(settings: Settings) -> bytes:
    """The configured key, else ``<data_dir>/signing.key``, made once (0600) if missing."""
    if settings.signing_key is not None:
        configured = settings.signing_key.get_secret_value().encode()
        if len(configured) < MIN_SIGNING_KEY_BYTES:
            raise ConfigurationError(
                f"GENKEEP_SIGNING_KEY must be at least {MIN_SIGNING_KEY_BYTES} characters"
            )
        return configured
    path = settings.data_dir / SIGNING_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); chmod 600 it", path, mode)
    key = path.read_bytes()
    if len(key) != SIGNING_KEY_BYTES:
        raise ConfigurationError(
            f"{path} holds {len(key)} bytes, not {SIGNING_KEY_BYTES}; remove it to make a new key"
        )
    return key


def _create_key_file(path: Path) -> None:
    # Write a complete key under a temp name, then link it into place: link fails if another
    # process got there first, so every process ends up reading the one winning key.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}~")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(SIGNING_KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        with suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    _fsync_dir(path.parent)


def _parse_expires(expires: int | str) -> int:
    if isinstance(expires, int):
        return expires
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 20:
        raise SignedUrlInvalid("the URL's expiry is not a Unix time")
    return int(expires)


def _open_blob(key: str, path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise BlobNotFound("no blob is stored under this key", key=key) from exc


async def _chunks(file: BinaryIO, chunk_size: int) -> AsyncGenerator[bytes, None]:
    try:
        while chunk := await asyncio.to_thread(file.read, chunk_size):
            yield chunk
    finally:
        file.close()


def _read_file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            yield chunk


def _scan(directory: Path) -> list[tuple[str, bool]]:
    try:
        with os.scandir(directory) as entries:
            return [
                (entry.name, entry.is_dir(follow_symlinks=False))
                for entry in entries
                if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
