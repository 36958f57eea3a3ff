"""The S3 store against a real S3-compatible server (moto in server mode) on loopback.

moto serves presigned URLs and honours ``response-content-disposition``, and refuses
unsigned requests to a private bucket, but it checks neither the signature nor the expiry
of a presigned URL: those tests assert the URL's parameters instead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from genkeep.blobs import open_blob_store
from genkeep.blobs.s3 import S3BlobStore
from genkeep.config import Settings
from tests.support.blob_contract import BlobStoreContract, Fetch


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# One session for the module: each new session parses botocore's service models again.
SESSION = boto3.session.Session()


def s3_store(endpoint: str, bucket: str) -> S3BlobStore:
    return S3BlobStore(
        bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="genkeep-test",
        secret_access_key="genkeep-test-secret",
        default_ttl_s=60,
        session=SESSION,
    )


@pytest.fixture
async def store(s3_endpoint: str) -> AsyncIterator[S3BlobStore]:
    blob_store = s3_store(s3_endpoint, f"genkeep-{uuid.uuid4().hex[:12]}")
    await blob_store.ensure_bucket()
    yield blob_store
    await blob_store.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def fetch(http: httpx.AsyncClient) -> Fetch:
    return http.get


class TestS3Contract(BlobStoreContract):
    pass


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def test_presigned_url_carries_lifetime_and_filename(
    store: S3BlobStore, http: httpx.AsyncClient
) -> None:
    await store.put("exports/r.pdf", b"%PDF", content_type="application/pdf")
    url = await store.signed_url("exports/r.pdf", filename="r.pdf", ttl_s=1)
    query = query_of(url)
    assert urlsplit(url).path == f"/{store.bucket}/exports/r.pdf"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "1"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed_at.timestamp() - time.time()) < 60
    assert len(query["X-Amz-Signature"]) == 64
    assert query["response-content-disposition"] == 'attachment; filename="r.pdf"'
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="r.pdf"'


async def test_default_lifetime_is_used(store: S3BlobStore) -> None:
    assert query_of(await store.signed_url("a.txt"))["X-Amz-Expires"] == "60"


async def test_unsigned_request_is_refused(store: S3BlobStore, http: httpx.AsyncClient) -> None:
    await store.put("private.txt", b"private", content_type="text/plain")
    url = await store.signed_url("private.txt")
    response = await http.get(url.split("?", 1)[0])
    assert response.status_code == 403
    assert b"private" not in response.content.replace(b"private.txt", b"")


async def test_content_type_and_checksum_metadata_are_kept(store: S3BlobStore) -> None:
    info = await store.put("m/x.md", b"# x", content_type="text/markdown")
    head = store._client.head_object(Bucket=store.bucket, Key="m/x.md")
    assert head["ContentType"] == "text/markdown"
    assert head["Metadata"] == {"sha256": info.sha256}


async def test_ensure_bucket_is_idempotent(store: S3BlobStore) -> None:
    await store.put("a.txt", b"a", content_type="text/plain")
    await store.ensure_bucket()
    assert await store.get("a.txt") == b"a"


async def test_open_blob_store_builds_s3_and_creates_the_bucket(s3_endpoint: str) -> None:
    bucket = f"genkeep-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        _env_file=None,
        blob_backend="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="genkeep-test",
        s3_secret_access_key="genkeep-test-secret",
        signed_url_ttl_s=120,
    )
    store = await open_blob_store(settings)
    try:
        assert isinstance(store, S3BlobStore)
        assert store.bucket == bucket
        await store.put("k.txt", b"k", content_type="text/plain")
        assert await store.get("k.txt") == b"k"
        assert unquote(query_of(await store.signed_url("k.txt"))["X-Amz-Expires"]) == "120"
    finally:
        await store.aclose()
