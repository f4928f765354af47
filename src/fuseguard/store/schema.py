"""The database schema: ONE :class:`~sqlalchemy.MetaData` holding every table, edge and cloud.

:func:`fuseguard.store.db.init_schema` creates exactly these tables, whoever calls it (the edge,
the cloud, the token CLI), so the schema of a database never depends on which modules happened to
be imported first. An edge database therefore also holds the (empty) cloud tables. Repositories
import their tables from here; no other module defines a table.

========================  =================================================================
table                     written by
========================  =================================================================
``schema_version``        :func:`fuseguard.store.db.init_schema` (one row per component)
``evse_tokens``           :class:`fuseguard.store.tokens.TokenRepository` (edge and cloud)
``evse_targets``          :class:`fuseguard.store.targets.SqlTargetStore` (edge)
``cloud_edges``           :class:`fuseguard.cloud.store.CloudStore` (online/offline stamps)
``cloud_evses``           :class:`fuseguard.cloud.store.CloudStore` (limits, plugs, target)
``web_users``             :class:`fuseguard.store.web.WebUserRepository` (dashboard logins)
``web_events``            :class:`fuseguard.store.web.WebEventRepository` (dashboard audit log)
``history_samples``       :class:`fuseguard.store.history.HistoryRepository` (1 s, main circuit)
``history_minutes``       :class:`fuseguard.store.history.HistoryRepository` (1 min min/mean/max)
``history_circuit_max``   :class:`fuseguard.store.history.HistoryRepository` (per circuit, 1 min)
``history_exceedances``   :class:`fuseguard.store.history.HistoryRepository` (seconds over limit)
``charge_sessions``       :class:`fuseguard.store.history.HistoryRepository` (one per session)
========================  =================================================================

A change to a table needs a bump of :data:`fuseguard.store.db.SCHEMA_VERSION` and a migration;
adding a new table does not (``create_all`` adds missing tables to existing databases).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Aware datetimes only; stored in UTC (naive on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "UtcDateTime needs a timezone-aware datetime"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Always an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# --- bookkeeping --------------------------------------------------------------------------------

schema_version_table = sa.Table(
    "schema_version",
    metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# --- edge and cloud: EVSE API tokens and targets ------------------------------------------------

evse_tokens = sa.Table(
    "evse_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("edge_device_id", sa.String(128), nullable=False),
    sa.Column("evse_uuid", sa.String(64), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_evse_tokens_edge_evse", "edge_device_id", "evse_uuid"),
)

evse_targets = sa.Table(
    "evse_targets",
    metadata,
    sa.Column("edge_device_id", sa.String(128), primary_key=True),
    sa.Column("evse_uuid", sa.String(64), primary_key=True),
    sa.Column("current_a", sa.Integer, nullable=False),
    sa.Column("valid_until", UtcDateTime, nullable=False),
)

# --- cloud: what the edges last reported --------------------------------------------------------

cloud_edges = sa.Table(
    "cloud_edges",
    metadata,
    sa.Column("edge_device_id", sa.String(128), primary_key=True),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("session", sa.BigInteger, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),  # 0 online, 1 offline: offline wins in a session
)

cloud_evses = sa.Table(
    "cloud_evses",
    metadata,
    sa.Column("edge_device_id", sa.String(128), primary_key=True),
    sa.Column("evse_uuid", sa.String(64), primary_key=True),
    sa.Column("min_current_a", sa.Integer, nullable=False),
    sa.Column("max_current_a", sa.Integer, nullable=False),
    sa.Column("plugs_json", sa.Text, nullable=False),
    sa.Column("statuses_json", sa.Text, nullable=False),
    sa.Column("status_seq", sa.BigInteger, nullable=False),
    sa.Column("target_current_a", sa.Integer, nullable=True),
    sa.Column("target_valid_until", UtcDateTime, nullable=True),
    sa.Column("target_seq", sa.BigInteger, nullable=False),
)

# --- edge: web dashboard users and its audit/event log ------------------------------------------

web_users = sa.Table(
    "web_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),  # argon2id, PHC string
    sa.Column("role", sa.String(16), nullable=False),  # "admin" | "viewer"
    sa.Column("created_at", UtcDateTime, nullable=False),
)

web_events = sa.Table(
    "web_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("message", sa.String(1000), nullable=False),
    sa.Index("ix_web_events_time", "time"),
)

# --- edge: history (1 s samples, 1 min aggregates), compliance and charging sessions -------------

#: The per-phase series of the main circuit in the history tables (``<series>_l1`` .. ``_l3``).
HISTORY_SERIES = ("grid", "limit", "ev", "non_ev")
_PHASE_COLUMNS = tuple(f"{s}_l{i}" for s in HISTORY_SERIES for i in (1, 2, 3))

history_samples = sa.Table(
    "history_samples",
    metadata,
    sa.Column("time", UtcDateTime, primary_key=True),  # whole seconds
    *(sa.Column(name, sa.Float, nullable=False) for name in _PHASE_COLUMNS),
    sa.Column("meter_ok", sa.Boolean, nullable=False),
    sa.Column("pv_w", sa.Float, nullable=True),  # PV production (W, > 0 producing), NULL: none
)

history_minutes = sa.Table(
    "history_minutes",
    metadata,
    sa.Column("time", UtcDateTime, primary_key=True),  # start of the minute
    sa.Column("samples", sa.Integer, nullable=False),
    *(
        sa.Column(f"{name}_{agg}", sa.Float, nullable=False)
        for name in _PHASE_COLUMNS
        for agg in ("min", "mean", "max")
    ),
    *(sa.Column(f"pv_w_{agg}", sa.Float, nullable=True) for agg in ("min", "mean", "max")),
)

history_circuit_max = sa.Table(
    "history_circuit_max",
    metadata,
    sa.Column("time", UtcDateTime, primary_key=True),  # start of the minute
    sa.Column("circuit", sa.String(64), primary_key=True),
    sa.Column("max_l1", sa.Float, nullable=False),
    sa.Column("max_l2", sa.Float, nullable=False),
    sa.Column("max_l3", sa.Float, nullable=False),
    sa.Column("fuse_l1", sa.Float, nullable=False),
    sa.Column("fuse_l2", sa.Float, nullable=False),
    sa.Column("fuse_l3", sa.Float, nullable=False),
)

history_exceedances = sa.Table(
    "history_exceedances",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UtcDateTime, nullable=False),
    sa.Column("circuit", sa.String(64), nullable=False),
    sa.Column("phase", sa.String(2), nullable=False),
    sa.Column("current_a", sa.Float, nullable=False),
    sa.Column("limit_a", sa.Float, nullable=False),
    sa.Column("fuse_a", sa.Float, nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Index("ix_history_exceedances_time", "time"),
)

charge_sessions = sa.Table(
    "charge_sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("plug_id", sa.String(64), nullable=False),
    sa.Column("plug_label", sa.String(128), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),  # NULL while the session is open
    sa.Column("energy_wh", sa.Float, nullable=True),
    sa.Column("max_current_a", sa.Float, nullable=False),
    sa.Column("mean_current_a", sa.Float, nullable=False),
    sa.Column("charging_s", sa.Integer, nullable=False),  # seconds with current flowing
    sa.Column("id_tag", sa.String(20), nullable=True),  # OCPP idTag, where the charger says it
    sa.Index("ix_charge_sessions_started", "started_at"),
)

#: Columns added by schema version 2 (PV production in the history), per table.
PV_COLUMNS: dict[str, tuple[str, ...]] = {
    "history_samples": ("pv_w",),
    "history_minutes": ("pv_w_min", "pv_w_mean", "pv_w_max"),
}


def _add_missing_columns(conn: sa.Connection, columns_of: dict[str, dict[str, str]]) -> None:
    inspector = sa.inspect(conn)
    for table, columns in columns_of.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for column, sql_type in columns.items():
            if column not in present:
                conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def add_history_pv(conn: sa.Connection) -> None:
    """Migration 1 -> 2: the nullable PV columns of the history tables (where still missing)."""
    _add_missing_columns(
        conn, {table: dict.fromkeys(columns, "FLOAT") for table, columns in PV_COLUMNS.items()}
    )


def add_session_id_tag(conn: sa.Connection) -> None:
    """Migration 2 -> 3: the nullable OCPP idTag of a charging session (where still missing)."""
    _add_missing_columns(conn, {"charge_sessions": {"id_tag": "VARCHAR(20)"}})


__all__ = [
    "HISTORY_SERIES",
    "PV_COLUMNS",
    "UtcDateTime",
    "add_history_pv",
    "add_session_id_tag",
    "charge_sessions",
    "cloud_edges",
    "cloud_evses",
    "evse_targets",
    "evse_tokens",
    "history_circuit_max",
    "history_exceedances",
    "history_minutes",
    "history_samples",
    "metadata",
    "schema_version_table",
    "web_events",
    "web_users",
]
