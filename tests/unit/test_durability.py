"""The production durability check (I12): which databases it refuses and which it accepts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from genkeep.db.url import async_url, is_ephemeral

TMP = Path(tempfile.gettempdir())


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared",
        "sqlite:///file:genkeep?mode=memory&cache=shared&uri=true",
        f"sqlite:///{TMP}/genkeep.db",
        f"sqlite:///{TMP}/nested/deeper/genkeep.db",
        "sqlite:////dev/shm/genkeep.db",
    ],
)
def test_memory_and_temporary_databases_are_refused(url: str) -> None:
    reason = is_ephemeral(async_url(url))
    assert reason is not None and ("in-memory" in reason or "temporary" in reason)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/genkeep/genkeep.db",
        "sqlite:///var/genkeep.db",
        "postgresql://genkeep@db.internal:5432/genkeep",
    ],
)
def test_durable_databases_are_accepted(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A relative path resolves against the working directory; make that a durable one
    # (a checkout under /tmp would itself be temporary, and rightly refused).
    monkeypatch.chdir("/")
    assert is_ephemeral(async_url(url)) is None
