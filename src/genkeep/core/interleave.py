"""Named points in the lease protocols where a test may pause or fail a process.

Races are proven with interleavings forced at these points, not with sleeps that hope for
one. In production no hook is installed and reaching a point costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

Hook = Callable[[], Awaitable[None]]

_hooks: dict[str, Hook] = {}


async def point(name: str) -> None:
    """Run the hook installed at ``name``, if any (it may wait, or raise)."""
    if _hooks:
        hook = _hooks.get(name)
        if hook is not None:
            await hook()


@contextmanager
def hooked(name: str, hook: Hook) -> Iterator[None]:
    """Install ``hook`` at ``name`` for the duration of the block."""
    _hooks[name] = hook
    try:
        yield
    finally:
        _hooks.pop(name, None)
