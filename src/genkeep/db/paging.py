"""Keyset paging, newest first: a page starts after the (created_at, id) of the last row
of the page before, read from an ``(owner_id, created_at, id)`` index whatever the depth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, tuple_
from sqlalchemy.orm import InstrumentedAttribute

Position = tuple[datetime, str]


def newest_first(
    query: Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    after: Position | None,
) -> Select[Any]:
    """``query`` ordered newest first, from just after ``after`` when given."""
    if after is not None:
        # A row value comparison: both databases seek the index to it (an OR of the two
        # columns' conditions is a filter PostgreSQL applies row by row).
        created = bindparam("after_created", after[0], type_=created_at.type)
        last_id = bindparam("after_id", after[1], type_=row_id.type)
        query = query.where(tuple_(created_at, row_id) < tuple_(created, last_id))
    return query.order_by(created_at.desc(), row_id.desc())
