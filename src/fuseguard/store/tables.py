"""The store's own tables (registered on :data:`fuseguard.store.db.metadata`)."""

from __future__ import annotations

import sqlalchemy as sa

from fuseguard.store.db import UtcDateTime, metadata

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
