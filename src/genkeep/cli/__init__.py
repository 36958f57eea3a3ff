"""The `genkeep` command line: one Typer module per command group."""
