"""Opaque paging cursors: ``created_at|id`` of the last row, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

from genkeep.errors import BadInput

_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
T = TypeVar("T")


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; BadInput for anything this module did not make."""
    try:
        created_text, _, row_id = (
            base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii").partition("|")
        )
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is not None:
            created = created.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeError):
        raise BadInput("invalid cursor: use next_cursor of the previous page") from None
    # A time without zone cannot be compared with stored times; an id is a uuid's alphabet.
    if created.tzinfo is None or not _ID.match(row_id):
        raise BadInput("invalid cursor: use next_cursor of the previous page")
    return created, row_id


CursorQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Where the page starts: the cursor of the previous page's Link rel=next "
        "(X-Next-Cursor). Costs one page at any depth, unlike offset.",
    ),
]


def position_of(cursor: str | None) -> tuple[datetime, str] | None:
    return None if cursor is None else decode_cursor(cursor)


def paged(request: Request, response: Response, rows: list[T], limit: int) -> list[T]:
    """The first ``limit`` of ``rows`` (read as ``limit + 1``); when there are more, the next
    page's cursor in ``X-Next-Cursor`` and a ``Link: <...>; rel="next"`` (RFC 8288)."""
    if len(rows) <= limit:
        return rows
    page = rows[:limit]
    last = page[-1]
    cursor = encode_cursor(last.created_at, last.id)  # type: ignore[attr-defined]
    following = request.url.remove_query_params(["cursor", "offset"]).include_query_params(
        cursor=cursor
    )
    response.headers["X-Next-Cursor"] = cursor
    response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return page
