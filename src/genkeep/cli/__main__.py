"""``python -m genkeep.cli``: the `genkeep` command."""

from genkeep.cli.root import main

main()
