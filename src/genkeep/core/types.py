"""Shared request types: the ranges the database columns hold, stated once in the schemas.

Strings are checked for NUL and lone surrogates by ``genkeep.api.guard`` (for every string,
including free-form JSON); the OpenAPI document says so (``genkeep.api.openapi``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# A duration in seconds that still gives a date when taken from now (68 years).
MAX_SECONDS = INT32_MAX


def json_integer(value: Any) -> Any:
    """JSON Schema's integer: ``3`` and ``3.0`` are one, ``true`` and ``"3"`` are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The validator goes last: wrapped inside it, the bounds would leave the JSON Schema.
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(json_integer)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX), BeforeValidator(json_integer)]
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX), BeforeValidator(json_integer)]
Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS), BeforeValidator(json_integer)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX), BeforeValidator(json_integer)]
JsonInt = Annotated[int, BeforeValidator(json_integer)]


class RequestModel(BaseModel):
    """A request body: unknown fields refused, no coercion (``false`` is not ``0``).

    Fields listed in ``not_null`` may be omitted but not sent as ``null``; their schema
    leaves null out (``SkipJsonSchema``), so the document and the server agree.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    not_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _refuse_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.not_null:
                if name in data and data[name] is None:
                    raise ValueError(f"{name} may be omitted but not null")
        return data
