"""How ``--help`` reads: usage lines as ``genkeep extract [OPTIONS] INPUT``, flags untyped,
and an example under every command and group.

Typer's own rendering shows ``{input_file}`` in usage lines and ``<bool>`` beside every flag.
Typer (0.29+) carries its own copy of click, so its classes come from there.
"""

from __future__ import annotations

from typer._click import core as click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _tidy(params: list[click.Parameter]) -> list[click.Parameter]:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # a flag takes no value: nothing to show
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "value").upper()
    return params


def _usage(command: click.Command, ctx: click.Context) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = param.metavar or (param.name or "").upper()
            name += "..." if param.nargs != 1 else ""
            pieces.append(name if param.required else f"[{name}]")
    return pieces


class Command(TyperCommand):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _tidy(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return _usage(self, ctx)


class Group(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return _tidy(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*_usage(self, ctx), self.subcommand_metavar or "COMMAND [ARGS]..."]


def examples(*lines: str) -> str:
    """The epilog of a help page: one command to copy per line."""
    return "\n".join(
        ["Example:" if len(lines) == 1 else "Examples:", *(f"  {line}" for line in lines)]
    )
