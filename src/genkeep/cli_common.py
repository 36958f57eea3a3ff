"""What every ``genkeep`` command shares: consoles, settings, and one-line errors."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from genkeep.config import Settings, load_settings
from genkeep.errors import GenkeepError

# Piped output is read by scripts: a wide console keeps tables from cutting ids short.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
errors = Console(stderr=True, soft_wrap=True)  # one message, one line: greppable
T = TypeVar("T")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; raise the returned Exit."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning genkeep errors into one line and a non-zero exit."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main)
    except GenkeepError as exc:
        raise fail(exc.detail) from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop (as uvicorn uses for `serve`) halves the event loop's share of a worker's CPU.
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): the standard loop
        return None
    return uvloop.new_event_loop


def settings() -> Settings:
    try:
        return load_settings()
    except Exception as exc:  # pydantic's ValidationError lists every bad variable
        raise fail(f"invalid settings: {exc}".replace("\n", " ")) from None
