"""Plain shared types and helpers every room may use: hashes, Generation, bounded integers."""
