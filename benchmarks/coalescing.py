"""Single flight, timed: one new prompt alone versus N identical requests fired together."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.loadgen import get_request, open_connection, post_request, read_response
from benchmarks.servers import generator_calls

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True, slots=True)
class CoalescingResult:
    generator_latency_ms: int
    burst_size: int
    single_ms: float
    burst_ms: float
    single_generator_calls: float
    burst_generator_calls: float
    distinct_result_ids: int
    leaders: int
    non_200: int

    @property
    def ratio(self) -> float:
        return self.burst_ms / self.single_ms

    def problems(self) -> list[str]:
        found = []
        if self.non_200:
            found.append(f"{self.non_200} of {self.burst_size} concurrent requests failed")
        if self.distinct_result_ids != 1:
            found.append(f"{self.distinct_result_ids} distinct result ids (want 1)")
        if self.burst_generator_calls != 1:
            found.append(f"{self.burst_generator_calls:g} generator calls for the burst (want 1)")
        return found


async def _roundtrip(connection: Connection, payload: bytes) -> tuple[int, bytes]:
    reader, writer = connection
    writer.write(payload)
    return await read_response(reader)


async def measure_coalescing(
    url: str, size: int, run_id: str, generator_latency_ms: int
) -> CoalescingResult:
    """Time one new prompt, then ``size`` identical requests for another, on open connections."""

    def post(prompt: str) -> bytes:
        return post_request(url, "/v1/generate", json.dumps({"prompt": prompt}))

    connections = await asyncio.gather(*(open_connection(url) for _ in range(size)))
    try:
        # A round trip on each connection first, so the burst times the server's work and not
        # TCP handshakes or accept queues.
        ping = get_request(url, "/healthz")
        await asyncio.gather(*(_roundtrip(c, ping) for c in connections))
        # First-request costs (SQL compilation, pool fill) must not inflate the single figure.
        await _roundtrip(connections[0], post(f"coalescing warm-up {run_id}"))

        before = await asyncio.to_thread(generator_calls, url)
        started = time.perf_counter()
        status, _ = await _roundtrip(connections[0], post(f"coalescing single {run_id}"))
        single_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"single generate request answered {status}")
        middle = await asyncio.to_thread(generator_calls, url)

        burst = post(f"coalescing burst of {size} {run_id}")
        started = time.perf_counter()
        answers = await asyncio.gather(*(_roundtrip(c, burst) for c in connections))
        burst_ms = (time.perf_counter() - started) * 1000
        after = await asyncio.to_thread(generator_calls, url)
    finally:
        for _, writer in connections:
            writer.close()

    bodies: list[dict[str, Any]] = [json.loads(body) for status, body in answers if status == 200]
    return CoalescingResult(
        generator_latency_ms=generator_latency_ms,
        burst_size=size,
        single_ms=single_ms,
        burst_ms=burst_ms,
        single_generator_calls=middle - before,
        burst_generator_calls=after - middle,
        distinct_result_ids=len({body["result_id"] for body in bodies}),
        leaders=sum(not body["cached"] and not body["coalesced"] for body in bodies),
        non_200=size - len(bodies),
    )
