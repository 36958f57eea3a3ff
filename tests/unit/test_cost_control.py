"""Prices, Retry-After and the limit headers, without a database."""

from __future__ import annotations

import httpx

from genkeep.api.problems import rate_limit_headers
from genkeep.config import GeneratorProfile
from genkeep.errors import BudgetExceeded, RateLimited
from genkeep.generate.limits import estimated_tokens
from genkeep.generate.metering import cost_micros
from genkeep.generate.openai_client import retry_after_s


def test_a_call_costs_its_tokens_times_the_profiles_prices_in_micro_dollars() -> None:
    profile = GeneratorProfile(price_input=2.5, price_output=10.0, price_cached_input=1.25)
    assert cost_micros(profile, 1000, 200) == 2500 + 2000
    assert cost_micros(profile, 1000, 200, cached=400) == 600 * 2.5 + 400 * 1.25 + 2000
    assert cost_micros(GeneratorProfile(price_input=0.15), 3, 0) == 1  # rounded up, never free
    assert cost_micros(GeneratorProfile(), 10**6, 10**6) == 0


def test_prices_and_limits_never_change_a_profiles_key() -> None:
    plain = GeneratorProfile(backend="openai", model="m")
    priced = plain.model_copy(
        update={"price_input": 1.0, "price_output": 2.0, "rpm": 10, "tpm": 100}
    )
    assert plain.key_material() == priced.key_material()


def test_the_most_a_call_may_use_counts_its_max_tokens() -> None:
    assert estimated_tokens("x" * 400, GeneratorProfile(max_tokens=50)) == 101 + 50
    assert estimated_tokens("", GeneratorProfile(estimate_output_tokens=7)) == 1 + 7


def test_retry_after_is_read_as_the_sdks_read_it() -> None:
    assert retry_after_s(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_s(httpx.Headers({"retry-after": "2"})) == 2.0
    assert retry_after_s(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_s(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_s(httpx.Headers({})) is None


def test_a_429_says_when_to_come_back_in_whole_seconds_and_milliseconds() -> None:
    limited = RateLimited(
        "slow down", retry_after_s=0.2, headers={"x-ratelimit-limit-requests": "60"}
    )
    assert rate_limit_headers(limited) == {
        "x-ratelimit-limit-requests": "60",
        "Retry-After": "1",
        "retry-after-ms": "200",
    }
    assert (
        rate_limit_headers(BudgetExceeded("spent", retry_after_s=3600.4))["Retry-After"] == "3601"
    )
    assert BudgetExceeded.status == 429 and not BudgetExceeded.retryable
