"""Jobs made over HTTP by tests that drive a real server."""

from __future__ import annotations

from typing import Any

import httpx


def confirmed_job(client: httpx.Client, title: str) -> dict[str, Any]:
    """A job with one confirmed section: it can be exported at once."""
    made = client.post(
        "/v1/jobs",
        json={
            "title": title,
            "sections_confirmed": True,
            "sections": [{"title": "One", "content": "Some *text*."}],
        },
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def export_markdown(client: httpx.Client, job_id: str, key: str) -> dict[str, Any]:
    """Submit an export of the job's sections to Markdown; the queued task."""
    task = client.post(
        f"/v1/jobs/{job_id}/tasks",
        json={"kind": "export", "payload": {"formats": ["md"]}},
        headers={"Idempotency-Key": key},
    )
    assert task.status_code == 201, task.text
    return dict(task.json())
