"""Exports of any job title, and nothing left behind by a failed or replaced upload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from genkeep.blobs import validate_key
from genkeep.config import Settings
from genkeep.ops.sweep_files import collect_unreferenced_files
from genkeep.worker.runner import Worker
from tests.support.edge import EdgeApi, edge_api, snapshot

MEDIA = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "md": "text/markdown",
}


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[EdgeApi]:
    async with edge_api(settings, tmp_path, task_poll_s=0.05) as opened:
        yield opened


async def _finished(api: EdgeApi, task_id: str) -> dict[str, Any]:
    worker = Worker(api.services)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(1500):
            task = (await api.client.get(f"/v1/tasks/{task_id}", headers=api.alice)).json()
            if task["status"] in ("completed", "failed", "cancelled"):
                return dict(task)
            await asyncio.sleep(0.02)
        raise AssertionError("task did not finish")
    finally:
        worker.stop()
        await running


@pytest.mark.parametrize(("title", "stem"), [("Café report", "café-report"), ("日本語", "日本語")])
async def test_a_job_with_any_title_exports_pdf_docx_and_md(
    api: EdgeApi, title: str, stem: str
) -> None:
    job = (
        await api.client.post(
            "/v1/jobs",
            json={
                "title": title,
                "sections_confirmed": True,
                "sections": [{"title": "Résumé", "content": "Ça marche — 日本語も。"}],
            },
            headers=api.alice,
        )
    ).json()
    for fmt in ("pdf", "docx", "md"):
        submitted = await api.client.post(
            f"/v1/jobs/{job['id']}/tasks",
            json={"kind": "export", "payload": {"formats": [fmt]}},
            headers={**api.alice, "Idempotency-Key": f"{job['id']}-{fmt}"},
        )
        task = await _finished(api, submitted.json()["id"])
        assert task["status"] == "completed", task["error"]
        [artifact] = (
            await api.client.get(f"/v1/jobs/{job['id']}/artifacts?kind={fmt}", headers=api.alice)
        ).json()
        assert artifact["filename"] == f"{stem}.{fmt}"
        stored = await api.services.artifacts.get("alice", artifact["id"])
        assert stored is not None and validate_key(stored.blob_key).isascii()
        redirect = await api.client.get(
            f"/v1/artifacts/{artifact['id']}/download", headers=api.alice
        )
        assert redirect.status_code == 302
        url = urlsplit(redirect.headers["location"])
        download = await api.client.get(f"{url.path}?{url.query}")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith(MEDIA[fmt])
        disposition = download.headers["content-disposition"]
        disposition.encode("latin-1")  # a valid header value
        assert unquote(disposition.split("filename*=UTF-8''")[1]) == f"{stem}.{fmt}"
        assert len(download.content) == artifact["size"]


async def test_a_request_failing_after_its_upload_was_written_leaves_no_blob(
    api: EdgeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = (await api.client.post("/v1/jobs", json={"title": "F"}, headers=api.alice)).json()
    before = await snapshot(api.services)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database write failed")

    monkeypatch.setattr(api.services.jobs, "attach_file", broken)
    response = await api.client.put(
        f"/v1/jobs/{job['id']}/file?filename=a.txt", content=b"hello", headers=api.alice
    )
    assert response.status_code == 500
    assert await snapshot(api.services) == before


async def test_a_replaced_upload_is_deleted_and_the_sweep_takes_unreferenced_files(
    api: EdgeApi,
) -> None:
    job = (await api.client.post("/v1/jobs", json={"title": "R"}, headers=api.alice)).json()
    prefix = f"owners/alice/jobs/{job['id']}/files/"
    for content in (b"first", b"second", b"second"):
        response = await api.client.put(
            f"/v1/jobs/{job['id']}/file?filename=a.txt", content=content, headers=api.alice
        )
        assert response.status_code == 200
    files = [k async for k in api.services.blobs.list_keys(prefix)]
    current = (await api.services.jobs.require("alice", job["id"])).file_blob_key
    assert current is not None and files == [current], "each replaced upload went with its request"

    hour = 3600
    old = f"{prefix}{int(time.time()) - 2 * hour}-abcdef012345-{'0' * 64}"
    in_flight = f"{prefix}{int(time.time())}-abcdef012345-{'1' * 64}"
    legacy = f"{prefix}{'2' * 64}"
    for key in (old, in_flight, legacy):
        await api.services.blobs.put(key, b"x", content_type="text/plain")
    deleted = await collect_unreferenced_files(api.services, grace_s=hour)
    assert deleted == 1
    remaining = sorted([k async for k in api.services.blobs.list_keys(prefix)])
    assert remaining == sorted([current, in_flight, legacy])
