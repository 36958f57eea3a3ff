"""Blob stores behind one interface: a local folder (default), S3-compatible, or Azure Blob.

``S3BlobStore`` and ``AzureBlobStore`` live in ``genkeep.blobs.s3`` and ``genkeep.blobs.azure``;
they are imported only when chosen, so their SDKs load only where they are used.
"""

from __future__ import annotations

from genkeep.blobs.local import LocalBlobStore, load_signing_key
from genkeep.blobs.store import BlobInfo, BlobStore, content_disposition, validate_key
from genkeep.config import Settings

__all__ = [
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "content_disposition",
    "load_signing_key",
    "open_blob_store",
    "validate_key",
]


async def open_blob_store(settings: Settings) -> BlobStore:
    """The configured store, ready to use: folder, bucket or container created if missing."""
    if settings.blob_backend == "s3":
        from genkeep.blobs.s3 import S3BlobStore

        s3 = S3BlobStore.from_settings(settings)
        try:
            await s3.ensure_bucket()
        except BaseException:
            await s3.aclose()
            raise
        return s3
    if settings.blob_backend == "azure":
        from genkeep.blobs.azure import AzureBlobStore

        azure = AzureBlobStore.from_settings(settings)
        try:
            await azure.ensure_container()
        except BaseException:
            await azure.aclose()
            raise
        return azure
    return LocalBlobStore(
        settings.blob_dir or settings.data_dir / "blobs",
        load_signing_key(settings),
        settings.public_url,
        settings.signed_url_ttl_s,
    )
