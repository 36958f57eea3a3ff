"""Blobs in an Azure Blob Storage container (or Azurite), downloads by read-only SAS URL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient

from genkeep.blobs.store import (
    CHUNK_SIZE,
    BlobInfo,
    check_filename,
    check_ttl,
    content_disposition,
    hash_file,
    is_valid_key,
    validate_key,
    validate_prefix,
)
from genkeep.config import Settings
from genkeep.errors import BlobNotFound, ConfigurationError

# Blobs above this size go up in blocks, so memory stays bounded by block size x concurrency.
_MAX_SINGLE_PUT = 8 * 1024 * 1024
_BLOCK_SIZE = 4 * 1024 * 1024
# A SAS valid from a little before "now" still works on a server whose clock runs behind.
_CLOCK_SKEW = timedelta(minutes=5)


class AzureBlobStore:
    """One container, through the SDK's async client; SAS URLs need the account key."""

    def __init__(
        self,
        connection_string: str,
        container: str,
        *,
        default_ttl_s: int = 300,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        fields = _parse_connection_string(connection_string)
        account_key = fields.get("AccountKey")
        if not account_key:
            raise ConfigurationError(
                "the Azure connection string needs an AccountKey to sign download URLs"
            )
        self.default_ttl_s = check_ttl(default_ttl_s)
        self._account_key = account_key
        self._clock = clock
        self._service = BlobServiceClient.from_connection_string(
            connection_string,
            max_single_put_size=_MAX_SINGLE_PUT,
            max_block_size=_BLOCK_SIZE,
            max_chunk_get_size=_BLOCK_SIZE,
        )
        self._container = self._service.get_container_client(container)

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureBlobStore:
        if settings.azure_connection_string is None:
            raise ConfigurationError(
                "GENKEEP_AZURE_CONNECTION_STRING is required when GENKEEP_BLOB_BACKEND=azure"
            )
        return cls(
            settings.azure_connection_string.get_secret_value(),
            settings.azure_container,
            default_ttl_s=settings.signed_url_ttl_s,
        )

    async def ensure_container(self) -> None:
        """Create the container if it does not exist yet."""
        with suppress(ResourceExistsError):
            await self._container.create_container()

    async def put(self, key: str, data: bytes, *, content_type: str) -> BlobInfo:
        validate_key(key)
        digest = hashlib.sha256(data).hexdigest()
        await self._container.get_blob_client(key).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata={"sha256": digest},
        )
        return BlobInfo(key, len(data), digest)

    async def put_file(self, key: str, path: Path, *, content_type: str) -> BlobInfo:
        validate_key(key)
        size, digest = await asyncio.to_thread(hash_file, path)
        file = await asyncio.to_thread(path.open, "rb")
        try:
            await self._container.get_blob_client(key).upload_blob(
                _file_chunks(file),
                length=size,
                overwrite=True,
                content_settings=ContentSettings(content_type=content_type),
                metadata={"sha256": digest},
            )
        finally:
            file.close()
        return BlobInfo(key, size, digest)

    async def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            downloader = await self._container.get_blob_client(key).download_blob()
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFound("no blob is stored under this key", key=key) from exc

    async def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The SDK's own download chunks (at most 4 MiB); ``chunk_size`` is not used here."""
        validate_key(key)
        try:
            downloader = await self._container.get_blob_client(key).download_blob()
        except ResourceNotFoundError as exc:
            raise BlobNotFound("no blob is stored under this key", key=key) from exc
        async for chunk in downloader.chunks():
            yield chunk

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await self._container.get_blob_client(key).exists()

    async def delete(self, key: str) -> None:
        validate_key(key)
        with suppress(ResourceNotFoundError):
            await self._container.get_blob_client(key).delete_blob(delete_snapshots="include")

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        validate_prefix(prefix)
        async for blob in self._container.list_blobs(name_starts_with=prefix or None):
            if is_valid_key(blob.name):
                yield blob.name

    async def signed_url(
        self, key: str, *, filename: str | None = None, ttl_s: int | None = None
    ) -> str:
        validate_key(key)
        filename = check_filename(filename)
        now = self._clock()
        ttl = check_ttl(self.default_ttl_s if ttl_s is None else ttl_s)
        token = generate_blob_sas(
            account_name=self._service.account_name or "",
            container_name=self._container.container_name,
            blob_name=key,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            start=now - _CLOCK_SKEW,
            expiry=now + timedelta(seconds=ttl),
            content_disposition=content_disposition(filename),
        )
        return f"{self._container.get_blob_client(key).url}?{token}"

    async def aclose(self) -> None:
        await self._service.close()


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


async def _file_chunks(file: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield chunk
