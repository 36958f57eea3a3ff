"""One contract every BlobStore passes; each backend's test module subclasses it.

A subclass provides two fixtures: ``store`` (an empty store) and ``fetch`` (GET a signed URL
the way a browser would, returning the httpx response).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from genkeep.blobs import BlobStore
from genkeep.errors import BadInput, BlobNotFound, InvalidBlobKey

Fetch = Callable[[str], Awaitable[httpx.Response]]

BAD_KEYS = ["../x", "a/../b", "/abs", "a\\b", "a//b", ".", "", "x" * 513, "ré/sumé"]


async def listed(store: BlobStore, prefix: str = "") -> set[str]:
    return {key async for key in store.list_keys(prefix)}


async def streamed(store: BlobStore, key: str, chunk_size: int = 64 * 1024) -> bytes:
    return b"".join([chunk async for chunk in store.open_stream(key, chunk_size=chunk_size)])


class BlobStoreContract:
    """The behaviour callers may rely on, whatever the backend."""

    async def test_put_then_get_returns_the_bytes(self, store: BlobStore) -> None:
        data = b"%PDF-1.7 pretend\x00\xff"
        info = await store.put("jobs/j1/report.pdf", data, content_type="application/pdf")
        assert info.key == "jobs/j1/report.pdf"
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert await store.get("jobs/j1/report.pdf") == data

    async def test_empty_blob(self, store: BlobStore) -> None:
        info = await store.put("empty.txt", b"", content_type="text/plain")
        assert info.size == 0
        assert await store.get("empty.txt") == b""
        assert await streamed(store, "empty.txt") == b""

    async def test_put_overwrites(self, store: BlobStore) -> None:
        await store.put("a/doc.md", b"first version, longer", content_type="text/markdown")
        await store.put("a/doc.md", b"second", content_type="text/markdown")
        assert await store.get("a/doc.md") == b"second"
        assert await listed(store) == {"a/doc.md"}

    async def test_put_file_and_stream_a_large_blob(self, store: BlobStore, tmp_path: Path) -> None:
        # Past 8 MiB: S3 goes multipart and Azure uploads in blocks.
        data = os.urandom(9 * 1024 * 1024 + 17)
        source = tmp_path / "upload.bin"
        source.write_bytes(data)
        info = await store.put_file("uploads/big.zip", source, content_type="application/zip")
        assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert await store.get("uploads/big.zip") == data
        assert await streamed(store, "uploads/big.zip") == data

    async def test_missing_blob_is_not_found(self, store: BlobStore) -> None:
        with pytest.raises(BlobNotFound):
            await store.get("nothing/here.txt")
        with pytest.raises(BlobNotFound):
            await streamed(store, "nothing/here.txt")
        assert await store.exists("nothing/here.txt") is False

    async def test_exists_and_delete_is_idempotent(self, store: BlobStore) -> None:
        await store.put("d/x.txt", b"x", content_type="text/plain")
        assert await store.exists("d/x.txt") is True
        await store.delete("d/x.txt")
        assert await store.exists("d/x.txt") is False
        await store.delete("d/x.txt")
        await store.delete("never/existed.txt")
        with pytest.raises(BlobNotFound):
            await store.get("d/x.txt")

    async def test_list_keys_by_prefix(self, store: BlobStore) -> None:
        keys = {"docs/a.md", "docs/b/c.pdf", "docsx/d.txt", "other/e.zip", "top.ttl"}
        for key in keys:
            await store.put(key, key.encode(), content_type="application/octet-stream")
        assert await listed(store) == keys
        assert await listed(store, "docs/") == {"docs/a.md", "docs/b/c.pdf"}
        assert await listed(store, "docs") == {"docs/a.md", "docs/b/c.pdf", "docsx/d.txt"}
        assert await listed(store, "docs/b") == {"docs/b/c.pdf"}
        assert await listed(store, "docs/b/c.pdf") == {"docs/b/c.pdf"}
        assert await listed(store, "nope/") == set()

    @pytest.mark.parametrize("bad", BAD_KEYS)
    async def test_every_method_refuses_bad_keys(
        self, store: BlobStore, bad: str, tmp_path: Path
    ) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        with pytest.raises(InvalidBlobKey):
            await store.put(bad, b"x", content_type="text/plain")
        with pytest.raises(InvalidBlobKey):
            await store.put_file(bad, source, content_type="text/plain")
        with pytest.raises(InvalidBlobKey):
            await store.get(bad)
        with pytest.raises(InvalidBlobKey):
            await streamed(store, bad)
        with pytest.raises(InvalidBlobKey):
            await store.exists(bad)
        with pytest.raises(InvalidBlobKey):
            await store.delete(bad)
        with pytest.raises(InvalidBlobKey):
            await store.signed_url(bad, filename="f.txt")
        assert await listed(store) == set()

    @pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "a\\b"])
    async def test_list_refuses_bad_prefixes(self, store: BlobStore, prefix: str) -> None:
        with pytest.raises(InvalidBlobKey):
            await listed(store, prefix)

    async def test_signed_url_downloads_the_blob(self, store: BlobStore, fetch: Fetch) -> None:
        data = b"# Title\n\nbody\n"
        await store.put("artifacts/j1/md/v1.md", data, content_type="text/markdown")
        url = await store.signed_url("artifacts/j1/md/v1.md", filename="Report v1.md", ttl_s=60)
        response = await fetch(url)
        assert response.status_code == 200, response.text
        assert response.content == data
        assert response.headers["content-disposition"] == 'attachment; filename="Report v1.md"'

    async def test_signed_url_with_a_unicode_filename(self, store: BlobStore, fetch: Fetch) -> None:
        await store.put("u/x.pdf", b"pdf", content_type="application/pdf")
        response = await fetch(await store.signed_url("u/x.pdf", filename='Résumé "1".pdf'))
        assert response.status_code == 200, response.text
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="Resume _1_.pdf"; filename*=UTF-8')
        assert unquote(disposition.split("''", 1)[1]) == 'Résumé "1".pdf'

    @pytest.mark.parametrize("ttl", [0, -5, 8 * 24 * 3600])
    async def test_signed_url_refuses_bad_lifetimes(self, store: BlobStore, ttl: int) -> None:
        with pytest.raises(BadInput):
            await store.signed_url("a.txt", ttl_s=ttl)
