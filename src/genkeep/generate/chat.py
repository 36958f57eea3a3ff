"""Chat completions through generate once: one key per answer-changing request, one flight.

A streamed miss hands the generator's pieces to a feed while the flight persists the result;
requests of this process that join the flight read the same feed, and the others (a hit, a
wait on another process's claim) get the stored content once the flight lands. The flight is
its own task, so a client that goes away ends only its own reading.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from genkeep.config import GeneratorProfile
from genkeep.core.caller import STREAMED
from genkeep.core.generation import Generation
from genkeep.db.prompts import PromptKey
from genkeep.errors import UnknownModel, UnknownProfile
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.chat_key import ChatCall, chat_key, chat_profile_key, stored_call
from genkeep.generate.feed import Feed
from genkeep.generate.generator import ChatGenerator
from genkeep.generate.outcome import Outcome
from genkeep.generate.service import GenerateService
from genkeep.generate.spans import describe_chat

FlightKey = tuple[str, str, str, CacheControl]
# Stored content is streamed line by line: pieces a client renders as they come.
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


class ChatStream:
    """A streamed answer: stored content known at once, or a live feed and then the result."""

    def __init__(self, task: asyncio.Task[Outcome], model: str) -> None:
        self.task = task
        self.model = model
        self.feed: Feed | None = None
        self.led = False  # this request's own generator call is the one being streamed

    @property
    def known(self) -> Outcome | None:
        """The outcome, when it was there before the first piece (a hit or a waited result)."""
        return self.task.result() if self.feed is None else None

    async def pieces(self) -> AsyncIterator[str]:
        if self.feed is None:
            for piece in _LINE.findall(self.task.result().content):
                yield piece
            return
        async for piece in self.feed.read():
            yield piece

    async def outcome(self) -> Outcome:
        """The result, once persisted (or not, by the request's choice); raises its error."""
        return await asyncio.shield(self.task)


class ChatService:
    """Resolves models to profiles and answers chats, whole or streamed, through generate once."""

    def __init__(self, generate: GenerateService) -> None:
        self.generate = generate
        self.settings = generate.settings
        self._feeds: dict[FlightKey, Feed] = {}
        self._announced = asyncio.Event()
        self._profile_keys: dict[str, str] = {}

    def models(self) -> list[str]:
        """The profiles a client may name as ``model``."""
        return sorted(self.settings.profiles)

    def has_model(self, model: str) -> bool:
        return model in self.settings.profiles

    def made_by_chat(self, profile_name: str, profile_key: str) -> bool:
        """Whether a prompt row is a chat under its profile as configured now."""
        found = self.settings.profile(profile_name)
        return found is not None and self._profile_key(*found) == profile_key

    async def regenerate(self, owner_id: str, profile_name: str, prompt_text: str) -> Outcome:
        """A new version of a stored chat, as a request with ``Cache-Control: no-cache``."""
        call = stored_call(prompt_text)
        return await self.complete(owner_id, profile_name, call, CacheControl(no_cache=True))

    async def complete(
        self, owner_id: str, model: str, call: ChatCall, cache: CacheControl
    ) -> Outcome:
        key, profile, backend, call = self._prepare(owner_id, model, call)

        async def produce(result_id: str | None) -> Generation:
            describe_chat(call)
            return await backend.chat(call, profile)

        return await self.generate.generate_key(key, profile, cache, produce)

    async def stream(
        self, owner_id: str, model: str, call: ChatCall, cache: CacheControl
    ) -> ChatStream:
        """Start answering; returns at the first piece or the outcome, raising its error."""
        key, profile, backend, call = self._prepare(owner_id, model, call)
        flight: FlightKey = (key.owner_id, key.profile_key, key.normalized_hash, cache)

        async def produce(result_id: str | None) -> Generation:
            stream.led = True
            describe_chat(call)
            STREAMED.set(True)  # the flight's own context: its ledger row says so
            feed = self._feeds[flight] = Feed(result_id)
            self._announce()
            try:
                return await backend.chat(call, profile, feed.push)
            finally:
                feed.close()
                if self._feeds.get(flight) is feed:
                    del self._feeds[flight]

        task = asyncio.create_task(self.generate.generate_key(key, profile, cache, produce))
        task.add_done_callback(_retrieved)
        stream = ChatStream(task, profile.model)
        feed = await self._feed_or_outcome(flight, task)
        # Until a first piece, a failure can still be an error status rather than an event.
        if feed is not None and await feed.started():
            stream.feed = feed
        else:
            await asyncio.shield(task)  # raises the error, or the outcome to stream whole
        return stream

    def _prepare(
        self, owner_id: str, model: str, call: ChatCall
    ) -> tuple[PromptKey, GeneratorProfile, ChatGenerator, ChatCall]:
        found = self.settings.profile(model) if model else None
        if found is None:
            raise UnknownModel(unknown_model(model))
        name, profile = found
        backend = self.generate.generators.get(profile.backend)
        if backend is None or not hasattr(backend, "chat"):
            raise UnknownProfile(f"model {name!r} uses backend {profile.backend!r}, not set up")
        call = call.with_profile_defaults(profile)
        key = chat_key(
            owner_id,
            name,
            profile,
            call,
            max_bytes=self.settings.max_chat_bytes,
            profile_key=self._profile_key(name, profile),
        )
        chat: ChatGenerator = backend  # type: ignore[assignment]
        return key, profile, chat, call

    def _profile_key(self, name: str, profile: GeneratorProfile) -> str:
        # Settings do not change during the service's life, so neither do profile keys.
        found = self._profile_keys.get(name)
        if found is None:
            found = self._profile_keys[name] = chat_profile_key(profile)
        return found

    def _announce(self) -> None:
        announced, self._announced = self._announced, asyncio.Event()
        announced.set()

    async def _feed_or_outcome(self, flight: FlightKey, task: asyncio.Task[Outcome]) -> Feed | None:
        """The feed of this flight's generation once it starts, or None when it ends first."""
        while True:
            # A flight removes its feed before it lands: once ours has, any feed is another's.
            if task.done():
                return None
            feed = self._feeds.get(flight)
            if feed is not None:
                return feed
            announced = asyncio.ensure_future(self._announced.wait())
            try:
                await asyncio.wait({task, announced}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                announced.cancel()


def unknown_model(model: str) -> str:
    """OpenAI's message for an unknown model; the name escaped, as a client may send anything."""
    name = model.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"The model '{name}' does not exist or you do not have access to it."


def _retrieved(task: asyncio.Task[Outcome]) -> None:
    # A reader that went away leaves the outcome unread; its error is the flight's to log.
    if not task.cancelled():
        task.exception()
