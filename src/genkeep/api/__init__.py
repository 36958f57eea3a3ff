"""The HTTP API: FastAPI app, routers, owner resolution and problem+json errors."""
