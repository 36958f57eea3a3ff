"""How a stored file reaches a client: a redirect to its signed URL (the default), the URL
itself, or its bytes through the API.

A browser page cannot read a file from S3 or Azure without CORS rules on the bucket, nor
follow a redirect there with its API key: it asks for the URL and navigates to it (a
download), or for the content (a file it shows).
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel

from genkeep.api.openapi import documented
from genkeep.blobs import content_disposition
from genkeep.services import Services

Delivery = Literal["redirect", "url", "content"]
DeliveryQuery = Annotated[
    Delivery,
    Query(
        description="`redirect`: 302 to a signed URL; `url`: that URL as JSON; "
        "`content`: the file itself, through the API."
    ),
]


class SignedUrlOut(BaseModel):
    """A URL that downloads the file without credentials until it expires."""

    url: str
    expires_in_s: int


# The route arguments of a file the owner reads: 302 by default, 200 when asked, 404.
DELIVERY_ROUTE: dict[str, Any] = {
    "status_code": 302,
    "response_class": RedirectResponse,
    "responses": documented(
        404,
        extra={
            200: {
                "description": "`deliver=url`: the signed URL; `deliver=content`: the file, "
                "whose media type follows its name.",
                "model": SignedUrlOut,
                "content": {"*/*": {}},
            }
        },
    ),
}


async def deliver_blob(services: Services, key: str, filename: str, how: Delivery) -> Response:
    if how == "content":
        chunks = services.blobs.open_stream(key)
        # The first chunk is read before answering: a missing blob is a 404, not a cut stream.
        first = await anext(chunks, b"")
        return file_response(_then(first, chunks), filename)
    url = await services.blobs.signed_url(key, filename=filename)
    if how == "url":
        ttl = services.settings.signed_url_ttl_s
        return JSONResponse(SignedUrlOut(url=url, expires_in_s=ttl).model_dump())
    return RedirectResponse(url, status_code=302)


def file_response(
    chunks: AsyncIterator[bytes], filename: str | None, *, key: str = "", size: int | None = None
) -> StreamingResponse:
    """A stored file streamed by the API, typed by its name (or key), never run as a page."""
    media_type = mimetypes.guess_type(filename or key)[0] or "application/octet-stream"
    headers = {
        "Content-Disposition": content_disposition(filename),
        # Stored content must never be sniffed into HTML and run on the API's origin.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
