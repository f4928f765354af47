"""Storage: SQLAlchemy 2 async Core on SQLite (default) or PostgreSQL, with schema versioning."""

from fuseguard.store.db import (
    SCHEMA_VERSION,
    SchemaVersionError,
    UtcDateTime,
    create_engine,
    default_sqlite_url,
    init_schema,
    metadata,
    open_store,
    writing,
)

__all__ = [
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "UtcDateTime",
    "create_engine",
    "default_sqlite_url",
    "init_schema",
    "metadata",
    "open_store",
    "writing",
]
