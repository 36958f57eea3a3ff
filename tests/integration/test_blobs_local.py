"""The local blob store: the shared contract, atomic writes, and signed downloads via the API."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import AsyncIterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from genkeep.api import problems
from genkeep.api.routes import blobs as blob_routes
from genkeep.blobs import LocalBlobStore, load_signing_key, open_blob_store
from genkeep.config import Settings
from genkeep.errors import BlobKeyConflict, ConfigurationError, SignedUrlExpired, SignedUrlInvalid
from tests.support.blob_contract import BlobStoreContract, Fetch, listed

SIGNING_KEY = b"k" * 32
PUBLIC_URL = "http://genkeep.test"


def make_app(store: object | None) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.include_router(blob_routes.router)
    if store is not None:
        app.state.blob_store = store
    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
async def store(root: Path) -> AsyncIterator[LocalBlobStore]:
    blob_store = LocalBlobStore(root, SIGNING_KEY, PUBLIC_URL + "/", default_ttl_s=60)
    yield blob_store
    await blob_store.aclose()


@pytest.fixture
async def client(store: LocalBlobStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(store))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        yield http


@pytest.fixture
def fetch(client: httpx.AsyncClient) -> Fetch:
    return client.get


class TestLocalContract(BlobStoreContract):
    pass


def signed_parts(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


def tmp_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if "~" in path.name]


# ---- storage ---------------------------------------------------------------------------


async def test_blobs_are_plain_files_under_root(store: LocalBlobStore, root: Path) -> None:
    await store.put("a/b/c.txt", b"hello", content_type="text/plain")
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"hello"
    assert tmp_files(root) == []


async def test_concurrent_overwrites_are_atomic(store: LocalBlobStore, root: Path) -> None:
    versions = [bytes([n]) * (512 * 1024) for n in range(8)]
    await store.put("doc.bin", versions[0], content_type="application/octet-stream")

    async def read_many() -> set[bytes]:
        return {await store.get("doc.bin") for _ in range(20)}

    writes = [store.put("doc.bin", v, content_type="application/octet-stream") for v in versions]
    *_, seen = await asyncio.gather(*writes, read_many())
    assert isinstance(seen, set)
    # A reader sees one whole version, never a torn mix or an empty file.
    assert seen <= set(versions)
    assert await store.get("doc.bin") in versions
    assert tmp_files(root) == []


async def test_failed_write_keeps_the_old_blob(store: LocalBlobStore, root: Path) -> None:
    await store.put("keep.txt", b"old", content_type="text/plain")
    with pytest.raises(IsADirectoryError):
        await store.put_file("keep.txt", root, content_type="text/plain")
    with pytest.raises(FileNotFoundError):
        await store.put_file("keep.txt", root / "missing", content_type="text/plain")
    assert await store.get("keep.txt") == b"old"
    assert tmp_files(root) == []


async def test_temp_files_are_never_listed(store: LocalBlobStore, root: Path) -> None:
    await store.put("d/real.txt", b"x", content_type="text/plain")
    (root / "d" / ".~leftover.tmp").write_bytes(b"crash debris")
    assert await listed(store) == {"d/real.txt"}


async def test_a_key_cannot_be_both_blob_and_folder(store: LocalBlobStore) -> None:
    await store.put("a/b", b"x", content_type="text/plain")
    with pytest.raises(BlobKeyConflict):
        await store.put("a/b/c", b"y", content_type="text/plain")
    with pytest.raises(BlobKeyConflict):
        await store.put("a", b"y", content_type="text/plain")
    assert await store.exists("a") is False
    await store.delete("a")  # a folder is not a blob; deleting it is a no-op
    assert await store.get("a/b") == b"x"


async def test_symlinks_cannot_lead_outside_root(
    store: LocalBlobStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "link").symlink_to(outside)
    with pytest.raises(Exception, match="outside the blob folder"):
        await store.get("link/secret.txt")
    with pytest.raises(Exception, match="outside the blob folder"):
        await store.put("link/new.txt", b"x", content_type="text/plain")
    assert not (outside / "new.txt").exists()
    assert await listed(store) == set()


# ---- signed URLs through the API --------------------------------------------------------


async def test_signed_url_serves_the_blob(store: LocalBlobStore, client: httpx.AsyncClient) -> None:
    await store.put("jobs/j1/v2.pdf", b"%PDF-data", content_type="application/pdf")
    url = await store.signed_url("jobs/j1/v2.pdf", filename="Report.pdf")
    path, query = signed_parts(url)
    assert url.startswith(f"{PUBLIC_URL}/v1/blobs/jobs/j1/v2.pdf?")
    assert path == "/v1/blobs/jobs/j1/v2.pdf"
    assert set(query) == {"expires", "filename", "signature"}
    assert int(query["expires"]) - time.time() == pytest.approx(60, abs=5)
    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"%PDF-data"
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-length"] == "9"
    assert response.headers["content-disposition"] == 'attachment; filename="Report.pdf"'
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_signed_url_without_filename(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    await store.put("x.bin", b"x", content_type="application/octet-stream")
    url = await store.signed_url("x.bin")
    assert "filename=" not in url
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == "attachment"


async def test_expired_url_is_refused(
    store: LocalBlobStore, root: Path, client: httpx.AsyncClient
) -> None:
    await store.put("old.txt", b"x", content_type="text/plain")
    an_hour_ago = LocalBlobStore(root, SIGNING_KEY, PUBLIC_URL, clock=lambda: time.time() - 3600)
    response = await client.get(await an_hour_ago.signed_url("old.txt", ttl_s=60))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "signed-url-expired"


async def test_url_expires_after_its_lifetime(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    await store.put("soon.txt", b"x", content_type="text/plain")
    url = await store.signed_url("soon.txt", ttl_s=1)
    _, query = signed_parts(url)
    expires = int(query["expires"])
    store.verify("soon.txt", query["expires"], None, query["signature"], now=expires - 1)
    with pytest.raises(SignedUrlExpired):
        store.verify("soon.txt", query["expires"], None, query["signature"], now=expires)


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 64},
        {"signature": "zz"},
        {"signature": "é"},
        {"signature": ""},
        {"expires": "9999999999"},
        {"expires": "-1"},
        {"expires": "1e9"},
        {"expires": "9" * 5000},
        {"filename": "evil.html"},
        {"filename": None},
        {"signature": None},
        {"expires": None},
    ],
)
async def test_tampered_query_is_refused(
    store: LocalBlobStore, client: httpx.AsyncClient, change: dict[str, str | None]
) -> None:
    await store.put("t.txt", b"x", content_type="text/plain")
    path, query = signed_parts(await store.signed_url("t.txt", filename="t.txt"))
    tampered: dict[str, Any] = {**query, **change}
    params = urlencode({k: v for k, v in tampered.items() if v is not None})
    response = await client.get(f"{path}?{params}")
    assert response.status_code == 403
    assert response.json()["code"] == "signed-url-invalid"


async def test_signature_for_one_key_does_not_open_another(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    await store.put("mine.txt", b"mine", content_type="text/plain")
    await store.put("theirs.txt", b"theirs", content_type="text/plain")
    _, query = signed_parts(await store.signed_url("mine.txt"))
    response = await client.get(f"/v1/blobs/theirs.txt?{urlencode(query)}")
    assert response.status_code == 403
    assert response.json()["code"] == "signed-url-invalid"


async def test_other_signing_key_is_refused(store: LocalBlobStore, root: Path) -> None:
    other = LocalBlobStore(root, b"o" * 32, PUBLIC_URL)
    _, query = signed_parts(await other.signed_url("a.txt"))
    with pytest.raises(SignedUrlInvalid):
        store.verify("a.txt", query["expires"], None, query["signature"])


async def test_missing_blob_with_valid_signature_is_404(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    response = await client.get(await store.signed_url("gone.txt"))
    assert response.status_code == 404
    assert response.json()["code"] == "blob-not-found"


async def raw_get(app: FastAPI, raw_path: bytes, query: bytes) -> tuple[int, dict[str, Any]]:
    """Send a path byte-for-byte: httpx would normalize '..' segments away before sending."""
    path = raw_path.decode("latin-1")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"genkeep.test")],
        "client": ("127.0.0.1", 1234),
        "server": ("genkeep.test", 80),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if body else {}


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/v1/blobs/../secret.txt",
        b"/v1/blobs/a/../../secret.txt",
        b"/v1/blobs/%2e%2e%2fsecret.txt",
        b"/v1/blobs/%2E%2E/secret.txt",
        b"/v1/blobs/a%2f..%2f..%2fsecret.txt",
        b"/v1/blobs/..%5csecret.txt",
        b"/v1/blobs/%2fetc%2fpasswd",
        b"/v1/blobs//etc/passwd",
        b"/v1/blobs/a%00b",
    ],
)
async def test_traversal_never_reaches_the_filesystem(
    store: LocalBlobStore,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raw_path: bytes,
) -> None:
    (tmp_path / "secret.txt").write_bytes(b"TOP-SECRET-CONTENT")
    calls: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(repr(args))
        raise AssertionError("a refused key reached the filesystem")

    monkeypatch.setattr(store, "_path", spy)
    monkeypatch.setattr(store, "open_download", spy)
    # Even a URL signed for the bad key itself (as if the attacker had the key) is refused.
    bad_key = unquote(raw_path.decode().removeprefix("/v1/blobs/"))
    query = urlencode(
        {"expires": "9999999999", "signature": store._sign(bad_key, 9999999999, None)}
    )
    status, body = await raw_get(make_app(store), raw_path, query.encode())
    assert status == 422, body
    # A NUL is refused by the API's input guard before the key rules look at it.
    assert body["code"] == ("invalid-text" if b"%00" in raw_path else "invalid-blob-key")
    assert "TOP-SECRET-CONTENT" not in json.dumps(body)
    assert calls == []


async def test_encoded_traversal_over_httpx(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    response = await client.get("/v1/blobs/%2e%2e%2fsecret.txt?expires=1&signature=00")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid-blob-key"


async def test_route_answers_404_without_a_local_store() -> None:
    for store in (None, object()):
        transport = httpx.ASGITransport(app=make_app(store))
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
            response = await http.get("/v1/blobs/a.txt?expires=1&signature=00")
        assert response.status_code == 404
        assert response.json()["code"] == "not-found"


# ---- signing key and factory ---------------------------------------------------------


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "var", _env_file=None, **overrides)


def test_signing_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    key = load_signing_key(settings)
    path = tmp_path / "var" / "signing.key"
    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(settings) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["signing.key"]


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: load_signing_key(settings), range(16)))
    assert len(keys) == 1
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["signing.key"]


def test_configured_signing_key_wins(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, signing_key="s" * 40)
    assert load_signing_key(settings) == b"s" * 40
    assert not (tmp_path / "var" / "signing.key").exists()
    with pytest.raises(ConfigurationError):
        load_signing_key(settings_for(tmp_path, signing_key="short"))


def test_damaged_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "signing.key").write_bytes(b"truncated")
    with pytest.raises(ConfigurationError, match="remove it"):
        load_signing_key(settings_for(tmp_path))


async def test_open_blob_store_defaults_to_local(tmp_path: Path) -> None:
    store = await open_blob_store(settings_for(tmp_path, public_url="http://h:1/"))
    assert isinstance(store, LocalBlobStore)
    assert store.root == (tmp_path / "var" / "blobs").resolve()
    assert (await store.signed_url("a.txt")).startswith("http://h:1/v1/blobs/a.txt?")
    custom = await open_blob_store(settings_for(tmp_path, blob_dir=tmp_path / "elsewhere"))
    assert isinstance(custom, LocalBlobStore)
    assert custom.root == (tmp_path / "elsewhere").resolve()
    assert (tmp_path / "elsewhere").is_dir()
