"""``genkeep owners``: purging everything an owner stored."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from genkeep.cli.common import console, fail, run
from genkeep.cli.common import settings as load_cli_settings
from genkeep.cli.help import Command, Group, examples

owners_app = typer.Typer(
    cls=Group,
    help="Owners' data.",
    epilog=examples("genkeep owners purge alice --yes"),
    no_args_is_help=True,
)


@owners_app.command("purge", cls=Command, epilog=examples("genkeep owners purge alice --yes"))
def owners_purge(
    owner: Annotated[str, typer.Argument(metavar="OWNER", help="The owner whose data goes.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything of OWNER: keys (revoked first), jobs, tasks, artifacts, runs,
    prompts, results and blobs. Crash-safe: run it again to finish a purge cut short."""
    from genkeep.api.deps import OWNER_ID
    from genkeep.db.jobs import Audit
    from genkeep.ops.deletion import purge_owner
    from genkeep.services import close_services, open_services

    if not OWNER_ID.match(owner):
        raise fail("owner must be 1-64 characters of letters, digits, '.', '_' or '-'")
    if not yes and not typer.confirm(f"delete everything of owner {owner}?", default=False):
        raise fail("nothing deleted")
    settings = load_cli_settings()

    async def main() -> dict[str, int]:
        services = await open_services(settings)
        try:
            audit = Audit(actor="cli", trace_id=uuid.uuid4().hex)
            return await purge_owner(services, owner, audit)
        finally:
            await close_services(services)

    counts = run(main())
    shown = ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "nothing"
    console.print(f"purged owner {owner}: {shown}")


def register(app: typer.Typer) -> None:
    app.add_typer(owners_app, name="owners")
