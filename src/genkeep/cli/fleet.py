"""The fleet from the shell: ``extract --workers N`` starts N-1 helper processes
(``genkeep runs work RUN``) beside itself, and ``runs show`` tells each worker's share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from genkeep.cli.common import run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.core import identity

if TYPE_CHECKING:
    from genkeep.db.run_batches import WorkerShare

WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="N",
        help="Worker processes for this run: this one and N-1 helpers, each extracting "
        "GENKEEP_EXTRACT_CONCURRENCY batches at once.",
    ),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="N",
        help="Batches of this run in flight at once across all workers "
        "[default: GENKEEP_EXTRACT_RUN_CONCURRENCY].",
    ),
]


@contextlib.contextmanager
def helpers(run_id: str, count: int, grace_s: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` helper processes working ``run_id``'s batches while the block runs; they
    end when the run does (stopped with SIGTERM if still there ``grace_s`` later)."""
    command = [sys.executable, "-m", "genkeep.cli", "runs", "work", run_id]
    started = [subprocess.Popen(command, stdin=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield started
    finally:
        for process in started:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait()


def work(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    slots: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Batches at once [GENKEEP_EXTRACT_CONCURRENCY]."),
    ] = None,
) -> None:
    """Extract batches of one run beside the process executing it, until the run ends."""
    settings = load_cli_settings()

    async def main() -> int:
        from genkeep.services import close_services, open_services

        services = await open_services(settings)
        try:
            fleet = services.extraction.fleet_worker(
                slots=slots or settings.extract_concurrency, run_id=run_id
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)  # at the next batch boundary
            orphaned = asyncio.create_task(_when_orphaned(stop))
            try:
                await fleet.run(stop)
            finally:
                orphaned.cancel()
        finally:
            await close_services(services)
        return 0

    raise typer.Exit(run(main()))


async def _when_orphaned(stop: asyncio.Event) -> None:
    """Stop once the process that started this helper is gone (killed outright)."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:  # reparented: no signal says so
            stop.set()
            return


def shares_table(shares: Sequence[WorkerShare]) -> Table | None:
    """Batches per worker and their throughput; None for a run no fleet worker took."""
    if not any(share.holder for share in shares):
        return None
    table = Table("worker", "batches", "batches/s")
    for share in shares:
        table.add_row(identity.label(share.holder) or "-", str(share.batches), _rate(share))
    total = sum(share.batches for share in shares)
    starts = [s.first_claimed for s in shares if s.first_claimed is not None]
    ends = [s.last_done for s in shares if s.last_done is not None]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    table.add_row("all", str(total), f"{total / span:.2f}" if span > 0 else "-")
    return table


def _rate(share: WorkerShare) -> str:
    if share.first_claimed is None or share.last_done is None:
        return "-"
    span = (share.last_done - share.first_claimed).total_seconds()
    return f"{share.batches / span:.2f}" if span > 0 else "-"
