"""Opaque paging cursors: ``created_at|id`` of the last row, base64url-encoded."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from genkeep.errors import BadInput

_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


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
