"""Console pages: Jinja2 shells whose plain JavaScript calls the public API with the same auth."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import Response
from starlette.types import Scope

from genkeep import __version__
from genkeep.console.headers import SecurityHeaders
from genkeep.errors import NotFound
from genkeep.extract.service import EXTRACTOR_NAMES

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", include_in_schema=False)

# (path, label): the pages reachable from the navigation bar.
NAV = (
    ("/console", "Generate"),
    ("/console/prompts", "Prompts"),
    ("/console/jobs", "Jobs"),
    ("/console/runs", "Extraction runs"),
    ("/console/usage", "Usage"),
    ("/console/ops", "Operations"),
)


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    settings = request.app.state.services.settings
    return templates.TemplateResponse(
        request,
        template,
        {
            "nav": NAV,
            "version": __version__,
            # The page asks for an API key exactly when the API would refuse without one.
            "auth_required": settings.auth_enforced,
            "profiles": sorted(settings.profiles),
            "default_profile": settings.default_profile,
            "trace_url": settings.trace_url,
            **context,
        },
    )


@router.get("", response_class=HTMLResponse)
async def generate_page(request: Request) -> HTMLResponse:
    return _page(request, "generate.html", page="generate", title="Generate")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", page="login", title="API key")


@router.get("/prompts", response_class=HTMLResponse)
async def prompts_page(request: Request) -> HTMLResponse:
    return _page(request, "prompts.html", page="prompts", title="Prompts")


@router.get("/prompts/{prompt_id}", response_class=HTMLResponse)
async def prompt_page(request: Request, prompt_id: str) -> HTMLResponse:
    return _page(request, "prompt.html", page="prompt", title="Prompt", item_id=prompt_id)


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", page="jobs", title="Jobs")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> HTMLResponse:
    # The kinds this server's API accepts (built-in and GENKEEP_TASK_MODULES extensions).
    kinds = request.app.state.services.catalogue.names()
    return _page(request, "job.html", page="job", title="Job", item_id=job_id, task_kinds=kinds)


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str) -> HTMLResponse:
    return _page(request, "task.html", page="task", title="Task", item_id=task_id)


@router.get("/usage", response_class=HTMLResponse)
async def usage_page(request: Request) -> HTMLResponse:
    return _page(request, "usage.html", page="usage", title="Usage")


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request) -> HTMLResponse:
    # Every extractor a run may have used, configured here or not (an old run's stays listed).
    return _page(
        request, "runs.html", page="runs", title="Extraction runs", extractors=EXTRACTOR_NAMES
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> HTMLResponse:
    return _page(request, "run.html", page="run", title="Extraction run", item_id=run_id)


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request) -> HTMLResponse:
    return _page(request, "ops.html", page="ops", title="Operations")


SAMPLES = {"text": "text.md", "ontology": "ontology.ttl"}


@router.get("/samples/{name}", response_class=PlainTextResponse)
async def sample(name: str) -> PlainTextResponse:
    """The shipped extraction samples (package data, not owner data), for the run form."""
    if name not in SAMPLES:
        raise NotFound(f"no sample {name!r}; there are: {', '.join(SAMPLES)}")
    path = files("genkeep.extract") / "samples" / SAMPLES[name]
    return PlainTextResponse(path.read_text(encoding="utf-8"))


@router.get("/{path:path}", response_class=HTMLResponse)
async def not_found_page(request: Request, path: str) -> HTMLResponse:
    """Any other console address: the console's own page, answered 404 (not the API's JSON)."""
    answer = _page(
        request, "notfound.html", page="notfound", title="Not found", path=request.url.path
    )
    answer.status_code = 404
    return answer


class ConsoleFiles(StaticFiles):
    """The console's modules and stylesheet, asked again on every use (``no-cache``; a 304 when
    unchanged): a page never runs modules of two releases, one fresh and one cached."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


root = APIRouter(include_in_schema=False)


@root.get("/")
async def to_console() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


def install(app: FastAPI) -> None:
    """Serve the console pages, its static files (from the package), the / redirect, and the
    browser pages' security headers."""
    # The static files first: the router's catch-all not-found page would take their paths.
    app.mount("/console/static", ConsoleFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.include_router(root)
    # Outermost: the pages' headers are on every answer, an error's too.
    app.add_middleware(SecurityHeaders)
