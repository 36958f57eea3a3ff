"""Per-request cache directives, parsed from ``Cache-Control`` or given explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# RFC 9111 §1.2.2: a delta-seconds too large to hold is taken as 2^31; it still gives a date.
MAX_DELTA_SECONDS = 2**31


@dataclass(frozen=True, slots=True)
class CacheControl:
    """``no_cache``: generate a new version; ``no_store``: persist nothing; ``max_age``: seconds."""

    no_cache: bool = False
    no_store: bool = False
    max_age: float | None = None

    @classmethod
    def parse(cls, header: str | None) -> CacheControl:
        """Read the directives genkeep honours; unknown directives are ignored as RFC 9111 says."""
        if not header:
            return _NO_DIRECTIVES
        no_cache = no_store = False
        max_age: float | None = None
        for part in (header or "").split(","):
            name, _, value = part.strip().partition("=")
            name = name.strip().lower()
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "max-age":
                value = value.strip().strip('"')
                # RFC 9111 §4.2.1: an invalid max-age is ignored, like an unknown directive.
                if value.isascii() and value.isdigit():
                    max_age = float(min(int(value[:20]), MAX_DELTA_SECONDS))
        return cls(no_cache=no_cache, no_store=no_store, max_age=max_age)

    def accepts_stored(self, created_at: datetime, now: datetime) -> bool:
        """Whether a result that existed when the request arrived may answer it.

        ``now`` and ``created_at`` are both the database's clock. With no-cache none will do.
        """
        if self.no_cache:
            return False
        if self.max_age is None:
            return True
        return now - created_at <= timedelta(seconds=min(self.max_age, MAX_DELTA_SECONDS))

    def accepts_new(self, source: str) -> bool:
        """Whether a result produced after the request arrived may answer it: any, except
        that no-cache asked for a generation, which a person's edit is not."""
        return not (self.no_cache and source == "edited")


_NO_DIRECTIVES = CacheControl()
