"""An OpenAI-backed profile through the whole service: keyed, single-flight, usage stored."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from genkeep.config import GeneratorProfile, Settings
from genkeep.db.database import Database
from genkeep.db.prompts import PromptStore
from genkeep.errors import GenerationFailed
from genkeep.generate.backends import build_generators
from genkeep.generate.service import GenerateService
from tests.support.fake_openai import FakeOpenAI, reply_for, slow, status


def openai_settings(settings: Settings, base_url: str) -> Settings:
    return settings.model_copy(
        update={
            "profiles": {
                "default": GeneratorProfile(backend="openai", model="gpt-test", temperature=0.1),
                "other": GeneratorProfile(backend="openai", model="gpt-other"),
            },
            "openai_base_url": base_url,
            "openai_api_key": SecretStr("sk-test-secret"),
            "openai_max_retries": 1,
            "claim_poll_s": 0.01,
        }
    )


async def test_openai_profile_generates_once_and_records_usage(
    settings: Settings, database: Database
) -> None:
    with FakeOpenAI(slow(0.3)) as server:
        configured = openai_settings(settings, server.base_url)
        service = GenerateService(PromptStore(database), configured, build_generators(configured))
        try:
            outcomes = await asyncio.gather(
                *[service.generate("alice", "Name three rivers") for _ in range(10)]
            )
            other = await service.generate("alice", "Name three rivers", "other")
        finally:
            await service.aclose()
            await service.generators["openai"].aclose()  # type: ignore[attr-defined]
    assert server.calls == 2
    assert {o.result_id for o in outcomes} == {outcomes[0].result_id}
    assert outcomes[0].content == reply_for("Name three rivers", "gpt-test")
    assert other.model == "gpt-other" and other.prompt_id != outcomes[0].prompt_id
    stored = await PromptStore(database).get_result("alice", outcomes[0].result_id or "")
    assert stored is not None and stored.prompt_tokens and stored.completion_tokens
    assert server.requests[0].headers["authorization"] == "Bearer sk-test-secret"
    assert server.requests[0].body["temperature"] == 0.1


async def test_openai_failure_is_recorded_then_retried(
    settings: Settings, database: Database
) -> None:
    with FakeOpenAI(status(400, message="bad request from upstream")) as server:
        configured = openai_settings(settings, server.base_url)
        service = GenerateService(PromptStore(database), configured, build_generators(configured))
        try:
            try:
                await service.generate("alice", "will fail once")
            except GenerationFailed as exc:
                assert "400" in exc.detail and "sk-test-secret" not in exc.detail
            else:
                raise AssertionError("expected GenerationFailed")
            retried = await service.generate("alice", "will fail once")
        finally:
            await service.aclose()
            await service.generators["openai"].aclose()  # type: ignore[attr-defined]
    assert retried.persisted and retried.version == 1 and server.calls == 2
