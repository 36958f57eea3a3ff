from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from genkeep.generate.cache_control import CacheControl


def test_parse_directives() -> None:
    assert CacheControl.parse(None) == CacheControl()
    assert CacheControl.parse("no-cache") == CacheControl(no_cache=True)
    assert CacheControl.parse("No-Store, max-age=60") == CacheControl(no_store=True, max_age=60)
    assert CacheControl.parse('private, max-age="5"') == CacheControl(max_age=5)


@pytest.mark.parametrize(
    "header", ["max-age=-1", "max-age=abc", "max-age=", "max-age=1.5", "max-age=١٢"]
)
def test_invalid_max_age_is_ignored(header: str) -> None:
    """RFC 9111: an invalid directive is ignored; the header is client input, never a 4xx."""
    assert CacheControl.parse(f"no-store, {header}") == CacheControl(no_store=True)


def test_huge_max_age_is_clamped_and_still_gives_a_date() -> None:
    """max-age=100000000000000 once overflowed the date arithmetic into a 500."""
    parsed = CacheControl.parse("max-age=100000000000000")
    assert parsed.max_age == 2**31
    now = datetime.now(UTC)
    assert parsed.accepts_stored(now - timedelta(days=365 * 50), now)


def test_accepts_stored() -> None:
    now = datetime.now(UTC)
    young, old = now - timedelta(seconds=5), now - timedelta(seconds=500)
    assert CacheControl().accepts_stored(old, now)
    assert CacheControl(max_age=60).accepts_stored(young, now)
    assert not CacheControl(max_age=60).accepts_stored(old, now)
    assert CacheControl(max_age=0).accepts_stored(now, now)
    # no-cache: no result that existed when the request arrived will do
    assert not CacheControl(no_cache=True).accepts_stored(now, now)


def test_accepts_new() -> None:
    # A result produced after the request arrived: any, but no-cache asked for a generation.
    assert CacheControl(max_age=0).accepts_new("edited")
    assert CacheControl(no_cache=True).accepts_new("regenerated")
    assert not CacheControl(no_cache=True).accepts_new("edited")
