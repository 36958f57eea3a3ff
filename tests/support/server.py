"""Run ``genkeep serve`` as a real subprocess on loopback, for e2e tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def genkeep_command() -> list[str]:
    return [sys.executable, "-m", "genkeep.cli"]


def pid_of(holder: str) -> int:
    """The pid in a lease holder's name (``host:pid:random-id``)."""
    return int(holder.split(":")[1])


def run_cli(
    args: list[str],
    env: dict[str, str],
    timeout: float = 120,
    *,
    cwd: Path | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``genkeep ARGS`` in ``cwd`` (e.g. a folder outside the checkout, as a user runs it)."""
    return subprocess.run(
        [*(prefix or []), *genkeep_command(), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


class Server:
    """A ``genkeep serve`` process; its log is kept in ``log_path``."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int = 1,
        port: int | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.prefix = prefix or []  # e.g. faketime, to run the server on a skewed clock
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *self.prefix,
                *genkeep_command(),
                *("serve", "--port", str(self.port), "--workers", str(self.workers)),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                ready = httpx.get(self.url + "/readyz", timeout=1).status_code == 200
                if ready and (self.workers == 1 or self._all_workers_up()):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready in {timeout}s:\n{self.log()}")

    def _all_workers_up(self) -> bool:
        return len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the supervisor), or the server itself."""
        assert self.process is not None
        if self.workers == 1:
            return [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        # multiprocessing's resource tracker is a child too; workers are the uvicorn ones
        return [p for p in pids if b"resource_tracker" not in _cmdline(p)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class WorkerProcess:
    """A ``genkeep worker`` process; its log is kept in ``log_path``."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        concurrency: int = 4,
        prefix: list[str] | None = None,
    ) -> None:
        self.prefix = prefix or []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    *genkeep_command(),
                    "worker",
                    "--concurrency",
                    str(self.concurrency),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # A group of its own: a prefix (faketime) runs the worker as its child, and
                # stopping only the wrapper left that child running after the test.
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)
                os.killpg(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                self.process.wait(timeout=5)
        # Whatever of the group outlived its leader (a wrapper's child) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
