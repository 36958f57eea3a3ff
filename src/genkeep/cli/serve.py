"""``genkeep serve`` and ``genkeep worker``: the long-running processes."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
from pathlib import Path
from typing import Annotated

import typer

from genkeep.cli.common import errors, open_database, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, examples
from genkeep.config import Settings, hand_to_server_processes, set_prometheus_multiproc_dir


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default GENKEEP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default GENKEEP_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs)."""
    # The app factory reads its settings again in each server process: the flags go with it.
    if host:
        hand_to_server_processes(host=host)
    if port:
        hand_to_server_processes(port=port)
    settings = load_cli_settings()
    metrics_dir = own_metrics_dir(settings.data_dir / "metrics")
    # Every server process writes its counters here so /metrics adds them up. Set before
    # the start-up check imports the metrics: prometheus_client picks its storage then.
    set_prometheus_multiproc_dir(str(metrics_dir.resolve()))
    run(_check_startable(settings))
    import uvicorn

    uvicorn.run(
        "genkeep.api.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
        # httptools with the header cap and read timeouts (genkeep.api.edge).
        http="genkeep.api.edge:EdgeProtocol",
    )


def own_metrics_dir(root: Path) -> Path:
    """A fresh metrics folder for this ``serve`` under ``root``, one per host and process:
    other ``serve`` processes on the same data folder keep theirs (each /metrics adds up
    its own processes); the folders of this host's exited ones are removed."""
    host = socket.gethostname()
    root.mkdir(parents=True, exist_ok=True)
    for found in root.glob(f"{glob.escape(host)}-*"):
        pid = found.name.removeprefix(f"{host}-")
        if found.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True)
    own = root / f"{host}-{os.getpid()}"
    # A folder of this name is a dead process's that had this pid (a container restarted).
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir()
    return own


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


async def _check_startable(settings: Settings) -> None:
    from genkeep.db.migrate import prepare_schema
    from genkeep.services import check_durable

    check_durable(settings)
    database = open_database(settings)
    try:
        await prepare_schema(database)
    finally:
        await database.dispose()


def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Tasks run at once.")] = None,
) -> None:
    """Run tasks until SIGTERM/SIGINT; then finish or release the tasks held, and exit."""
    import signal

    from genkeep.ops.sweep import sweep_if_due
    from genkeep.services import close_services, open_services
    from genkeep.worker.runner import Worker

    settings = load_cli_settings()

    async def main() -> None:
        services = await open_services(settings)
        runner = Worker(
            services, concurrency=concurrency, housekeeping=lambda: sweep_if_due(services)
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        errors.print(
            f"[dim]worker {runner.worker_id} on {services.database.describe()}, "
            f"concurrency {runner.concurrency}[/]"
        )
        try:
            await runner.run()
        finally:
            await close_services(services)

    run(main())


def register(app: typer.Typer) -> None:
    app.command(
        cls=Command,
        epilog=examples("genkeep serve --port 8000", "genkeep serve --host 0.0.0.0 --workers 4"),
    )(serve)
    app.command(
        cls=Command,
        epilog=examples("genkeep worker --concurrency 8"),
    )(worker)
