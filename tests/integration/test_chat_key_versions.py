"""Chats stored under the version-1 key (whitespace collapsed, indentation lost) stay hits,
and only for requests that still mean what the stored one meant (both databases)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from genkeep.config import Settings
from genkeep.core.generation import Generation
from genkeep.core.hashes import sha256_hex
from genkeep.generate.cache_control import CacheControl
from genkeep.generate.chat_key import ChatCall, ChatMessage
from genkeep.services import Services
from tests.support.services import opened_services

CODE = "Explain:\nfor x in xs:\n    if x:\n        print(x)\n"


def call_of(text: str) -> ChatCall:
    return ChatCall(messages=(ChatMessage("user", text),))


async def store_as_version_1(services: Services, call: ChatCall, content: str) -> str:
    """A row as genkeep stored it before keys kept indentation; its result id."""
    chat = services.chat
    key = chat._prepare("default-owner", "default", call)[0]
    assert key.legacy is not None
    exact, normalized = call.canonical("whitespace", version=1)
    old = replace(
        key,
        normalized_hash=sha256_hex(normalized),
        normalized_text=normalized,
        prompt_text=exact,
        legacy=None,
    )
    assert old.normalized_hash == key.legacy().normalized_hash
    claim = await services.prompts.claim_new(old, "test", 30)
    assert claim is not None
    stored = await services.prompts.complete(
        claim, "r-" + sha256_hex(content)[:30], Generation(content, "m")
    )
    assert stored is not None
    return stored.id


async def test_a_version_1_row_answers_only_what_it_still_means(
    settings: Settings, tmp_path: Path
) -> None:
    async with opened_services(settings, tmp_path) as services:
        result_id = await store_as_version_1(services, call_of(CODE), "the stored answer")

        # The same request (its layout untouched, or only tidied): the old row is the hit.
        for text in (CODE, CODE.replace("\n", "\r\n") + "  "):
            outcome = await services.chat.complete(
                "default-owner", "default", call_of(text), CacheControl()
            )
            assert (outcome.cached, outcome.result_id) == (True, result_id)
            assert outcome.content == "the stored answer"

        # Version 1 joined this one with it (whitespace collapsed); it means another program.
        flattened = CODE.replace("\n        print", "\n    print")
        version_1 = [
            c.canonical("whitespace", version=1)[1] for c in (call_of(CODE), call_of(flattened))
        ]
        assert version_1[0] == version_1[1]
        other = await services.chat.complete(
            "default-owner", "default", call_of(flattened), CacheControl()
        )
        assert not other.cached and other.result_id != result_id
        again = await services.chat.complete(
            "default-owner", "default", call_of(flattened), CacheControl()
        )
        assert again.cached and again.result_id == other.result_id
