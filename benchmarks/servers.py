"""The two servers under test, both real subprocesses on loopback with the same env."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import Server

ROOT = Path(__file__).resolve().parent.parent


def server_env(
    database_url: str, data_dir: Path, log_level: str, latency_ms: int
) -> dict[str, str]:
    return {
        "GENKEEP_DATABASE_URL": database_url,
        "GENKEEP_DATA_DIR": str(data_dir),
        "GENKEEP_LOG_LEVEL": log_level,
        "GENKEEP_BUILTIN_LATENCY_MS": str(latency_ms),
    }


class BareServer(Server):
    """``uvicorn benchmarks.bare_app:create_app`` with the worker count genkeep gets."""

    def start(self, timeout: float = 60) -> BareServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_level = self.env.get("GENKEEP_LOG_LEVEL", "info")
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.bare_app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--log-level",
            log_level,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.env, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bare app exited with {self.process.returncode}:\n{self.log()}")
            try:
                ready = httpx.get(self.url + "/readyz", timeout=1).status_code == 200
                if ready and len(self.worker_pids()) >= self.workers:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bare app did not become ready in {timeout}s:\n{self.log()}")


def process_cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes (all their threads) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def generator_calls(url: str) -> float:
    """``genkeep_generator_calls_total`` summed over outcomes and server processes."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "genkeep_generator_calls_total"
    )
