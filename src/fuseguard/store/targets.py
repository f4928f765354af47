"""Persisted EVSE current targets (:class:`fuseguard.control.targets.TargetStore` on SQL)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.control.targets import Target
from fuseguard.store.db import dialect_insert, writing
from fuseguard.store.schema import evse_targets


class SqlTargetStore:
    """Targets of one edge device in the ``evse_targets`` table."""

    def __init__(self, engine: AsyncEngine, edge_device_id: str) -> None:
        self._engine = engine
        self._edge = edge_device_id

    async def load_all(self) -> dict[str, Target]:
        """Every stored target of this edge by EVSE uuid."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        evse_targets.c.evse_uuid,
                        evse_targets.c.current_a,
                        evse_targets.c.valid_until,
                    ).where(evse_targets.c.edge_device_id == self._edge)
                )
            ).all()
        return {r.evse_uuid: Target(int(r.current_a), r.valid_until) for r in rows}

    async def get(self, evse_uuid: str) -> Target | None:
        """One stored target (expired or not)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(evse_targets.c.current_a, evse_targets.c.valid_until).where(
                        evse_targets.c.edge_device_id == self._edge,
                        evse_targets.c.evse_uuid == evse_uuid,
                    )
                )
            ).first()
        return None if row is None else Target(int(row.current_a), row.valid_until)

    async def save(self, evse_uuid: str, target: Target | None) -> None:
        """Upsert (ON CONFLICT DO UPDATE on SQLite and PostgreSQL) or delete."""
        async with writing(self._engine) as conn:
            if target is None:
                await conn.execute(
                    evse_targets.delete().where(
                        evse_targets.c.edge_device_id == self._edge,
                        evse_targets.c.evse_uuid == evse_uuid,
                    )
                )
                return
            stmt = dialect_insert(conn, evse_targets).values(
                edge_device_id=self._edge,
                evse_uuid=evse_uuid,
                current_a=target.current_a,
                valid_until=target.valid_until,
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[evse_targets.c.edge_device_id, evse_targets.c.evse_uuid],
                    set_={"current_a": target.current_a, "valid_until": target.valid_until},
                )
            )
