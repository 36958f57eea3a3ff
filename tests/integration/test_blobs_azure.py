"""The Azure store against Azurite, the Azure Blob Storage emulator (the ``azurite``
fixture of tests/support/azurite.py), started on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from genkeep.blobs import open_blob_store
from genkeep.blobs.azure import AzureBlobStore
from genkeep.config import Settings
from genkeep.errors import ConfigurationError
from tests.support.blob_contract import BlobStoreContract, Fetch


@pytest.fixture
async def store(azurite: str) -> AsyncIterator[AzureBlobStore]:
    blob_store = AzureBlobStore(azurite, f"genkeep-{uuid.uuid4().hex[:12]}", default_ttl_s=60)
    await blob_store.ensure_container()
    yield blob_store
    await blob_store.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def fetch(http: httpx.AsyncClient) -> Fetch:
    return http.get


class TestAzureContract(BlobStoreContract):
    pass


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def test_sas_url_is_read_only_and_carries_the_filename(
    store: AzureBlobStore, http: httpx.AsyncClient
) -> None:
    await store.put("e/r.docx", b"PK", content_type="application/octet-stream")
    url = await store.signed_url("e/r.docx", filename="r.docx", ttl_s=120)
    query = query_of(url)
    assert query["sp"] == "r"
    assert query["rscd"] == 'attachment; filename="r.docx"'
    expiry = datetime.fromisoformat(query["se"].replace("Z", "+00:00"))
    assert abs((expiry - datetime.now(UTC)).total_seconds() - 120) < 60
    response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="r.docx"'
    assert response.headers["content-type"] == "application/octet-stream"
    # Read permission only: the same URL cannot overwrite or delete the blob.
    assert (
        await http.put(url, content=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    ).status_code == 403
    assert (await http.delete(url)).status_code == 403
    assert await store.get("e/r.docx") == b"PK"


async def test_expired_sas_is_refused(
    store: AzureBlobStore, azurite: str, http: httpx.AsyncClient
) -> None:
    await store.put("old.txt", b"x", content_type="text/plain")
    signer = AzureBlobStore(
        azurite,
        store._container.container_name,
        clock=lambda: datetime.now(UTC) - timedelta(hours=1),
    )
    try:
        url = await signer.signed_url("old.txt", ttl_s=60)
    finally:
        await signer.aclose()
    response = await http.get(url)
    assert response.status_code == 403
    assert b"AuthorizationFailure" in response.content


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sig", "AAAA" + "A" * 40 + "="),
        ("se", "2099-01-01T00:00:00Z"),
        ("sp", "rwd"),
        ("rscd", 'attachment; filename="evil.html"'),
    ],
)
async def test_tampered_sas_is_refused(
    store: AzureBlobStore, http: httpx.AsyncClient, name: str, value: str
) -> None:
    await store.put("t.txt", b"x", content_type="text/plain")
    url = await store.signed_url("t.txt", filename="t.txt")
    base, _ = url.split("?", 1)
    query = {**query_of(url), name: value}
    response = await http.get(base, params=query)
    assert response.status_code == 403


async def test_sas_for_one_blob_does_not_open_another(
    store: AzureBlobStore, http: httpx.AsyncClient
) -> None:
    await store.put("mine.txt", b"mine", content_type="text/plain")
    await store.put("theirs.txt", b"theirs", content_type="text/plain")
    url = await store.signed_url("mine.txt")
    response = await http.get(url.replace("/mine.txt?", "/theirs.txt?"))
    assert response.status_code == 403


async def test_unsigned_request_is_refused(store: AzureBlobStore, http: httpx.AsyncClient) -> None:
    await store.put("private.txt", b"private", content_type="text/plain")
    url = await store.signed_url("private.txt")
    assert (await http.get(url.split("?", 1)[0])).status_code in (401, 403, 404)


def test_connection_string_without_account_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AccountKey"):
        AzureBlobStore("BlobEndpoint=http://127.0.0.1:1/x;SharedAccessSignature=sv=1", "c")


async def test_open_blob_store_builds_azure_and_creates_the_container(azurite: str) -> None:
    container = f"genkeep-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        _env_file=None,
        blob_backend="azure",
        azure_connection_string=azurite,
        azure_container=container,
    )
    store = await open_blob_store(settings)
    try:
        assert isinstance(store, AzureBlobStore)
        await store.put("k.txt", b"k", content_type="text/plain")
        assert await store.get("k.txt") == b"k"
        again = await open_blob_store(settings)  # the container exists: still fine
        await again.aclose()
    finally:
        await store.aclose()
    with pytest.raises(ConfigurationError, match="AZURE_CONNECTION_STRING"):
        await open_blob_store(Settings(_env_file=None, blob_backend="azure"))
