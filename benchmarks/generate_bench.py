"""Benchmark ``POST /v1/generate``: cache-hit throughput beside a bare FastAPI read, and coalescing.

    .venv/bin/python benchmarks/generate_bench.py [--backend sqlite|postgresql|both]
        [--seconds N] [--rounds R] [--concurrency C] [--workers W] [--json OUT]

Each backend gets a throwaway, migrated database. genkeep and the bare app (benchmarks/bare_app.py)
serve it side by side with the same worker count while a separate load-generator process
(wrk, else Python) drives them in alternating rounds; medians are reported. Then a fresh
genkeep with a 300 ms generator times one new prompt against a burst of identical ones.
A chat-completions hit (``POST /v1/chat/completions``), a chat hit with tools and an
embeddings hit (``POST /v1/embeddings``, one input) are measured on the same genkeep server in
the same alternating rounds, and each compared with the ``/v1/generate`` hit.
With ``--tracing`` a second genkeep server, tracing on (every request sampled, exported over
OTLP/HTTP to a sink that discards), is driven in the same rounds: its server CPU per hit over
the untraced one's is the cost of tracing (goal <= 1.15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.coalescing import CoalescingResult, measure_coalescing
from benchmarks.databases import throwaway_database
from benchmarks.loadgen import LoadResult, run_python, run_wrk, wrk_available
from benchmarks.otlp_sink import OtlpSink
from benchmarks.profiles import Profile, py_spy_available, start_recording, summarize
from benchmarks.servers import (
    ROOT,
    BareServer,
    generator_calls,
    process_cpu_seconds,
    server_env,
)
from tests.support.server import Server

BACKENDS = ("sqlite", "postgresql")
# Two cores: one server process for SQLite (one writer anyway), two for PostgreSQL.
DEFAULT_WORKERS = {"sqlite": 1, "postgresql": 2}
PATH = "/v1/generate"
CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MARKERS = {
    "genkeep": '"cached":true',
    "bare": '"content":"',
    "chat": '"object":"chat.completion"',
    "traced": '"cached":true',
    "chat_tools": '"object":"chat.completion"',
    "embeddings": '"cached":true',
}
# A chat hit may cost at most this much server CPU per request over a /v1/generate hit.
GOAL_CHAT_COST = 1.2
# The other hits measured beside /v1/generate's, each with its goal (server CPU per request).
GOALS = {"chat": GOAL_CHAT_COST, "chat_tools": 1.3, "embeddings": 1.2}
# A hit with tracing on may cost at most this much server CPU per request over one without.
GOAL_TRACING_COST = 1.15
GOAL_RATIO = 0.8
GOAL_COALESCING = 1.3
COALESCING_LATENCY_MS = 300
WARM_UP_SECONDS = 2

# Wide enough for the tables when the output is a file or a pipe (Rich assumes 80 there).
console = Console(width=max(Console().width, 120))


@dataclass(frozen=True, slots=True)
class Options:
    backends: tuple[str, ...]
    seconds: float
    rounds: int
    concurrency: int
    workers: int | None
    prompts: int
    burst: int
    loadgen: str
    client_processes: int
    wrk_threads: int
    log_level: str
    json_path: Path
    profile_dir: Path | None
    tracing: bool = False

    @property
    def round_seconds(self) -> float:
        return max(1.0, round(self.seconds / self.rounds))


@dataclass(frozen=True, slots=True)
class Round:
    """One round's load figures and the CPU its server processes used meanwhile."""

    load: LoadResult
    server_cpu_s: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_s * 1e6 / self.load.requests if self.load.requests else 0.0


@dataclass
class TargetRun:
    """Every measured round of one target on one backend."""

    rounds: list[Round] = field(default_factory=list)

    def median(self, figure: Callable[[Round], float]) -> float:
        return statistics.median(figure(r) for r in self.rounds)

    @property
    def rps(self) -> float:
        return self.median(lambda r: r.load.rps)

    @property
    def cpu_us_per_request(self) -> float:
        return self.median(lambda r: r.cpu_us_per_request)

    def summary(self) -> dict[str, Any]:
        return {
            "rps": self.rps,
            "p50_ms": self.median(lambda r: r.load.p50_ms),
            "p99_ms": self.median(lambda r: r.load.p99_ms),
            "server_cpu_us_per_request": self.cpu_us_per_request,
            "rounds": [
                {**asdict(r.load), "rps": r.load.rps, "server_cpu_s": r.server_cpu_s}
                for r in self.rounds
            ],
        }


@dataclass
class BackendRun:
    backend: str
    workers: int
    targets: dict[str, TargetRun]
    coalescing: CoalescingResult
    errors: list[str]
    profiles: dict[str, Profile] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Median over rounds of genkeep/bare req/s, each pair measured back to back."""
        pairs = zip(self.targets["genkeep"].rounds, self.targets["bare"].rounds, strict=True)
        return statistics.median(g.load.rps / b.load.rps for g, b in pairs if b.load.rps)

    @property
    def ratio_of_medians(self) -> float:
        return self.targets["genkeep"].rps / self.targets["bare"].rps

    @property
    def cpu_ratio(self) -> float:
        """bare's server CPU per request over genkeep's: the ratio with other load factored out."""
        genkeep = self.targets["genkeep"].cpu_us_per_request
        return self.targets["bare"].cpu_us_per_request / genkeep if genkeep else 0.0

    @property
    def chat_cost(self) -> float:
        """Median over rounds of a chat hit's server CPU per request over a generate hit's."""
        return self.cost("chat")

    def cost(self, name: str) -> float:
        """Median over rounds of ``name``'s server CPU per request over a generate hit's."""
        pairs = zip(self.targets[name].rounds, self.targets["genkeep"].rounds, strict=True)
        return statistics.median(
            c.cpu_us_per_request / g.cpu_us_per_request for c, g in pairs if g.cpu_us_per_request
        )

    @property
    def chat_rps_ratio(self) -> float:
        """Median over rounds of generate hits per second over chat hits per second."""
        pairs = zip(self.targets["chat"].rounds, self.targets["genkeep"].rounds, strict=True)
        return statistics.median(g.load.rps / c.load.rps for c, g in pairs if c.load.rps)

    @property
    def tracing_cost(self) -> float | None:
        """Median over rounds of a traced hit's server CPU per request over an untraced one's."""
        if "traced" not in self.targets:
            return None
        pairs = zip(self.targets["traced"].rounds, self.targets["genkeep"].rounds, strict=True)
        return statistics.median(
            t.cpu_us_per_request / g.cpu_us_per_request for t, g in pairs if g.cpu_us_per_request
        )

    def to_json(self) -> dict[str, Any]:
        cost = self.tracing_cost
        return {
            "tracing_cpu_cost_over_untraced": cost,
            "tracing_cost_goal_met": None if cost is None else cost <= GOAL_TRACING_COST,
            "workers": self.workers,
            "chat_cpu_cost_over_generate": self.chat_cost,
            "generate_rps_over_chat_rps": self.chat_rps_ratio,
            "chat_cost_goal_met": self.chat_cost <= GOAL_CHAT_COST,
            "cpu_cost_over_generate": {
                name: {"cost": self.cost(name), "goal": goal, "met": self.cost(name) <= goal}
                for name, goal in GOALS.items()
            },
            **{name: run.summary() for name, run in self.targets.items()},
            "ratio_genkeep_over_bare": self.ratio,
            "ratio_of_median_rps": self.ratio_of_medians,
            "ratio_goal_met": self.ratio >= GOAL_RATIO,
            "cpu_ratio_bare_over_genkeep": self.cpu_ratio,
            "coalescing": {
                **asdict(self.coalescing),
                "ratio": self.coalescing.ratio,
                "goal_met": self.coalescing.ratio <= GOAL_COALESCING
                and not self.coalescing.problems(),
            },
            "errors": self.errors,
            "profiles": {name: asdict(profile) for name, profile in self.profiles.items()},
        }


def prompt_bodies(count: int) -> list[str]:
    return [
        json.dumps({"prompt": f"Benchmark prompt {i:04d}: how does genkeep keep results durable?"})
        for i in range(count)
    ]


def chat_bodies(count: int) -> list[str]:
    """Chat requests as an application sends them: a system and a user message, one model."""
    return [
        json.dumps(
            {
                "model": "default",
                "messages": [
                    {"role": "system", "content": "You answer in short markdown."},
                    {"role": "user", "content": f"Benchmark chat {i:04d}: how are results kept?"},
                ],
                "temperature": 0.2,
            }
        )
        for i in range(count)
    ]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def tool_chat_bodies(count: int) -> list[str]:
    """The chats of ``chat_bodies`` as a tool-using application sends them: a tool declared."""
    bodies = []
    for body in chat_bodies(count):
        sent = json.loads(body)
        sent.update(tools=[WEATHER_TOOL], tool_choice="auto")
        bodies.append(json.dumps(sent))
    return bodies


def embedding_bodies(count: int) -> list[str]:
    """One text per request, as an application re-indexing its documents sends them."""
    return [
        json.dumps({"model": "default", "input": f"Benchmark document {i:04d} about durability"})
        for i in range(count)
    ]


def store_chats(url: str, bodies: list[str], path: str = CHAT_PATH) -> None:
    """Answer each chat (or embeddings request) once so the measured requests are all hits."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in bodies:
            answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
            if answer.status_code != 200 or answer.headers.get("x-genkeep-cached") == "true":
                raise RuntimeError(f"storing a chat failed: {answer.status_code} {answer.text}")


def store_prompts(url: str, bodies: list[str]) -> None:
    """Generate each prompt once so the measured requests are all cache hits."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for body in bodies:
            answer = client.post(PATH, content=body, headers={"Content-Type": "application/json"})
            if answer.status_code != 200 or not answer.json()["persisted"]:
                raise RuntimeError(f"storing a prompt failed: {answer.status_code} {answer.text}")


def drive(
    options: Options,
    pool: Executor | None,
    url: str,
    bodies: list[str],
    marker: str,
    secs: float,
    path: str = PATH,
) -> LoadResult:
    if pool is None:
        return run_wrk(url, path, bodies, marker, options.concurrency, secs, options.wrk_threads)
    return run_python(
        pool, options.client_processes, url, path, bodies, marker, options.concurrency, secs
    )


def bench_backend(backend: str, options: Options, pool: Executor | None) -> BackendRun:
    workers = options.workers or DEFAULT_WORKERS[backend]
    console.print(f"[bold]{backend}[/]: {workers} worker(s) per server", highlight=False)
    with (
        tempfile.TemporaryDirectory(prefix=f"genkeep-bench-{backend}-") as tmp,
        throwaway_database(backend, Path(tmp)) as database_url,
    ):
        work = Path(tmp)
        env = server_env(database_url, work / "var", options.log_level, 0)
        servers = {
            "genkeep": Server(env, work / "genkeep.log", workers=workers),
            "bare": BareServer(env, work / "bare.log", workers=workers),
        }
        sink = OtlpSink().__enter__() if options.tracing else None
        if sink is not None:
            traced_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
            servers["traced"] = Server(traced_env, work / "traced.log", workers=workers)
        bodies = prompt_bodies(options.prompts)
        # name -> the server, path and bodies it is driven with; chat shares genkeep's server.
        plan = {
            "genkeep": (servers["genkeep"], PATH, bodies),
            "bare": (servers["bare"], PATH, bodies),
            "chat": (servers["genkeep"], CHAT_PATH, chat_bodies(options.prompts)),
            "chat_tools": (servers["genkeep"], CHAT_PATH, tool_chat_bodies(options.prompts)),
            "embeddings": (servers["genkeep"], EMBEDDINGS_PATH, embedding_bodies(options.prompts)),
        }
        if "traced" in servers:
            plan["traced"] = (servers["traced"], PATH, bodies)
        targets = {name: TargetRun() for name in plan}
        hit_errors: list[str] = []
        try:
            for server in servers.values():
                server.start()
            store_prompts(servers["genkeep"].url, bodies)
            for name in GOALS:
                store_chats(servers["genkeep"].url, plan[name][2], plan[name][1])
            stored_calls = generator_calls(servers["genkeep"].url)
            for name, (server, path, sent) in plan.items():  # warm-up: pools, caches; not recorded
                drive(options, pool, server.url, sent, MARKERS[name], WARM_UP_SECONDS, path)
            for index in range(options.rounds):
                for name, (server, path, sent) in plan.items():
                    pids = server.worker_pids()
                    cpu_before = process_cpu_seconds(pids)
                    result = drive(
                        options,
                        pool,
                        server.url,
                        sent,
                        MARKERS[name],
                        options.round_seconds,
                        path,
                    )
                    measured = Round(result, process_cpu_seconds(pids) - cpu_before)
                    targets[name].rounds.append(measured)
                    console.print(
                        f"  round {index + 1} {name:8} {result.rps:8.0f} req/s  "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"server CPU {measured.cpu_us_per_request:5.0f} us/req",
                        highlight=False,
                    )
            # Every measured request must have been a hit: no generator call since storing.
            if generator_calls(servers["genkeep"].url) != stored_calls:
                hit_errors.append(f"{backend}: the measured rounds made generator calls")
            profiles = profile_servers(backend, options, pool, plan)
        except BaseException:
            for name, server in servers.items():
                if server.log().strip():
                    console.print(f"[red]--- {name} log (tail) ---[/]\n{server.log()[-3000:]}")
            raise
        finally:
            for server in servers.values():
                server.stop()
            if sink is not None:
                console.print(f"  tracing: {sink.exports} OTLP exports, {sink.bytes} bytes")
                sink.__exit__(None, None, None)
        coalescing = coalesce(database_url, work, workers, options)
    errors = [
        f"{backend}/{name} round {i + 1}: {r.load.bad} bad answers ({r.load.bad_sample}), "
        f"{r.load.socket_errors} socket errors"
        for name, run in targets.items()
        for i, r in enumerate(run.rounds)
        if r.load.bad or r.load.socket_errors
    ]
    errors += [f"{backend}/coalescing: {problem}" for problem in coalescing.problems()]
    errors += hit_errors
    return BackendRun(backend, workers, targets, coalescing, errors, profiles)


def profile_servers(
    backend: str,
    options: Options,
    pool: Executor | None,
    plan: dict[str, tuple[Server, str, list[str]]],
) -> dict[str, Profile]:
    """One extra, unrecorded round per target with py-spy sampling its server processes."""
    if options.profile_dir is None:
        return {}
    profiles = {}
    for name, (server, path, bodies) in plan.items():
        out = options.profile_dir / backend / name
        recorders = start_recording(server.worker_pids(), options.round_seconds, out)
        drive(options, pool, server.url, bodies, MARKERS[name], options.round_seconds, path)
        for recorder in recorders:
            recorder.wait(timeout=options.round_seconds + 60)
        profiles[name] = summarize(out)
    return profiles


def coalesce(database_url: str, work: Path, workers: int, options: Options) -> CoalescingResult:
    env = server_env(
        database_url, work / "var-coalescing", options.log_level, COALESCING_LATENCY_MS
    )
    server = Server(env, work / "coalescing.log", workers=workers)
    try:
        server.start()
        run_id = secrets.token_hex(4)
        return asyncio.run(
            measure_coalescing(server.url, options.burst, run_id, COALESCING_LATENCY_MS)
        )
    except BaseException:
        if server.log().strip():
            console.print(f"[red]--- coalescing server log (tail) ---[/]\n{server.log()[-3000:]}")
        raise
    finally:
        server.stop()


def report(runs: list[BackendRun], options: Options) -> None:
    throughput = Table(
        title="Cache-hit throughput, POST /v1/generate (medians over rounds); "
        f"rps ratio = median of per-round genkeep/bare req/s (goal >= {GOAL_RATIO}), "
        "CPU ratio = bare/genkeep server CPU per request"
    )
    columns = ("backend", "target", "workers", "req/s", "p50 ms", "p99 ms", "rounds req/s")
    for column in (*columns, "CPU us/req", "rps ratio", "CPU ratio"):
        throughput.add_column(column, justify="left" if column == "target" else "right")
    for run in runs:
        for name, target in run.targets.items():
            summary = target.summary()
            verdict = "ok" if run.ratio >= GOAL_RATIO else "[red]low[/]"
            is_genkeep = name == "genkeep"
            throughput.add_row(
                run.backend,
                name,
                str(run.workers),
                f"{summary['rps']:.0f}",
                f"{summary['p50_ms']:.2f}",
                f"{summary['p99_ms']:.2f}",
                " ".join(f"{r.load.rps:.0f}" for r in target.rounds),
                f"{target.cpu_us_per_request:.0f}",
                f"{run.ratio:.2f} {verdict}" if is_genkeep else "",
                f"{run.cpu_ratio:.2f}" if is_genkeep else "",
            )
    console.print(throughput)

    chat = Table(
        title="OpenAI-compatible hits beside the /v1/generate hit (same server, same rounds); "
        "cost = their server CPU per request over generate's"
    )
    for column in ("backend", "target", "req/s", "us/req", "generate us/req", "cost", "goal"):
        chat.add_column(column, justify="left" if column == "target" else "right")
    for run in runs:
        generate = run.targets["genkeep"]
        for name, goal in GOALS.items():
            cost = run.cost(name)
            chat.add_row(
                run.backend,
                name,
                f"{run.targets[name].rps:.0f}",
                f"{run.targets[name].cpu_us_per_request:.0f}",
                f"{generate.cpu_us_per_request:.0f}",
                f"{cost:.2f}",
                f"<= {goal}: " + ("ok" if cost <= goal else "[red]high[/]"),
            )
    console.print(chat)

    traced_runs = [run for run in runs if run.tracing_cost is not None]
    if traced_runs:
        tracing = Table(
            title="A /v1/generate hit with tracing on beside one with it off (two servers, same "
            f"rounds); cost = on/off server CPU per request (goal <= {GOAL_TRACING_COST})"
        )
        for column in ("backend", "off req/s", "on req/s", "off us/req", "on us/req", "cost"):
            tracing.add_column(column, justify="right")
        for run in traced_runs:
            off, on, traced = run.targets["genkeep"], run.targets["traced"], run.tracing_cost
            assert traced is not None
            verdict = "ok" if traced <= GOAL_TRACING_COST else "[red]high[/]"
            tracing.add_row(
                run.backend,
                f"{off.rps:.0f}",
                f"{on.rps:.0f}",
                f"{off.cpu_us_per_request:.0f}",
                f"{on.cpu_us_per_request:.0f}",
                f"{traced:.2f} {verdict}",
            )
        console.print(tracing)

    coalescing = Table(
        title=f"Coalescing, generator latency {COALESCING_LATENCY_MS} ms (fresh server)"
    )
    for column in (
        "backend",
        "workers",
        "1 request ms",
        f"{options.burst} identical ms",
        "ratio",
        "gen. calls 1 / burst",
        "result ids",
        "goal",
    ):
        coalescing.add_column(column, justify="right")
    for run in runs:
        c = run.coalescing
        met = c.ratio <= GOAL_COALESCING and not c.problems()
        coalescing.add_row(
            run.backend,
            str(run.workers),
            f"{c.single_ms:.0f}",
            f"{c.burst_ms:.0f}",
            f"{c.ratio:.2f}x",
            f"{c.single_generator_calls:g} / {c.burst_generator_calls:g}",
            str(c.distinct_result_ids),
            f"<= {GOAL_COALESCING}x: " + ("ok" if met else "[red]missed[/]"),
        )
    console.print(coalescing)

    for run in runs:
        for name, profile in run.profiles.items():
            frames = Table(title=f"py-spy, {run.backend} / {name}: {profile.samples} busy samples")
            for column in ("self", "share", "inclusive", "share "):
                frames.add_column(column, justify="right" if "share" in column else "left")
            for index in range(max(len(profile.self_share), len(profile.inclusive_share))):
                own = profile.self_share[index] if index < len(profile.self_share) else ("", 0)
                incl = profile.inclusive_share[index]
                frames.add_row(own[0], f"{own[1]:.1%}", incl[0], f"{incl[1]:.1%}")
            console.print(frames)


def settings_of(options: Options) -> dict[str, Any]:
    return {
        "loadgen": options.loadgen,
        "concurrency": options.concurrency,
        "seconds_per_target": options.round_seconds * options.rounds,
        "rounds": options.rounds,
        "round_seconds": options.round_seconds,
        "distinct_prompts": options.prompts,
        "client_processes": options.client_processes if options.loadgen == "python" else None,
        "wrk_threads": options.wrk_threads if options.loadgen == "wrk" else None,
        "log_level": options.log_level,
        "burst": options.burst,
        "tracing": options.tracing,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per target")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--workers", type=int, help="server processes (default 1 sqlite, 2 pg)")
    parser.add_argument("--prompts", type=int, default=2000, help="distinct stored prompts")
    parser.add_argument("--burst", type=int, default=200, help="identical concurrent requests")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--client-processes", type=int, default=1, help="Python load processes")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--log-level", default="warning", help="GENKEEP_LOG_LEVEL, both servers")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks/results/generate_bench.json"
    )
    parser.add_argument(
        "--profile", type=Path, help="after the rounds, sample each server with py-spy into DIR"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="also drive a genkeep server with tracing on (OTLP/HTTP to a discarding sink)",
    )
    args = parser.parse_args(argv)
    if args.profile is not None and not py_spy_available():
        parser.error("py-spy is not installed (the bench extra installs it)")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if wrk_available() else "python"
    elif loadgen == "wrk" and not wrk_available():
        parser.error("wrk is not installed (apt-get install wrk), use --loadgen python")
    return Options(
        backends=BACKENDS if args.backend == "both" else (args.backend,),
        seconds=args.seconds,
        rounds=args.rounds,
        concurrency=args.concurrency,
        workers=args.workers,
        prompts=args.prompts,
        burst=args.burst,
        loadgen=loadgen,
        client_processes=args.client_processes,
        wrk_threads=args.wrk_threads,
        log_level=args.log_level,
        json_path=args.json,
        profile_dir=args.profile,
        tracing=args.tracing,
    )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the finally blocks that stop servers and drop databases.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    console.print(f"settings: {settings_of(options)}", highlight=False)
    pool: ProcessPoolExecutor | None = None
    if options.loadgen == "python":
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(options.client_processes, mp_context=context)
    try:
        runs = [bench_backend(backend, options, pool) for backend in options.backends]
    finally:
        if pool is not None:
            pool.shutdown()
    report(runs, options)
    errors = [error for run in runs for error in run.errors]
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "settings": settings_of(options),
        "backends": {run.backend: run.to_json() for run in runs},
        "errors": errors,
    }
    options.json_path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"results written to {options.json_path}", highlight=False)
    for error in errors:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
