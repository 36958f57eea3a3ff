"""Defence-in-depth headers for the pages a browser shows: the console, the preview, the docs."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script anywhere: an injected <script> or on* attribute does not run even if the
# escaping ever failed. Inline styles stay allowed (the preview's stylesheet, the class colours).
POLICY = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
)
PAGES = ("/console", "/docs", "/redoc")
# Swagger UI's page starts the UI from an inline script of its own: that script, by its hash.
HASHED = "/docs"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _is_preview(path: str) -> bool:
    return path.startswith("/v1/results/") and path.endswith("/preview")


def _headers(ancestors: str, scripts: str = "") -> list[tuple[bytes, bytes]]:
    policy = POLICY.format(ancestors=ancestors, scripts=scripts)
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeaders:
    """Add the policy headers to the browser-facing pages; other paths pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        preview = _is_preview(path)
        if not preview and not (path.startswith(PAGES)):
            await self.app(scope, receive, send)
            return
        # The preview is framed by the console (same origin), nothing else is framed at all.
        ancestors = "'self'" if preview else "'none'"
        if path == HASHED:
            await self._hashed(scope, receive, send, ancestors)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_headers(ancestors)]
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _hashed(self, scope: Scope, receive: Receive, send: Send, ancestors: str) -> None:
        """Buffer the (small) docs page to allow exactly its own inline scripts."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False) or start is None:
                return
            body = b"".join(chunks)
            digests = [
                base64.b64encode(hashlib.sha256(script).digest()).decode()
                for script in INLINE_SCRIPT.findall(body)
            ]
            scripts = "".join(f" 'sha256-{digest}'" for digest in digests)
            start["headers"] = [*start.get("headers", []), *_headers(ancestors, scripts)]
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)
