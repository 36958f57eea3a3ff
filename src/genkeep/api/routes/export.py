"""Preview and export, rendered from persisted canonical content (I2)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from genkeep.api.deps import OwnerDep, ServicesDep
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.api.schemas import ExportRequest
from genkeep.blobs import content_disposition
from genkeep.core.hashes import sha256_hex
from genkeep.export.formats import render
from genkeep.export.html import preview_page
from genkeep.export.types import ExportMeta
from genkeep.generate.canonical import persisted_content, title_of

EXPORT_MEDIA_TYPES = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/markdown",
    "text/html",
)

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["export"])


@router.get("/results/{result_id}/preview", response_class=HTMLResponse, responses=documented(404))
async def preview(result_id: str, owner: OwnerDep, services: ServicesDep) -> HTMLResponse:
    """The stored result as an HTML page (the same page the PDF export prints)."""
    result = await persisted_content(services.prompts, owner, result_id=result_id)
    meta = ExportMeta(
        result_id=result.id,
        prompt_id=result.prompt_id,
        content_sha256=result.content_sha256,
        source=result.source,
        persisted=True,
    )
    page = preview_page(result.content, title=title_of(result.content), meta=meta)
    return HTMLResponse(page, headers=_headers(meta))


@router.post(
    "/export",
    response_class=Response,
    responses=documented(
        404,
        extra={
            200: {
                "description": "The rendered file, of the requested format's media type.",
                "content": {media_type: {} for media_type in EXPORT_MEDIA_TYPES},
            }
        },
    ),
)
async def export(body: ExportRequest, owner: OwnerDep, services: ServicesDep) -> Response:
    """Render a stored result (by id, or a prompt's latest) or raw legacy content to a file."""
    if body.content is not None:
        content = body.content
        meta = ExportMeta(None, None, sha256_hex(content), "client", persisted=False)
    else:
        result = await persisted_content(
            services.prompts, owner, result_id=body.result_id, prompt_id=body.prompt_id
        )
        content = result.content
        meta = ExportMeta(result.id, result.prompt_id, result.content_sha256, result.source, True)
    title = body.title or title_of(content)
    # Rendering (WeasyPrint especially) is CPU-bound: keep it off the event loop.
    rendered = await asyncio.to_thread(render, content, body.format, title=title, meta=meta)
    filename = f"{meta.result_id or 'export'}.{rendered.extension}"
    headers = _headers(meta) | {
        "Content-Disposition": content_disposition(filename),
        # The file's own hash (a PDF or DOCX is not its content's bytes), to check a download by.
        "X-Genkeep-File-Sha256": sha256_hex(rendered.data),
    }
    return Response(rendered.data, media_type=rendered.media_type, headers=headers)


def _headers(meta: ExportMeta) -> dict[str, str]:
    headers = {
        "X-Genkeep-Content-Sha256": meta.content_sha256,
        "X-Genkeep-Persisted": "true" if meta.persisted else "false",
    }
    if meta.result_id:
        headers["X-Genkeep-Result-Id"] = meta.result_id
    return headers
