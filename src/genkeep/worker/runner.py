"""The worker: claims tasks, runs handlers under a heartbeat, retries with backoff.

A handler runs as its own asyncio task next to a heartbeat that renews the lease every
third of it. If the heartbeat finds the lease taken over, the handler is cancelled and
nothing it produced is committed (every write is fenced by the lease token). On shutdown
the worker stops claiming, gives running tasks a grace period, then releases the rest.
Beside its tasks, a worker extracts batches of other processes' runs (extract/fleet.py,
GENKEEP_EXTRACT_FLEET_SLOTS at once), so one long run spreads over the whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from genkeep.core import identity
from genkeep.core.redact import client_message
from genkeep.db.models import Task
from genkeep.db.tasks import Lease
from genkeep.errors import GenkeepError, LeaseLost, TaskCancelled
from genkeep.services import Services
from genkeep.telemetry import tracing
from genkeep.telemetry.messaging import claim_span, consumer_span
from genkeep.worker.completer import Completer
from genkeep.worker.context import TaskContext, TaskOutput
from genkeep.worker.registry import Handler, load_handlers

log = logging.getLogger(__name__)


def default_worker_id() -> str:
    return identity.process_id()


class Worker:
    def __init__(
        self,
        services: Services,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        housekeeping: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.services = services
        # The periodic sweep (ops.sweep.sweep_if_due, given by the composition root: ops
        # sits above the worker); it decides in the database whether it is this process's turn.
        self.housekeeping = housekeeping
        self._housekeeping_task: asyncio.Task[object] | None = None
        self.settings = services.settings
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency or self.settings.worker_concurrency
        self.lease_s = self.settings.task_lease_s
        self._running: dict[str, asyncio.Task[None]] = {}
        # Slots held by handlers, and slots reserved by a claim in flight. A task whose
        # handler returned frees its slot while its completion is committed; the completer
        # claims into it in the same statement (see worker/completer.py).
        self._busy: set[str] = set()
        self._reserved = 0
        self._leases: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._stopping = asyncio.Event()
        self._completer = Completer(services.tasks, refill=self)
        self._handlers: dict[str, Handler] = load_handlers(self.settings.task_modules)

    def stop(self) -> None:
        """Stop claiming; ``run`` then drains and returns."""
        self._stopping.set()
        self.services.wakeups.notify_local()

    async def run(self) -> None:
        await self.services.wakeups.start()
        loop = asyncio.get_running_loop()
        next_reap = loop.time()
        # Not at start-up: a fleet restarting together would all ask at once, for nothing.
        next_sweep = loop.time() + self._sweep_check_s()
        fleet: asyncio.Task[None] | None = None
        if self.services.extraction.setup.fleet_slots:
            fleet = asyncio.create_task(
                self.services.extraction.fleet_worker().run(self._stopping), name="fleet"
            )
        try:
            while not self._stopping.is_set():
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_check_s()
                    self._start_housekeeping()
                if loop.time() >= next_reap:
                    # Any worker may requeue tasks whose worker died; the UPDATE is atomic.
                    next_reap = loop.time() + self.settings.task_lease_s / 3
                    try:
                        await self.services.tasks.reap_expired()
                    except Exception:
                        log.exception("reaping expired leases failed; retrying")
                free = self.reserve()
                claimed = []
                claim_started = time.time_ns()
                try:
                    if free > 0:
                        claimed = await self.services.tasks.claim(
                            self.worker_id, self.lease_s, free
                        )
                except Exception:
                    log.exception("claiming tasks failed; retrying")
                finally:
                    self.hand_over(claimed, free, (claim_started, time.time_ns()))
                # Wait even after a partial claim: it emptied the queue for now. Wake-ups are
                # sticky (a new task or a freed slot during the claim ends this wait at once),
                # so claiming again straight away would only be an empty round trip.
                wait = min(self.settings.task_poll_s, max(next_reap - loop.time(), 0.01))
                await self.services.wakeups.wait(wait)
        finally:
            if self._housekeeping_task is not None:
                self._housekeeping_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._housekeeping_task
            await self._drain()
            if fleet is not None:
                await self._stop_fleet(fleet)

    async def _stop_fleet(self, fleet: asyncio.Task[None]) -> None:
        """No more claims; batches in flight finish within the grace period, or are given
        back (released) when it is over."""
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(fleet), self.settings.worker_shutdown_grace_s)
        except TimeoutError:
            await _cancelled(fleet)
        except asyncio.CancelledError:
            await _cancelled(fleet)
            raise

    def _sweep_check_s(self) -> float:
        """How often to ask whether a sweep is due: a tenth of the period, at most a minute."""
        return min(max(self.settings.sweep_interval_s / 10, 0.05), 60.0)

    def _start_housekeeping(self) -> None:
        if self.housekeeping is None or self.settings.sweep_interval_s <= 0:
            return
        if self._housekeeping_task is not None and not self._housekeeping_task.done():
            return  # the last sweep is still running

        async def sweep() -> object:
            assert self.housekeeping is not None
            try:
                return await self.housekeeping()
            except Exception:
                log.exception("the periodic sweep failed; the next period tries again")
                return None

        self._housekeeping_task = asyncio.create_task(sweep(), name="housekeeping")

    def reserve(self) -> int:
        """Reserve every free slot for a claim; how many (none once stopping)."""
        if self._stopping.is_set():
            return 0
        free = max(self.concurrency - len(self._busy) - self._reserved, 0)
        self._reserved += free
        return free

    def hand_over(
        self,
        claimed: list[tuple[Task, Lease]],
        reserved: int,
        claim_window: tuple[int, int] | None = None,
    ) -> None:
        """Start the tasks a claim into ``reserved`` slots returned (between the two times
        of ``claim_window``, in ns, when known: each task's trace shows its claim)."""
        self._reserved -= reserved
        for task, lease in claimed:
            self._start(task, lease, claim_window)

    def _start(self, task: Task, lease: Lease, claim_window: tuple[int, int] | None) -> None:
        self._leases[task.id] = lease
        self._busy.add(task.id)
        runner = asyncio.create_task(
            self._traced_run(task, lease, claim_window), name=f"task:{task.id}"
        )
        self._running[task.id] = runner

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(task.id, None)
            self._leases.pop(task.id, None)
            self._lost.discard(task.id)
            self._free_slot(task.id)

        runner.add_done_callback(done)

    def _free_slot(self, task_id: str, *, wake: bool = True) -> None:
        if task_id in self._busy:
            self._busy.discard(task_id)
            if wake:  # the claim loop fills it; else the completer's statement does
                self.services.wakeups.notify_local()

    async def _drain(self) -> None:
        if self._running:
            log.info(
                "waiting up to %ss for %d running tasks",
                self.settings.worker_shutdown_grace_s,
                len(self._running),
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.worker_shutdown_grace_s
        # Looped: a completion in flight when the worker stopped may still hand over the
        # tasks its statement claimed; they are drained (or released) like the others.
        while self._running:
            _, pending = await asyncio.wait(
                list(self._running.values()), timeout=max(deadline - loop.time(), 0)
            )
            for runner in pending:
                runner.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _traced_run(
        self, task: Task, lease: Lease, claim_window: tuple[int, int] | None
    ) -> None:
        """``_run`` under the attempt's CONSUMER span, whose context is stored with the task
        first: the attempt that takes over after a crash links to it."""
        with consumer_span(
            task.kind,
            task.id,
            submitted=task.trace_context,
            previous_attempt=task.attempt_context,
            attempt=task.attempts,
            start_time=claim_window[0] if claim_window else None,
            worker_id=self.worker_id,
        ) as span:
            if span is None:
                await self._run(task, lease)
                return
            if claim_window is not None:
                claim_span(*claim_window, self.worker_id)
            await self._quietly(self.services.tasks.record_attempt(lease, tracing.carrier()))
            await self._run(task, lease)

    async def _run(self, task: Task, lease: Lease) -> None:
        tasks = self.services.tasks
        handler = self._handlers.get(task.kind)
        context = TaskContext(task=task, lease=lease, tasks=tasks, services=self.services)
        try:
            if handler is None:
                await tasks.fail(lease, f"no handler for task kind {task.kind!r}", None)
                return
            # Both stamps are the database's clock (submit and claim), so skew cannot shift it.
            remaining = (
                (task.timeout_at - task.started_at).total_seconds()
                if task.timeout_at and task.started_at
                else None
            )
            if remaining is not None and remaining <= 0:
                await tasks.fail(lease, "timed out before it could run", None)
                return
            work = asyncio.create_task(self._handle(handler, context, remaining))
            heartbeat = asyncio.create_task(self._heartbeat(context, work))
            try:
                output = await work
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if output.artifacts:
                await tasks.complete(lease, output.result, output.artifacts)
            else:
                self._free_slot(task.id, wake=False)
                await self._completer.complete(lease, output.result)
        except TaskCancelled:
            await self._quietly(tasks.mark_cancelled(lease))
        except LeaseLost:
            log.warning("task %s: lease taken over; its output is discarded", task.id)
        except asyncio.CancelledError:
            if task.id in self._lost:
                log.warning("task %s: lease taken over mid-run; stopped", task.id)
                return
            # Shutting down: give the task back so nothing stays running.
            await self._quietly(tasks.release(lease))
            raise
        except TimeoutError:
            await self._quietly(tasks.fail(lease, "timed out", None))
        except GenkeepError as exc:
            # Deterministic errors (bad payload, missing data, closed gate) won't improve.
            retry_in = self._retry_in(task) if exc.retryable else None
            await self._quietly(tasks.fail(lease, exc.detail, retry_in))
        except ValidationError as exc:
            await self._quietly(tasks.fail(lease, str(exc), None))
        except Exception as exc:
            log.exception("task %s attempt %d failed", task.id, task.attempts)
            await self._quietly(tasks.fail(lease, client_message(exc), self._retry_in(task)))

    async def _handle(
        self,
        handler: object,
        context: TaskContext,
        remaining: float | None,
    ) -> TaskOutput:
        assert callable(handler)
        async with asyncio.timeout(remaining):
            output: TaskOutput = await handler(context)
            return output

    async def _heartbeat(self, context: TaskContext, work: asyncio.Task[TaskOutput]) -> None:
        interval = self.settings.task_lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.services.tasks.heartbeat(context.lease, self.settings.task_lease_s):
                    context.cancel_requested = True
            except LeaseLost:
                self._lost.add(context.task.id)
                work.cancel()
                return
            except Exception:
                log.exception("heartbeat for task %s failed; retrying", context.task.id)

    def _retry_in(self, task: Task) -> float | None:
        """Seconds until the next attempt (exponential backoff), or None after the last."""
        if task.attempts >= task.max_attempts:
            return None
        return float(
            min(
                self.settings.task_backoff_base_s * 2 ** (task.attempts - 1),
                self.settings.task_backoff_max_s,
            )
        )

    @staticmethod
    async def _quietly(write: object) -> None:
        try:
            await write  # type: ignore[misc]
        except LeaseLost:
            log.warning("a write was fenced out: the lease had been taken over")
        except Exception:
            log.exception("could not record a task's outcome; its lease will expire")


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
