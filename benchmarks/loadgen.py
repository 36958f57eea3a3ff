"""Closed-loop HTTP load from outside the server processes: ``wrk`` if installed, else Python.

Both drivers keep ``connections`` keep-alive connections busy for ``seconds``, send the given
JSON bodies picked at random per request, and count every answer that is not a 200
containing ``marker``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

WRK_LINE = "GENKEEP_BENCH "
WRK_SAMPLE = "GENKEEP_BENCH_SAMPLE "


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One round against one target."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int
    socket_errors: int
    bad_sample: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class ClientReport:
    """What one Python load-generator process measured."""

    latencies: list[float]
    seconds: float
    bad: int
    socket_errors: int
    sample: str


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


# -- raw HTTP/1.1 over asyncio streams: cheap enough to leave the CPU to the servers ----------


def post_request(url: str, path: str, body: str) -> bytes:
    raw = body.encode()
    host = urlsplit(url).netloc
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


def get_request(url: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n\r\n".encode()


async def open_connection(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one Content-Length framed response (uvicorn frames JSON so)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    end = lowered.index(b"\r\n", at + 2)
    length = int(lowered[at + len(b"\r\ncontent-length:") : end])
    return status, await reader.readexactly(length)


async def _drive(
    url: str, requests: list[bytes], marker: bytes, connections: int, seconds: float
) -> ClientReport:
    latencies: list[float] = []
    bad = socket_errors = 0
    sample = ""
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal bad, socket_errors, sample
        reader, writer = await open_connection(url)
        try:
            while time.perf_counter() < stop_at:
                payload = random.choice(requests)
                started = time.perf_counter()
                writer.write(payload)
                status, body = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != 200 or marker not in body:
                    bad += 1
                    sample = sample or f"{status} {body[:200]!r}"
        except (OSError, asyncio.IncompleteReadError):
            socket_errors += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return ClientReport(latencies, time.perf_counter() - began, bad, socket_errors, sample)


def client_process(
    url: str, path: str, bodies: list[str], marker: str, connections: int, seconds: float
) -> ClientReport:
    """Entry point of one load-generator process (picklable for a process pool)."""
    requests = [post_request(url, path, body) for body in bodies]
    try:
        import uvloop

        return uvloop.run(_drive(url, requests, marker.encode(), connections, seconds))
    except ImportError:
        return asyncio.run(_drive(url, requests, marker.encode(), connections, seconds))


def run_python(
    pool: Executor,
    processes: int,
    url: str,
    path: str,
    bodies: list[str],
    marker: str,
    connections: int,
    seconds: float,
) -> LoadResult:
    """Split ``connections`` over ``processes`` client processes and merge their reports."""
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    futures = [
        pool.submit(client_process, url, path, bodies, marker, share, seconds)
        for share in shares
        if share
    ]
    reports = [future.result() for future in futures]
    latencies = [latency for report in reports for latency in report.latencies]
    return LoadResult(
        requests=len(latencies),
        seconds=max(report.seconds for report in reports),
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        bad=sum(report.bad for report in reports),
        socket_errors=sum(report.socket_errors for report in reports),
        bad_sample=next((report.sample for report in reports if report.sample), ""),
    )


def _percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


# -- wrk -----------------------------------------------------------------------------------

_WRK_SCRIPT = """
local bodies = {%(bodies)s}
local marker = %(marker)s
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- Each thread its own seed: bodies are picked at random per request, so concurrent
  -- requests for one prompt are as rare as chance makes them.
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
  prepared = {}
  for i, body in ipairs(bodies) do
    prepared[i] = wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, body)
  end
  sent, bad, sample = 0, 0, ""
end

function request()
  sent = sent + 1
  return prepared[math.random(#prepared)]
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, marker, 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local total_bad, first = 0, ""
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
    if first == "" then first = thread:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    "%(line)s{\\"requests\\":%%d,\\"duration_us\\":%%d,\\"p50_us\\":%%d,\\"p99_us\\":%%d," ..
    "\\"bad\\":%%d,\\"socket_errors\\":%%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total_bad, e.connect + e.read + e.write + e.timeout))
  io.write("%(sample)s" .. first:gsub("\\n", " ") .. "\\n")
end
"""


def _lua_string(text: str) -> str:
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def run_wrk(
    url: str,
    path: str,
    bodies: list[str],
    marker: str,
    connections: int,
    seconds: float,
    threads: int = 1,
) -> LoadResult:
    script = _WRK_SCRIPT % {
        "bodies": ", ".join(_lua_string(body) for body in bodies),
        "marker": _lua_string(marker),
        "path": path,
        "line": WRK_LINE,
        "sample": WRK_SAMPLE,
    }
    with tempfile.TemporaryDirectory(prefix="genkeep-wrk-") as tmp:
        script_path = Path(tmp) / "generate.lua"
        script_path.write_text(script)
        command = [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script_path),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    lines = done.stdout.splitlines()
    summary = next((line for line in lines if line.startswith(WRK_LINE)), None)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(summary[len(WRK_LINE) :])
    sample = next((line for line in lines if line.startswith(WRK_SAMPLE)), WRK_SAMPLE)
    return LoadResult(
        requests=int(figures["requests"]),
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        bad=int(figures["bad"]),
        socket_errors=int(figures["socket_errors"]),
        bad_sample=sample[len(WRK_SAMPLE) :].strip(),
    )
