"""Downloads of local blobs through HMAC-signed URLs; S3 and Azure serve their own URLs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse

from genkeep.api.delivery import file_response
from genkeep.api.guard import GuardedRoute
from genkeep.api.openapi import documented
from genkeep.blobs import LocalBlobStore, validate_key
from genkeep.errors import NotFound

# What validate_key accepts, less keys with a segment starting with "." (never made).
KEY_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,254})*$"

router = APIRouter(route_class=GuardedRoute, prefix="/v1", tags=["blobs"])


@router.get(
    "/blobs/{key:path}",
    response_class=StreamingResponse,
    responses=documented(
        403,
        404,
        422,
        extra={
            200: {
                "description": "The blob; its media type follows the signed file name.",
                "content": {"*/*": {}},
            }
        },
    ),
)
async def download(
    key: Annotated[str, Path(max_length=512, json_schema_extra={"pattern": KEY_PATTERN})],
    request: Request,
    expires: str | None = None,
    filename: str | None = None,
    signature: str | None = None,
) -> StreamingResponse:
    """Stream a blob to whoever holds a valid, unexpired signed URL for it."""
    store = getattr(request.app.state, "blob_store", None)
    if not isinstance(store, LocalBlobStore):
        raise NotFound("blob downloads are served by the object store, not this server")
    # Key first: a traversal attempt is refused before signatures or files are looked at.
    validate_key(key)
    store.verify(key, expires, filename, signature)
    size, chunks = await store.open_download(key)
    return file_response(chunks, filename, key=key, size=size)
