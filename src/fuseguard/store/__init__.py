"""Storage: SQLAlchemy 2 async Core on SQLite (default) or PostgreSQL, with schema versioning.

:mod:`~fuseguard.store.schema` holds every table; :mod:`~fuseguard.store.db` the engine, the
write lock and :func:`init_schema`; the repositories (tokens, targets) sit on top.
"""

from fuseguard.store.db import (
    SCHEMA_VERSION,
    SchemaVersionError,
    create_engine,
    default_sqlite_url,
    init_schema,
    open_store,
    writing,
)
from fuseguard.store.schema import UtcDateTime, metadata

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
