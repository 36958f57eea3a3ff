"""Database layer: engine, models, dialect seam, repositories and migrations."""
