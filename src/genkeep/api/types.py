"""Shared request types: the ranges the database columns hold, stated once in the schemas.

Strings are checked for NUL and lone surrogates by ``genkeep.api.guard`` (for every string,
including free-form JSON); the OpenAPI document says so (``genkeep.api.openapi``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# A duration in seconds that still gives a date when taken from now (68 years).
MAX_SECONDS = INT32_MAX

Int32 = Annotated[int, Field(le=INT32_MAX, ge=-INT32_MAX - 1)]
Int64 = Annotated[int, Field(le=INT64_MAX, ge=-INT64_MAX - 1)]
Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]


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
