"""``If-Match`` as RFC 9110 §13.1.1 reads it: ``*``, or a list of entity tags compared strongly."""

from __future__ import annotations

import re
from dataclasses import dataclass

from genkeep.api.problems import truncate
from genkeep.errors import BadInput, PreconditionFailed

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')


@dataclass(frozen=True)
class EntityTag:
    opaque: str
    weak: bool


def if_match_tags(value: str) -> list[EntityTag] | None:
    """The tags of an ``If-Match`` value; None for ``*`` (any current representation).
    A value that is not ``*`` or a list of entity tags is refused (422)."""
    if value.strip() == "*":
        return None
    tags: list[EntityTag] = []
    position = 0
    while position < len(value):
        found = _TAG.match(value, position)
        if found is None:
            raise BadInput(f"If-Match {truncate(value, 40)} is not * or a list of entity tags")
        tags.append(EntityTag(found.group(2), weak=found.group(1) is not None))
        position = found.end()
        if position < len(value):
            if value[position] != ",":
                raise BadInput(f"If-Match {truncate(value, 40)} is not * or a list of entity tags")
            position += 1
    if not tags:
        raise BadInput("If-Match is empty")
    return tags


def matched_version(value: str, current: int) -> int | None:
    """The version ``value`` lets a write go ahead on: ``current`` when one of its tags is
    the current version's (strong comparison: a weak tag never matches), None for ``*``;
    PreconditionFailed (412) otherwise."""
    tags = if_match_tags(value)
    if tags is None:
        return None
    if any(not tag.weak and tag.opaque == str(current) for tag in tags):
        return current
    weak = " (a weak tag never matches)" if any(tag.weak for tag in tags) else ""
    raise PreconditionFailed(
        f"If-Match {truncate(value, 40)} names no current version of this job{weak}"
    )
