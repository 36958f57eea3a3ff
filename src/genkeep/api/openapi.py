"""The OpenAPI document as the server really behaves, and its docs pages served locally.

FastAPI's document says every error is a JSON ``HTTPValidationError``; genkeep answers
problem+json with statuses FastAPI cannot see (401, 404, 409, 412, 413, 503...). This
module rewrites the document once: the ``Problem`` schema for every error an operation
can answer, strings without NUL (``genkeep.api.guard`` refuses it everywhere), free-form
JSON spelled out, enums of what this server knows (profiles, extractors, task kinds), and
the Bearer scheme (anonymous too where keys are not enforced).

Swagger UI and ReDoc come from the ``fastapi-offline`` package (installed with genkeep),
never from a CDN, so /docs works on a machine without internet.
"""

from __future__ import annotations

import importlib.util
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from genkeep.api.problems import PROBLEM_JSON
from genkeep.config import Settings
from genkeep.core.types import INT64_MAX
from genkeep.jobs import load_catalogue

# ECMA-262 and Python agree on this: any string without U+0000.
NO_NUL = "^[^\\u0000]*$"
NO_NUL_KEY = {"type": "string", "pattern": NO_NUL}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Operations with this tag speak the OpenAI API (genkeep.api.openai_errors).
OPENAI_TAG = "openai"
OPENAI_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
ASSETS = "/docs-assets"
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
# Operations that touch no database (so never answer 503) and need no credentials.
_NO_DATABASE = {"/healthz", "/readyz", "/metrics", "/v1/blobs/{key}"}


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is genkeep's stable error code."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    errors: list[ProblemError] | None = Field(None, description="Per-field errors (4xx).")


def documented(
    *statuses: int, extra: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: these statuses answer problem+json (plus ``extra``)."""
    return {**(extra or {}), **{status: _problem_response(status) for status in statuses}}


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        **_retry_after(status),
    }


def _retry_after(status: int) -> dict[str, Any]:
    """A 503 (the database unavailable) and a 429 (a limit) say when to retry."""
    return {"headers": RETRY_AFTER_HEADER} if status in (429, 503) else {}


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Serve /openapi.json (rewritten), /docs and /redoc with locally installed assets."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.mount(ASSETS, StaticFiles(directory=_asset_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _asset_dir() -> Path:
    # Located without importing fastapi_offline (its import would build an app class).
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fastapi-offline is not installed; reinstall genkeep")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def build(app: FastAPI, settings: Settings) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["JsonValue"] = _json_value()
    _add_models(schemas, Problem, ProblemError)
    _enums(schemas, app, settings)
    _task_kinds(schemas, settings)
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            _responses(path, operation, settings)
    _strings(document)
    _integer_bounds(document)
    return document


def _responses(path: str, operation: dict[str, Any], settings: Settings) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses: set[int] = set()
    if path not in _NO_DATABASE:
        statuses |= {500, 503}
    if "security" in operation:
        statuses |= {400, 401}
        if not settings.auth_enforced:
            operation["security"].append({})
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413}
    if OPENAI_TAG in operation.get("tags", ()):
        # These routes answer OpenAI's error object, and a validation error as 400.
        responses.pop("422", None)
        for status in statuses - {422}:
            responses[str(status)] = _openai_error_response(status)
        return
    for status in statuses:
        responses[str(status)] = _problem_response(status)


def _openai_error_response(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": OPENAI_ERROR_REF}},
        **_retry_after(status),
    }


def _json_value() -> dict[str, Any]:
    """Any JSON value; strings and keys without NUL (nesting is limited to 64 levels)."""
    return {
        "description": "Any JSON value without NUL characters, nested at most 64 levels.",
        "anyOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": JSON_VALUE_REF},
            {"type": "object", "additionalProperties": JSON_VALUE_REF, "propertyNames": NO_NUL_KEY},
        ],
    }


def _add_models(schemas: dict[str, Any], *models: type[BaseModel]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema


def _enums(schemas: dict[str, Any], app: FastAPI, settings: Settings) -> None:
    """Say which profiles and extractors exist: any other name is refused."""
    profile = schemas.get("GenerateRequest", {}).get("properties", {}).get("profile")
    if profile is not None:
        profile["anyOf"] = [{"type": "string", "enum": sorted(settings.profiles)}, {"type": "null"}]
    # A chat's model is a profile too; another name answers OpenAI's 404 model_not_found.
    model = schemas.get("ChatCompletionRequest", {}).get("properties", {}).get("model")
    if model is not None:
        model["enum"] = sorted(settings.profiles)
    services = getattr(app.state, "services", None)
    extractor = schemas.get("RunCreate", {}).get("properties", {}).get("extractor")
    if extractor is not None and services is not None:
        extractor["enum"] = sorted(services.extraction.extractors)


def _task_kinds(schemas: dict[str, Any], settings: Settings) -> None:
    """A task body is one of the catalogue's kinds, each with its payload's schema."""
    create = schemas.get("TaskCreate")
    if create is None:
        return
    variants: list[dict[str, Any]] = []
    for kind, model in load_catalogue(settings.task_modules).payload_models().items():
        payload: dict[str, Any] = {
            "type": "object",
            "additionalProperties": JSON_VALUE_REF,
            "propertyNames": NO_NUL_KEY,
        }
        required = ["kind"]
        if model is not None:
            _add_models(schemas, model)
            payload = {"$ref": f"#/components/schemas/{model.__name__}"}
            # The payload defaults to {}: where the model needs fields, it must be sent.
            if model.model_json_schema().get("required"):
                required.append("payload")
        variants.append(
            {
                "type": "object",
                "required": required,
                "properties": {"kind": {"const": kind}, "payload": payload},
            }
        )
    create["properties"]["kind"]["enum"] = [v["properties"]["kind"]["const"] for v in variants]
    create["oneOf"] = variants


def _strings(node: Any, *, inside_problem: bool = False) -> None:
    """Every string the API takes or gives is NUL-free; free-form objects are JsonValue."""
    if isinstance(node, list):
        for item in node:
            _strings(item, inside_problem=inside_problem)
        return
    if not isinstance(node, dict):
        return
    if node.get("additionalProperties") is True:
        node["additionalProperties"] = JSON_VALUE_REF
    # A map's keys are strings the guard checks too (chat's metadata: dict[str, str]).
    if node.get("additionalProperties") not in (None, False) and "propertyNames" not in node:
        node["propertyNames"] = NO_NUL_KEY
    if (
        node.get("type") == "string"
        and not inside_problem
        and not {"pattern", "format", "enum", "const"} & node.keys()
    ):
        node["pattern"] = NO_NUL
    for key, value in node.items():
        _strings(value, inside_problem=inside_problem or key in ("Problem", "ProblemError"))


def _integer_bounds(node: Any) -> None:
    """An integer's bounds as integers. FastAPI's document model holds them as floats, and
    2**63 - 1 as a float is 2**63: a client would think 2**63 + 191 allowed."""
    if isinstance(node, list):
        for item in node:
            _integer_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            bound = node.get(key)
            if isinstance(bound, float) and bound.is_integer():
                node[key] = max(-(2**63), min(INT64_MAX, int(bound)))
    for value in node.values():
        _integer_bounds(value)
