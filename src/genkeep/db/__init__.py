"""Database layer: the Database, its drivers, models, repositories, change feeds and migrations."""
