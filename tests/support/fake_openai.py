"""A real OpenAI-compatible HTTP server on loopback, scripted per test; it records every request."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


@dataclass(frozen=True, slots=True)
class Planned:
    """One scripted answer; build it with ``ok``, ``empty``, ``status``, ``slow`` or ``garbage``."""

    kind: Literal["ok", "empty", "status", "garbage"]
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    content: str | None = None
    model: str | None = None
    message: str = ""
    body: bytes = b""
    content_type: str = "application/json"
    # A streamed answer (the request asked stream=true) pauses this long before each piece.
    piece_delay_s: float = 0.0
    # Message fields beside content (tool_calls, reasoning_content), sent as they are; with
    # tool_calls the content is null unless given.
    extra: tuple[tuple[str, Any], ...] = ()
    finish_reason: str = "stop"
    # Usage beyond the three counts (completion_tokens_details, prompt_tokens_details).
    usage_details: tuple[tuple[str, Any], ...] = ()
    # A streamed answer breaks off (the connection drops) after this many content pieces.
    break_after: int | None = None


def ok(
    content: str | None = None,
    *,
    model: str | None = None,
    piece_delay_s: float = 0.0,
    finish_reason: str = "stop",
    usage_details: dict[str, Any] | None = None,
    break_after: int | None = None,
    **extra: Any,
) -> Planned:
    """A normal completion; content defaults to ``reply_for(prompt, model)``; ``extra``
    message fields (``reasoning_content=...``) are sent beside it."""
    return Planned(
        "ok",
        content=content,
        model=model,
        piece_delay_s=piece_delay_s,
        finish_reason=finish_reason,
        usage_details=tuple((usage_details or {}).items()),
        break_after=break_after,
        extra=tuple(extra.items()),
    )


def tool_calls(*calls: tuple[str, str, dict[str, Any]], **extra: Any) -> Planned:
    """An answer that calls tools: (id, function name, arguments) each; content null."""
    made = [
        {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        for id_, name, args in calls
    ]
    return dataclasses.replace(
        ok(**extra), extra=(("tool_calls", made), *ok(**extra).extra), finish_reason="tool_calls"
    )


def empty() -> Planned:
    """A well-formed completion whose message content is null."""
    return Planned("empty")


def status(
    code: int,
    *,
    retry_after: str | None = None,
    retry_after_ms: int | None = None,
    message: str | None = None,
) -> Planned:
    """An OpenAI-style error body with this status and optional Retry-After headers."""
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("Retry-After", retry_after))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    return Planned(
        "status", status=code, headers=tuple(headers), message=message or f"planned error {code}"
    )


def slow(seconds: float, then: Planned | None = None) -> Planned:
    """``then`` (default ``ok()``), answered only after ``seconds``."""
    return dataclasses.replace(then or ok(), delay_s=seconds)


def garbage(
    body: bytes = b"<html>502 upstream exploded</html>", content_type: str = "text/html"
) -> Planned:
    """A 200 whose body is not a chat completion."""
    return Planned("garbage", body=body, content_type=content_type)


def reply_for(prompt: str, model: str) -> str:
    """The deterministic content an ``ok()`` answer carries for this prompt and model."""
    digest = hashlib.sha256(f"{model}\x00{prompt}".encode()).hexdigest()[:12]
    return f"# {' '.join(prompt.split())[:60]}\n\nAnswer {digest} from {model}.\n"


Answer = Callable[[dict[str, Any]], str]

_CLASS_LINE = re.compile(r"^- (\S+): (.+)$", re.MULTILINE)


def extraction_answer(request: dict[str, Any]) -> str:
    """A valid answer of the LLM extractor's schema: every class label found in the chunk
    (the classes and labels are read from the system prompt), no relations."""
    system = next(
        (str(m.get("content")) for m in request.get("messages", []) if m.get("role") == "system"),
        "",
    )
    text = user_prompt(request)
    entities = []
    for class_iri, labels in _CLASS_LINE.findall(system.split("Properties")[0]):
        for label in labels.split(", "):
            found = re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text, re.IGNORECASE)
            if found:
                entities.append({"surface": found.group(0), "class": class_iri})
    return json.dumps({"entities": entities, "relations": []})


def count_tokens(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = 0.0  # time.monotonic() when it arrived


class FakeOpenAI:
    """``with FakeOpenAI(status(500), ok()) as server:`` then point a client at ``server.base_url``.

    Planned answers are served in order, one per request; when none are left, ``ok()``.
    """

    def __init__(
        self, *plans: Planned, answer: Answer | None = None, default: Planned | None = None
    ) -> None:
        # ``answer`` writes the content of an ``ok()`` without content (default: reply_for);
        # ``default`` is served once the planned answers run out (default: ``ok()``).
        self.answer = answer
        self.default = default or ok()
        self._hold_after: int | None = None
        self._released = threading.Event()
        self._plans: deque[Planned] = deque(plans)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def plan(self, *plans: Planned) -> None:
        """Queue more answers after the ones already planned."""
        with self._lock:
            self._plans.extend(plans)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def hold_after(self, count: int) -> None:
        """Answer the first ``count`` chat requests; hold every later one until ``release``."""
        self._hold_after = count
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    @property
    def held(self) -> int:
        """How many chat requests arrived beyond the hold (each waiting, until released)."""
        if self._hold_after is None:
            return 0
        return max(0, self.calls - self._hold_after)

    def prompts(self) -> list[str]:
        """The user message of every chat request, in arrival order."""
        return [user_prompt(r.body) for r in self.requests if r.path == CHAT_PATH]

    @property
    def calls(self) -> int:
        """How many chat completion requests arrived."""
        return sum(1 for r in self.requests if r.path == CHAT_PATH)

    def embedding_inputs(self) -> list[list[str]]:
        """The inputs of every embeddings request, one list per request."""
        found = []
        for r in self.requests:
            if r.path == EMBEDDINGS_PATH and isinstance(r.body, dict):
                given = r.body.get("input")
                found.append([given] if isinstance(given, str) else list(given or []))
        return found

    def start(self) -> Self:
        # Port 0: the OS picks a free port, so parallel test runs never collide.
        httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        # Keep-alive handler threads may outlive a test's client; stopping must not wait on them.
        httpd.block_on_close = False
        self._httpd = httpd
        # stop() waits up to one poll interval; the default 0.5 s would dominate test time.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a slow() answer
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> tuple[Planned, int]:
        """Store the request; return the answer planned for it and its sequence number."""
        with self._lock:
            self._requests.append(request)
            # Only chat requests consume a plan, so a stray request cannot shift the script.
            chat = request.path == CHAT_PATH
            planned = self._plans.popleft() if chat and self._plans else self.default
            return planned, len(self._requests)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 refuses connections when hundreds of requests arrive at once.
    request_queue_size = 512


def _make_handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # idle keep-alive connections end on their own

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            arrived = RecordedRequest("POST", self.path, headers, body, time.monotonic())
            planned, seq = server._record(arrived)
            if self.path == EMBEDDINGS_PATH:
                self._send(200, _embeddings_body(body if isinstance(body, dict) else {}))
                return
            if self.path != CHAT_PATH:
                self._send(404, _error_body(404, f"unknown path {self.path}"))
                return
            if planned.delay_s and server._stopping.wait(planned.delay_s):
                self.close_connection = True
                return
            chats = sum(1 for r in server.requests[:seq] if r.path == CHAT_PATH)
            if server._hold_after is not None and chats > server._hold_after:
                server._released.wait()
            self._answer(planned, seq, body if isinstance(body, dict) else {})

        def _answer(self, planned: Planned, seq: int, request: dict[str, Any]) -> None:
            if planned.kind == "status":
                self._send(planned.status, _error_body(planned.status, planned.message), planned)
            elif planned.kind == "garbage":
                self._send(200, planned.body, planned)
            elif request.get("stream"):
                self._stream(f"chatcmpl-fake{seq:06d}", planned, request)
            else:
                completion = _completion_body(
                    f"chatcmpl-fake{seq:06d}", planned, request, server.answer
                )
                self._send(200, completion, planned)

        def _stream(self, completion_id: str, planned: Planned, request: dict[str, Any]) -> None:
            """Server-Sent Events as OpenAI sends them, one word per chunk, then [DONE]."""
            completion = json.loads(
                _completion_body(completion_id, planned, request, server.answer)
            )
            message = completion["choices"][0]["message"]
            content = message["content"] or ""
            base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
            base["object"] = "chat.completion.chunk"

            def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                return {**base, "choices": [choice]}

            events = [chunk({"role": "assistant", "content": ""})]
            for key, value in planned.extra:
                if isinstance(value, str):  # reasoning streams first, in two pieces
                    half = len(value) // 2
                    events += [chunk({key: value[:half]}), chunk({key: value[half:]})]
            pieces = re.findall(r"\S+\s*|\s+", content)
            if planned.break_after is not None:
                pieces = pieces[: planned.break_after]
            events += [chunk({"content": piece}) for piece in pieces]
            for index, call in enumerate(message.get("tool_calls") or ()):
                # As OpenAI streams them: the id and name first, the arguments in pieces.
                head = {"index": index, "id": call["id"], "type": "function"}
                head["function"] = {"name": call["function"]["name"], "arguments": ""}
                events.append(chunk({"tool_calls": [head]}))
                arguments = call["function"]["arguments"]
                for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    events.append(
                        chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                    )
            if planned.break_after is not None:
                self._broken(events)
                return
            events.append(chunk({}, planned.finish_reason))
            if (request.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "choices": [], "usage": completion["usage"]})
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")  # the body ends when the socket does
                self.end_headers()
                for index, data in enumerate(events):
                    pause = planned.piece_delay_s if 0 < index < len(events) - 1 else 0
                    if pause and server._stopping.wait(pause):
                        break
                    self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _broken(self, events: list[dict[str, Any]]) -> None:
            """Send ``events``, then drop the connection mid-body (no [DONE], no end)."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for data in events:
                    payload = b"data: " + json.dumps(data).encode() + b"\n\n"
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _send(self, code: int, body: bytes, planned: Planned | None = None) -> None:
            try:
                self.send_response(code)
                content_type = planned.content_type if planned else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-request-id", f"req-fake-{time.monotonic_ns()}")
                for name, value in planned.headers if planned else ():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout fired); nothing left to tell it.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; requests are recorded instead

    return Handler


def user_prompt(request: Any) -> str:
    """The last user message of a chat request body."""
    messages = request.get("messages", []) if isinstance(request, dict) else []
    return next(
        (
            _text(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )


def _completion_body(
    completion_id: str, planned: Planned, request: dict[str, Any], answer: Answer | None
) -> bytes:
    model = str(request.get("model", "unknown-model"))
    messages = [m for m in request.get("messages", []) if isinstance(m, dict)]
    prompt = user_prompt(request)
    content: str | None = None
    if planned.kind == "ok":
        if planned.content is not None:
            content = planned.content
        else:
            content = answer(request) if answer is not None else reply_for(prompt, model)
    prompt_tokens = sum(count_tokens(_text(m.get("content"))) for m in messages)
    completion_tokens = count_tokens(content or "")
    extra = dict(planned.extra)
    if "tool_calls" in extra and planned.content is None:
        content = None
    payload = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": planned.model or model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, **extra},
                "logprobs": None,
                "finish_reason": planned.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            **dict(planned.usage_details),
        },
    }
    return json.dumps(payload).encode()


def fake_vector(text: str, dimensions: int = 8) -> list[float]:
    """The fake's embedding of ``text``: float32 values from its sha256."""
    digest = hashlib.sha256(text.encode()).digest()
    packed = struct.pack(f"<{dimensions}f", *((b - 128) / 128 for b in digest[:dimensions]))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _embeddings_body(request: dict[str, Any]) -> bytes:
    given = request.get("input")
    texts = [given] if isinstance(given, str) else list(given or [])
    dimensions = int(request.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        vector = fake_vector(str(text), dimensions)
        embedding: Any = vector
        if request.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_tokens(str(text)) for text in texts)
    payload = {
        "object": "list",
        "data": data,
        "model": str(request.get("model", "unknown-model")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json.dumps(payload).encode()


def _text(content: Any) -> str:
    """A message's text: the string, or its text parts joined by newlines."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _error_body(code: int, message: str) -> bytes:
    kind = (
        "rate_limit_error" if code == 429 else "server_error" if code >= 500 else "invalid_request"
    )
    error = {"message": message, "type": kind, "param": None, "code": None}
    return json.dumps({"error": error}).encode()


def busiest_second(times: list[float], width: float = 1.0) -> tuple[int, int]:
    """The most arrivals in one whole second of the clock (``int(t)``), and in any window of
    ``width`` seconds sliding over them: what a provider counting either way would see."""
    ordered = sorted(times)
    on_the_second = max(Counter(int(t) for t in ordered).values(), default=0)
    sliding = first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= width:
            first += 1
        sliding = max(sliding, last - first + 1)
    return on_the_second, sliding
