"""The console's ES modules as a graph, read from their import and export lines."""

from __future__ import annotations

import re
from pathlib import Path

import genkeep.console

STATIC = Path(genkeep.console.__file__).resolve().parent / "static"
# The one import form the modules use; any other import line fails ``imports``.
IMPORT = re.compile(r'^import \{ ([\w$, ]+) \} from "(\.\.?/[\w/-]+\.js)";$')
EXPORT = re.compile(r"^export (?:async function|function|const|class) ([\w$]+)", re.M)


def modules() -> list[str]:
    """Every module, as its path under static/ ("core/api.js")."""
    return sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js"))


def imports(module: str) -> dict[str, set[str]]:
    """The modules ``module`` imports (paths under static/), each with the names it takes."""
    found: dict[str, set[str]] = {}
    for line in (STATIC / module).read_text(encoding="utf-8").splitlines():
        if not line.startswith("import"):
            continue
        match = IMPORT.match(line)
        assert match, f"{module}: an import this reader does not know: {line}"
        target = (STATIC / module).parent.joinpath(match[2]).resolve().relative_to(STATIC)
        found.setdefault(target.as_posix(), set()).update(n.strip() for n in match[1].split(","))
    return found


def exports(module: str) -> set[str]:
    return set(EXPORT.findall((STATIC / module).read_text(encoding="utf-8")))


def closure(module: str) -> set[str]:
    """``module`` and every module it needs, directly or not: what a page loads."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports(current))
    return seen
