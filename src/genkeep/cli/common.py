"""What every ``genkeep`` command shares: consoles, settings, and one-line errors.

A command fails with one line on stderr and an exit code != 0, never a traceback: a
GenkeepError says what to do; anything unexpected is named in one line, and
``genkeep --debug`` (or GENKEEP_LOG_LEVEL=debug) shows its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own click

from genkeep.config import Settings, columns_set, load_settings
from genkeep.errors import GenkeepError

# Piped output is read by scripts: a wide console keeps tables from cutting ids short.
console = Console(width=None if sys.stdout.isatty() or columns_set() else 200)
errors = Console(stderr=True, soft_wrap=True)  # one message, one line: greppable
T = TypeVar("T")

# The per-folder database of genkeep before the data folder moved to one place per user.
LEGACY_DATABASE = Path("var") / "genkeep.db"
LEGACY_NOTED = "legacy-databases-noted"


class _Debug:
    """Whether unexpected errors show their traceback (``--debug``, GENKEEP_LOG_LEVEL=debug)."""

    enabled = False


def set_debug(enabled: bool) -> None:
    _Debug.enabled = _Debug.enabled or enabled


def one_line(message: str) -> str:
    return " ".join(message.split())


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line; raise the returned Exit."""
    errors.print(f"[bold red]error:[/] {one_line(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def note(message: str) -> None:
    errors.print(f"[dim]{one_line(message)}[/]", highlight=False)


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
        loaded = load_settings()
    except Exception as exc:  # pydantic's ValidationError lists every bad variable
        raise fail(f"invalid settings: {exc}") from None
    set_debug(loaded.log_level.lower() == "debug")
    _note_legacy_database(loaded)
    return loaded


def _note_legacy_database(settings: Settings) -> None:
    """Tell once about a ./var/genkeep.db of an older genkeep rather than silently using a
    second database beside it (its runs would seem lost)."""
    if not settings.database_is_default or not LEGACY_DATABASE.is_file():
        return
    legacy = LEGACY_DATABASE.resolve()
    noted = settings.data_dir / LEGACY_NOTED
    try:
        if str(legacy) in noted.read_text().splitlines():
            return
    except OSError:
        pass
    note(
        f"note: {legacy} is the per-folder database of an older genkeep and is not used; "
        f"genkeep keeps its data in {settings.data_dir} now. To go on with the old one, "
        f"set GENKEEP_DATA_DIR={legacy.parent}. (Shown once.)"
    )
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with noted.open("a") as seen:
            seen.write(f"{legacy}\n")
    except OSError:
        pass  # the note shows again next time; nothing else depends on it


def show_notices() -> None:
    """Print genkeep's one-time notes (a database created or migrated) as plain lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    notices = logging.getLogger("genkeep.notice")
    notices.addHandler(handler)
    notices.setLevel(logging.INFO)
    notices.propagate = False


def main(app: typer.Typer) -> None:
    """Run the CLI; every failure ends as one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="genkeep", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        raise SystemExit(_exit(fail(exc.format_message() + where, exc.exit_code))) from None
    except typer.TyperException as exc:
        raise SystemExit(_exit(fail(exc.format_message(), exc.exit_code))) from None
    except (typer.Abort, KeyboardInterrupt):
        raise SystemExit(130) from None
    except GenkeepError as exc:
        raise SystemExit(_exit(fail(exc.detail))) from None
    except Exception as exc:
        if _Debug.enabled:
            raise
        raise SystemExit(
            _exit(fail(f"{describe(exc)} (`genkeep --debug ...` shows the traceback)"))
        ) from None
    raise SystemExit(code if isinstance(code, int) else 0)


def _exit(exit: typer.Exit) -> int:
    return int(exit.exit_code)


def describe(exc: BaseException) -> str:
    """An unexpected error in a few words: what failed and on what."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
