"""The web console: server-rendered pages over the public HTTP API (issue 10)."""

from genkeep.console.routes import install

__all__ = ["install"]
