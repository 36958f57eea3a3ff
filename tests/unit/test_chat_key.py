"""The chat cache key: what changes an answer is in it, what does not is not."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from genkeep.config import GeneratorProfile
from genkeep.errors import ContextLengthExceeded
from genkeep.generate.chat_key import (
    ChatCall,
    ChatMessage,
    Normalization,
    chat_key,
    chat_profile_key,
)
from genkeep.generate.normalize import profile_key

PROFILE = GeneratorProfile(backend="openai", model="m")
CALL = ChatCall(
    messages=(
        ChatMessage("system", "Answer in Python."),
        ChatMessage("user", "Reverse a list"),
    )
)


def key(call: ChatCall, profile: GeneratorProfile = PROFILE, owner: str = "alice") -> str:
    made = chat_key(
        owner, "p", profile, call, max_bytes=10_000, profile_key=chat_profile_key(profile)
    )
    return f"{made.owner_id}/{made.profile_key}/{made.normalized_hash}"


def with_user(text: str | tuple[str, ...], call: ChatCall = CALL) -> ChatCall:
    return replace(call, messages=(call.messages[0], ChatMessage("user", text)))


def test_whitespace_is_the_default_and_keeps_case() -> None:
    assert key(with_user("  Reverse  a\tlist ")) == key(CALL)
    assert key(with_user("reverse a list")) != key(CALL)


CODE = "def f(xs):\n    for x in xs:\n        print(x)\n    return xs\n"


def test_indentation_and_line_breaks_keep_their_meaning() -> None:
    # Returning inside the loop is another program: it must be another answer.
    inside = CODE.replace("\n    return", "\n        return")
    assert key(with_user(inside)) != key(with_user(CODE))
    assert key(with_user(CODE.replace("\n", " "))) != key(with_user(CODE))
    # What carries no meaning still goes: trailing spaces, CRLF, common indentation.
    same = "\n".join("  " + line + "  " for line in CODE.split("\n")).replace("\n", "\r\n")
    assert key(with_user(same)) == key(with_user(CODE))
    assert key(with_user(CODE.replace("for x in", "for  x\tin"))) == key(with_user(CODE))


def test_tools_and_tool_messages_are_keyed() -> None:
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    other = {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}}
    call = ChatMessage(
        "assistant",
        None,
        tool_calls=(
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": "{}"},
            },
        ),
    )
    answered = replace(
        CALL, messages=(*CALL.messages, call, ChatMessage("tool", "sunny", tool_call_id="call_1"))
    )
    keys = {
        key(CALL),
        key(replace(CALL, tools=(tool,))),
        key(replace(CALL, tools=(other,))),
        key(replace(CALL, tools=(tool,), tool_choice="required")),
        key(replace(CALL, tools=(tool,), parallel_tool_calls=False)),
        key(answered),
        key(
            replace(
                answered,
                messages=(
                    *answered.messages[:-1],
                    ChatMessage("tool", "rain", tool_call_id="call_1"),
                ),
            )
        ),
    }
    assert len(keys) == 7


def test_seed_normalization_folds_case_and_exact_keeps_everything() -> None:
    seed = PROFILE.model_copy(update={"chat_normalization": "seed"})
    exact = PROFILE.model_copy(update={"chat_normalization": "exact"})
    assert key(with_user("REVERSE  a list"), seed) == key(CALL, seed)
    assert key(with_user("Reverse  a list"), exact) != key(CALL, exact)
    # The normalization is part of the key: rows made under one are never read under another.
    assert len({key(CALL), key(CALL, seed), key(CALL, exact)}) == 3


def test_one_text_part_is_the_string_and_several_parts_are_not_joined_away() -> None:
    assert key(with_user(("Reverse a list",))) == key(CALL)
    assert key(with_user(("Reverse a", "list"))) != key(CALL)


@pytest.mark.parametrize(
    "changed",
    [
        replace(CALL, temperature=0.5),
        replace(CALL, top_p=0.9),
        replace(CALL, max_tokens=10),
        replace(CALL, seed=1),
        replace(CALL, stop=("END",)),
        replace(CALL, presence_penalty=0.5),
        replace(CALL, frequency_penalty=0.5),
        replace(CALL, reasoning_effort="low"),
        replace(CALL, response_format={"type": "json_object"}),
        replace(CALL, messages=(ChatMessage("user", "Answer in Python."), CALL.messages[1])),
        replace(CALL, messages=(*CALL.messages[:1], ChatMessage("user", "Reverse a list", "bo"))),
        replace(CALL, messages=CALL.messages[::-1]),
    ],
)
def test_what_changes_the_answer_changes_the_key(changed: ChatCall) -> None:
    assert key(changed) != key(CALL)


def test_what_does_not_change_the_answer_keeps_the_key() -> None:
    assert key(replace(CALL, response_format={"type": "text"})) == key(CALL)
    assert key(replace(CALL, max_tokens=5, max_tokens_param="max_completion_tokens")) == key(
        replace(CALL, max_tokens=5)
    )
    assert key(replace(CALL, stop=("b", "a", "a"))) == key(replace(CALL, stop=("a", "b")))


def test_owners_profiles_and_the_generate_api_never_share() -> None:
    assert key(CALL, owner="bob") != key(CALL)
    assert key(CALL, PROFILE.model_copy(update={"model": "m2"})) != key(CALL)
    assert chat_profile_key(PROFILE) != profile_key(PROFILE.key_material())


def test_chat_normalization_is_not_in_the_generate_key() -> None:
    seed = PROFILE.model_copy(update={"chat_normalization": "seed"})
    assert seed.key_material() == PROFILE.key_material()


def test_profile_defaults_apply_only_where_the_request_sets_none() -> None:
    profile = PROFILE.model_copy(update={"temperature": 0.1, "max_tokens": 50})
    assert CALL.with_profile_defaults(profile).temperature == 0.1
    assert replace(CALL, temperature=0.9).with_profile_defaults(profile).temperature == 0.9
    assert CALL.with_profile_defaults(profile).max_tokens == 50


def test_the_size_limit_counts_the_request_as_sent() -> None:
    big = with_user("x" * 20_000)
    with pytest.raises(ContextLengthExceeded):
        key(big)


PINNED_CALLS = [
    ChatCall(
        messages=(
            ChatMessage("system", "You answer  in\tshort markdown. "),
            ChatMessage("user", "Été: ÇA va?", name="ann"),
        ),
        temperature=0.2,
        max_tokens=64,
        stop=("b", "a", "b"),
        seed=7,
    ),
    ChatCall(
        messages=(ChatMessage("user", ("part one", "  part\ntwo ")),),
        top_p=0.5,
        response_format={
            "json_schema": {"name": "x", "schema": {"type": "object"}},
            "type": "json_schema",
        },
        reasoning_effort="low",
        presence_penalty=-1.5,
        frequency_penalty=1.0,
    ),
    ChatCall(messages=(ChatMessage("user", ("only part",)),), response_format={"type": "text"}),
]
# sha256 prefixes of (as sent, normalized) canonical texts, as first released: every stored
# chat is keyed by them, so a change must bump _CANONICAL_VERSION, not slip in unnoticed.
# Version 1 stays pinned too: the fallback read finds rows stored under it.
PINNED_V1 = {
    (0, "whitespace"): ("54db08c57cf8ad21", "02daa45140cf6d87"),
    (0, "seed"): ("54db08c57cf8ad21", "f708cd67884372f9"),
    (0, "exact"): ("54db08c57cf8ad21", "54db08c57cf8ad21"),
    (1, "whitespace"): ("1df7ae996b939306", "c621fd6ddd5ac8f7"),
    (1, "seed"): ("1df7ae996b939306", "c621fd6ddd5ac8f7"),
    (1, "exact"): ("1df7ae996b939306", "1df7ae996b939306"),
    (2, "whitespace"): ("de17508e22aff22e", "de17508e22aff22e"),
    (2, "seed"): ("de17508e22aff22e", "de17508e22aff22e"),
    (2, "exact"): ("de17508e22aff22e", "de17508e22aff22e"),
}


PINNED = {
    (0, "whitespace"): ("298d14fdc756af50", "8c807017e8fe51e1"),
    (0, "seed"): ("298d14fdc756af50", "1c0fbb37d54c84da"),
    (0, "exact"): ("298d14fdc756af50", "298d14fdc756af50"),
    (1, "whitespace"): ("bb64b1973d19e9cb", "5e0f960353acb235"),
    (1, "seed"): ("bb64b1973d19e9cb", "fb107511afd6a857"),
    (1, "exact"): ("bb64b1973d19e9cb", "bb64b1973d19e9cb"),
    (2, "whitespace"): ("f196b4f6e9dcbc13", "f196b4f6e9dcbc13"),
    (2, "seed"): ("f196b4f6e9dcbc13", "f196b4f6e9dcbc13"),
    (2, "exact"): ("f196b4f6e9dcbc13", "f196b4f6e9dcbc13"),
}


@pytest.mark.parametrize(("index", "normalization"), sorted(PINNED))
def test_the_canonical_form_is_pinned(index: int, normalization: Normalization) -> None:
    exact, normalized = PINNED_CALLS[index].canonical(normalization)
    found = tuple(hashlib.sha256(text.encode()).hexdigest()[:16] for text in (exact, normalized))
    assert found == PINNED[(index, normalization)]


@pytest.mark.parametrize(("index", "normalization"), sorted(PINNED_V1))
def test_the_version_1_form_is_pinned(index: int, normalization: Normalization) -> None:
    exact, normalized = PINNED_CALLS[index].canonical(normalization, version=1)
    found = tuple(hashlib.sha256(text.encode()).hexdigest()[:16] for text in (exact, normalized))
    assert found == PINNED_V1[(index, normalization)]
