"""The generate route serializes an Outcome directly: its fields must be the response's."""

from __future__ import annotations

from dataclasses import fields

from genkeep.api.schemas import GenerateResponse
from genkeep.generate.outcome import Outcome


def test_outcome_fields_are_the_response_fields() -> None:
    assert [f.name for f in fields(Outcome)] == list(GenerateResponse.model_fields)
