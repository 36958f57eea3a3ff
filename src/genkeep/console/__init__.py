"""The web console: server-rendered pages over the public HTTP API."""

from genkeep.console.routes import install

__all__ = ["install"]
