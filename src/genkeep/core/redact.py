"""What a client may read of an unexpected exception: its kind and message, no server paths."""

from __future__ import annotations

import re

# An absolute POSIX path (not a URL's path: no ':' or '/' right before it).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"/:,;()\[\]]+/?)+")


def client_message(exc: BaseException) -> str:
    """``Kind: message`` for a task's or run's ``error`` field, with file paths left out."""
    if isinstance(exc, OSError) and exc.strerror:
        # OSError's str() names the file; its strerror says what went wrong without it.
        return f"{type(exc).__name__}: {exc.strerror}"
    message = _ABSOLUTE_PATH.sub("<path>", str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
