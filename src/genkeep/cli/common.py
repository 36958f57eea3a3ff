"""What every ``genkeep`` command shares: consoles, settings, and one-line errors.

A command fails with one line on stderr and an exit code != 0, never a traceback: a
GenkeepError says what to do; anything unexpected is named in one line, and
``genkeep --debug`` (or GENKEEP_LOG_LEVEL=debug) shows its traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own click

from genkeep.config import Settings, columns_set, load_settings
from genkeep.errors import GenkeepError

if TYPE_CHECKING:
    from genkeep.db.database import Database

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


class _Loaded:
    """The database URL of the settings in use, named by a database error."""

    database_url: str | None = None


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
        return run_raw(main)
    except GenkeepError as exc:
        raise fail(exc.detail) from None


def run_raw(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on genkeep's event loop; its errors propagate as they are."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


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
    _Loaded.database_url = loaded.database_url
    _note_legacy_database(loaded)
    return loaded


def open_database(settings: Settings) -> Database:
    """The settings' database, its data folder made first if the database lives there."""
    from genkeep.services import open_database as open_with

    return open_with(settings)


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
        said = database_failure(exc, _Loaded.database_url) or describe(exc)
        raise SystemExit(
            _exit(fail(f"{said} (`genkeep --debug ...` shows the traceback)"))
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


def database_failure(exc: BaseException, url: str | None) -> str | None:
    """What went wrong with the database at ``url``, in words of the database and its
    host, not SQLAlchemy's; None if ``exc`` is not a database error."""
    chain = list(_causes(exc))
    from sqlalchemy.exc import SQLAlchemyError

    raised_by_database = any(
        isinstance(e, SQLAlchemyError) or isinstance(getattr(e, "sqlstate", None), str)
        for e in chain
    ) or any(isinstance(e, OSError) and _through_database(e) for e in chain)
    if not raised_by_database:
        return None
    # The innermost error is the driver's or the network's own; SQLAlchemy's wrappers add
    # their class names, the SQL, and a link.
    reason = next(
        (_reason(e) for e in reversed(chain) if not type(e).__module__.startswith("sqlalchemy")),
        "no connection came free in time" if _pool_timeout(chain) else "database error",
    )
    return f"cannot use the {_named(url)}: {reason}"


def _pool_timeout(chain: list[BaseException]) -> bool:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return any(isinstance(e, PoolTimeout) for e in chain)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for follow in (getattr(current, "orig", None), current.__cause__):
            if isinstance(follow, BaseException):
                pending.append(follow)


def _through_database(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while the database layer was connecting or querying."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("sqlalchemy.", "genkeep.db.")):
            return True
        tb = tb.tb_next
    return False


def _reason(exc: BaseException) -> str:
    # Several addresses of one host name refused: one OSError listing them all.
    refused = f"[Errno {errno.ECONNREFUSED}]"
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and refused in str(exc)
    ):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return one_line(str(exc))[:300] or type(exc).__name__


def _named(url: str | None) -> str:
    """The database and where it is: "database "x" on host:port", or its file."""
    if not url:
        return "database"
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # the settings' own check names a malformed URL
        return "database"
    host = parsed.host or parsed.query.get("host")
    if isinstance(host, tuple):
        host = ",".join(host)
    if not host:
        return f"database {parsed.database or url}"
    where = f"{host}:{parsed.port}" if parsed.port else f"{host} (default port)"
    return f'database "{parsed.database or ""}" on {where}'
