"""The console's modules link: every import names a module that exists and exports it, every
page rendered has its module, and no module is left that no page loads."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.console_modules import STATIC, closure, exports, imports, modules

ROUTES = Path(__file__).resolve().parents[2] / "src" / "genkeep" / "console" / "routes.py"


def page_names() -> set[str]:
    """The ``page`` of every console route (base.html loads static/pages/<page>.js)."""
    return set(re.findall(r'\bpage="(\w+)"', ROUTES.read_text(encoding="utf-8")))


def test_every_import_is_exported_by_an_existing_module() -> None:
    known = set(modules())
    for module in known:
        for target, names in imports(module).items():
            assert target in known, f"{module} imports {target}, which does not exist"
            missing = names - exports(target)
            assert not missing, f"{module} imports {sorted(missing)} that {target} does not export"


def test_every_page_has_its_module_and_every_module_a_page() -> None:
    pages = page_names()
    assert {"generate", "job", "run", "usage", "notfound"} <= pages
    for page in pages:
        assert (STATIC / "pages" / f"{page}.js").is_file(), page
    loaded = set().union(*(closure(f"pages/{page}.js") for page in pages))
    assert loaded == set(modules()), f"no page loads {sorted(set(modules()) - loaded)}"


def test_a_page_loads_only_its_own_modules() -> None:
    jobs = closure("pages/jobs.js")
    assert "core/api.js" in jobs and "core/start.js" in jobs
    # The job page's parts and the run page's extraction view are not the jobs list's.
    assert not {m for m in jobs if m.startswith("pages/") and m != "pages/jobs.js"}
    assert "pages/run-extraction.js" in closure("pages/run.js")
    assert "core/tabs.js" in closure("pages/job.js") and "core/tabs.js" not in closure(
        "pages/run.js"
    )
