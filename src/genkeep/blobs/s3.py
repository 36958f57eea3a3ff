"""Blobs in an S3-compatible bucket (AWS, MinIO, Ceph ...), downloads by presigned GET URL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class S3BlobStore:
    """One bucket; boto3 blocks, so every call runs in a worker thread."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        default_ttl_s: int = 300,
        session: boto3.session.Session | None = None,
    ) -> None:
        """``session`` may be shared: its loaded service models make further clients cheap."""
        self.bucket = bucket
        self.region = region
        self.default_ttl_s = check_ttl(default_ttl_s)
        config = Config(
            signature_version="s3v4",
            # Self-hosted S3 servers rarely have wildcard DNS for virtual-hosted buckets.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
        )
        self._client: S3Client = (session or boto3.session.Session()).client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        secret = settings.s3_secret_access_key
        return cls(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
            default_ttl_s=settings.signed_url_ttl_s,
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        await asyncio.to_thread(self._ensure_bucket)

    async def put(self, key: str, data: bytes, *, content_type: str) -> BlobInfo:
        validate_key(key)
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata={"sha256": digest},
        )
        return BlobInfo(key, len(data), digest)

    async def put_file(self, key: str, path: Path, *, content_type: str) -> BlobInfo:
        validate_key(key)
        size, digest = await asyncio.to_thread(hash_file, path)
        # upload_file streams from disk and switches to multipart for big files.
        await asyncio.to_thread(
            self._client.upload_file,
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": digest}},
        )
        return BlobInfo(key, size, digest)

    async def get(self, key: str) -> bytes:
        validate_key(key)
        response = await asyncio.to_thread(self._get_object, key)
        body = response["Body"]
        try:
            return await asyncio.to_thread(body.read)
        finally:
            body.close()

    async def open_stream(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        validate_key(key)
        response = await asyncio.to_thread(self._get_object, key)
        body = response["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(chunk_size)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        finally:
            body.close()

    async def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        validate_key(key)
        # S3 answers 204 for a missing key too, which is the idempotence we promise.
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        while page := await asyncio.to_thread(next, pages, None):
            for item in page.get("Contents", []):
                key = item.get("Key")
                if key is not None and is_valid_key(key):
                    yield key

    async def signed_url(
        self, key: str, *, filename: str | None = None, ttl_s: int | None = None
    ) -> str:
        validate_key(key)
        filename = check_filename(filename)
        ttl = check_ttl(self.default_ttl_s if ttl_s is None else ttl_s)
        # Presigning is local computation, but resolving credentials may touch the network.
        return await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(filename),
            },
            ExpiresIn=ttl,
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

    def _get_object(self, key: str) -> GetObjectOutputTypeDef:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound("no blob is stored under this key", key=key) from exc
            raise

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if not _is_missing(exc):
                raise
        try:
            if self.region == "us-east-1":
                self._client.create_bucket(Bucket=self.bucket)
            else:
                self._client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "BucketAlreadyOwnedByYou":
                return  # another process created it first
            if code == "BucketAlreadyExists":
                raise ConfigurationError(
                    f"S3 bucket {self.bucket!r} exists and belongs to another account"
                ) from exc
            raise


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING
