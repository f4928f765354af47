"""The cloud's state in the database: edges (online/offline), EVSEs (limits, plugs, target, status).

The tables (``cloud_edges``, ``cloud_evses``) are defined with every other table in
:mod:`fuseguard.store.schema`; this module is the cloud's repository over them.

Every cloud replica writes here and reads from here; nothing is kept only in memory. Writes are
upserts guarded by the edge's ``seq``/``session`` stamps (:mod:`fuseguard.cloud.protocol`), so the
order in which two replicas apply the same messages does not matter: the newest stamp wins.

Durability: a cloud replica's engine commits without waiting for the disk
(``synchronous_commit=off``; other sessions see a commit at once). These rows are a copy of what
the edges report: statuses and targets come back with the edge's next status (every status
interval), so a database crash that loses the last fraction of a second of commits heals by
itself; an online/offline flag lost that way stays until the edge reconnects, while every replica
connected to the broker answers from its in-memory copy anyway. Tokens are not written here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.api.evse_models import PlugStatusOut
from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, PlugInfoWire
from fuseguard.store.db import insert_for, reading, writing
from fuseguard.store.schema import UtcDateTime, cloud_edges, cloud_evses

if TYPE_CHECKING:
    from fuseguard.cloud.pg import PgConnection, PgPool


@dataclass(frozen=True, slots=True)
class StoredTarget:
    """A target as the cloud last learnt it from the edge."""

    current_a: int
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class TargetWrite:
    """A target an edge acknowledged (None: cleared), stamped with the ack's ``seq``."""

    edge_device_id: str
    evse_uuid: str
    target: StoredTarget | None
    seq: int


@dataclass(frozen=True, slots=True)
class StoredEvse:
    """One EVSE row."""

    edge_device_id: str
    evse_uuid: str
    min_current_a: int
    max_current_a: int
    plugs: list[PlugInfoWire]
    statuses: list[PlugStatusOut]
    target: StoredTarget | None


#: The parameters of a status upsert (:func:`_status_row`) and a state upsert (:func:`_state_row`).
_STATUS_KEYS = (
    "edge_device_id",
    "evse_uuid",
    "min_current_a",
    "max_current_a",
    "plugs_json",
    "statuses_json",
    "status_seq",
    "target_current_a",
    "target_valid_until",
    "target_seq",
)
_STATE_KEYS = ("edge_device_id", "online", "session", "rank")


def _status_row(edge_device_id: str, msg: EvseStatusMessage) -> dict[str, Any]:
    return {
        "edge_device_id": edge_device_id,
        "evse_uuid": msg.evse_uuid,
        "min_current_a": msg.min_current_a,
        "max_current_a": msg.max_current_a,
        "plugs_json": json.dumps([p.model_dump(mode="json") for p in msg.plugs]),
        "statuses_json": json.dumps([s.model_dump(mode="json") for s in msg.statuses]),
        "status_seq": msg.seq,
        "target_current_a": msg.target.current if msg.target else None,
        "target_valid_until": msg.target.valid_until if msg.target else None,
        "target_seq": msg.seq,
    }


@cache
def _status_upsert_stmt(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE guarded by the stamps; parameters are :func:`_status_row`."""
    stmt = insert_for(dialect, cloud_evses)
    ex = stmt.excluded
    status_newer = cloud_evses.c.status_seq < ex.status_seq
    target_newer = cloud_evses.c.target_seq < ex.target_seq

    def pick(new: Any, old: Any, cond: Any) -> Any:
        return sa.case((cond, new), else_=old)

    return stmt.on_conflict_do_update(
        index_elements=[cloud_evses.c.edge_device_id, cloud_evses.c.evse_uuid],
        set_={
            "min_current_a": ex.min_current_a,
            "max_current_a": ex.max_current_a,
            "plugs_json": ex.plugs_json,
            "statuses_json": ex.statuses_json,
            "status_seq": ex.status_seq,
            "target_current_a": pick(
                ex.target_current_a, cloud_evses.c.target_current_a, target_newer
            ),
            "target_valid_until": pick(
                ex.target_valid_until, cloud_evses.c.target_valid_until, target_newer
            ),
            "target_seq": pick(ex.target_seq, cloud_evses.c.target_seq, target_newer),
        },
        where=status_newer,
    )


def _target_row(write: TargetWrite) -> dict[str, Any]:
    target = write.target
    return {
        "k_edge": write.edge_device_id,
        "k_evse": write.evse_uuid,
        "k_seq": write.seq,
        "v_current": target.current_a if target else None,
        "v_valid_until": target.valid_until if target else None,
    }


_TARGET_UPDATE = (
    cloud_evses.update()
    .where(
        cloud_evses.c.edge_device_id == sa.bindparam("k_edge"),
        cloud_evses.c.evse_uuid == sa.bindparam("k_evse"),
        cloud_evses.c.target_seq < sa.bindparam("k_seq"),
    )
    .values(
        target_current_a=sa.bindparam("v_current"),
        target_valid_until=sa.bindparam("v_valid_until", type_=UtcDateTime()),
        target_seq=sa.bindparam("k_seq"),
    )
)

_EVSE_SELECT = sa.select(cloud_evses).where(
    cloud_evses.c.edge_device_id == sa.bindparam("k_edge"),
    cloud_evses.c.evse_uuid == sa.bindparam("k_evse"),
)

_EDGE_ONLINE_SELECT = sa.select(cloud_edges.c.online).where(
    cloud_edges.c.edge_device_id == sa.bindparam("k_edge")
)

_TARGET_SELECT = sa.select(cloud_evses.c.target_current_a, cloud_evses.c.target_valid_until).where(
    cloud_evses.c.edge_device_id == sa.bindparam("k_edge"),
    cloud_evses.c.evse_uuid == sa.bindparam("k_evse"),
)


def _state_row(edge_device_id: str, state: EdgeState) -> dict[str, Any]:
    return {
        "edge_device_id": edge_device_id,
        "online": state.state == "online",
        "session": state.session,
        "rank": 1 if state.state == "offline" else 0,  # offline wins within a session
    }


@cache
def _state_upsert_stmt(dialect: str) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE if newer (session, then rank); rows: :func:`_state_row`."""
    stmt = insert_for(dialect, cloud_edges)
    ex = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[cloud_edges.c.edge_device_id],
        set_={"online": ex.online, "session": ex.session, "rank": ex.rank},
        where=sa.or_(
            cloud_edges.c.session < ex.session,
            sa.and_(cloud_edges.c.session == ex.session, cloud_edges.c.rank < ex.rank),
        ),
    )


def _newest_states(states: Sequence[tuple[str, EdgeState]]) -> list[dict[str, Any]]:
    """One row per edge (the newest stamp), sorted by edge id (the lock order)."""
    newest: dict[str, dict[str, Any]] = {}
    for edge_device_id, state in states:
        row = _state_row(edge_device_id, state)
        old = newest.get(edge_device_id)
        if old is None or (old["session"], old["rank"]) < (row["session"], row["rank"]):
            newest[edge_device_id] = row
    return [newest[k] for k in sorted(newest)]


def _newest_statuses(statuses: Sequence[tuple[str, EvseStatusMessage]]) -> list[dict[str, Any]]:
    """One row per EVSE (the newest ``seq``), sorted by (edge, EVSE) (the lock order)."""
    newest: dict[tuple[str, str], tuple[str, EvseStatusMessage]] = {}
    for edge_device_id, msg in statuses:
        key = (edge_device_id, msg.evse_uuid)
        old = newest.get(key)
        if old is None or old[1].seq < msg.seq:
            newest[key] = (edge_device_id, msg)
    return [_status_row(*newest[k]) for k in sorted(newest)]


def _status_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["edge_device_id"], row["evse_uuid"]


def _target_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["k_edge"], row["k_evse"]


@cache
def _pg_text() -> dict[str, str]:
    """The statements above as PostgreSQL text for :class:`~fuseguard.cloud.pg.PgPool`."""
    from fuseguard.cloud.pg import compiled  # psycopg is needed on PostgreSQL only

    return {
        "evse": compiled(_EVSE_SELECT),
        "online": compiled(_EDGE_ONLINE_SELECT),
        "target": compiled(_TARGET_SELECT),
        "status": compiled(_status_upsert_stmt("postgresql"), list(_STATUS_KEYS)),
        "state": compiled(_state_upsert_stmt("postgresql"), list(_STATE_KEYS)),
        "target_update": compiled(_TARGET_UPDATE),
        # one statement locks its rows in their (sorted) order; two statements need this
        "lock": (
            "SELECT 1 FROM cloud_evses WHERE (edge_device_id, evse_uuid) IN "
            "(SELECT * FROM unnest(%(edges)s::varchar[], %(evses)s::varchar[])) "
            "ORDER BY edge_device_id, evse_uuid FOR UPDATE"
        ),
    }


def _lock_evses(keys: list[tuple[str, str]]) -> Any:
    """``SELECT .. FOR UPDATE`` of the EVSE rows ``keys`` in key order (PostgreSQL)."""
    key = sa.tuple_(cloud_evses.c.edge_device_id, cloud_evses.c.evse_uuid)
    return (
        sa.select(cloud_evses.c.edge_device_id)
        .where(key.in_(keys))
        .order_by(cloud_evses.c.edge_device_id, cloud_evses.c.evse_uuid)
        .with_for_update()
    )


class CloudStore:
    """Edge and EVSE rows of the cloud (SQLite or PostgreSQL).

    With ``pg`` (PostgreSQL only) the per-request reads run on raw psycopg connections
    (:mod:`fuseguard.cloud.pg`), with the same statements as text, and so do the writer's
    batches, on ``pg_write`` (default: ``pg``; the replica gives its one writer a connection of
    its own, so a commit never queues behind the requests' reads).
    """

    def __init__(
        self, engine: AsyncEngine, pg: PgPool | None = None, pg_write: PgPool | None = None
    ) -> None:
        self.engine = engine
        self.pg = pg
        self.pg_write = pg_write if pg_write is not None else pg

    async def apply_edge_state(self, edge_device_id: str, state: EdgeState) -> bool:
        """Record online/offline if newer than what is stored; True when it changed the row."""
        async with writing(self.engine) as conn:
            stmt = _state_upsert_stmt(conn.dialect.name)
            result = await conn.execute(stmt, _state_row(edge_device_id, state))
        return bool(result.rowcount)

    async def edge_online(self, edge_device_id: str) -> bool | None:
        """True/False, or None when the edge never reported."""
        params = {"k_edge": edge_device_id}
        if self.pg is not None:
            row = await self.pg.fetch_one(_pg_text()["online"], params)
        else:
            async with reading(self.engine) as conn:
                row = (await conn.execute(_EDGE_ONLINE_SELECT, params)).first()
        return None if row is None else bool(row[0])

    async def apply_batch(
        self,
        statuses: Sequence[tuple[str, EvseStatusMessage]],
        targets: Sequence[TargetWrite],
        states: Sequence[tuple[str, EdgeState]] = (),
    ) -> tuple[int, int]:
        """Edge states, status upserts, then acknowledged targets, in one transaction.

        One executemany statement each (group commit). Several messages for the same row are
        reduced to the newest first (PostgreSQL may write a row only once per statement);
        targets are applied in order, each guarded by its stamp. Statuses go before targets so
        that a target for an EVSE whose first status is in the same batch finds its row.

        Several replicas write the same rows (every replica receives every status), so on
        PostgreSQL every transaction takes its row locks in ONE order (edges by id, then EVSEs
        by key, locked up front): two replicas' batches can then never deadlock, where
        "statuses, then targets" in each would (A locks X then wants Y while B locks Y then
        wants X; PostgreSQL breaks that only after ``deadlock_timeout``, 1 s). Returns
        (statuses written, targets written).
        """
        rows = _BatchRows(
            _newest_states(states),
            _newest_statuses(statuses),
            sorted((_target_row(t) for t in targets), key=_target_key),
        )
        if not rows.states and not rows.statuses and not rows.targets:
            return 0, 0
        if self.pg_write is not None:
            return await self.pg_write.run(rows.write_pg)
        written_statuses = written_targets = 0
        async with writing(self.engine) as conn:
            dialect = conn.dialect.name
            if rows.states:
                await conn.execute(_state_upsert_stmt(dialect), rows.states)
            if rows.lock_keys(dialect):
                await conn.execute(_lock_evses(rows.lock_keys(dialect)))
            if rows.statuses:
                result = await conn.execute(_status_upsert_stmt(dialect), rows.statuses)
                written_statuses = int(result.rowcount or 0)
            if rows.targets:
                result = await conn.execute(_TARGET_UPDATE, rows.targets)
                written_targets = int(result.rowcount or 0)
        return written_statuses, written_targets

    async def apply_target(
        self,
        edge_device_id: str,
        evse_uuid: str,
        target: StoredTarget | None,
        seq: int,
    ) -> bool:
        """Record the target an edge acknowledged, if ``seq`` is newer than the stored one."""
        _, written = await self.apply_batch(
            (), [TargetWrite(edge_device_id, evse_uuid, target, seq)]
        )
        return bool(written)

    async def evse(self, edge_device_id: str, evse_uuid: str) -> StoredEvse | None:
        """One EVSE row, or None when the edge never reported it."""
        params = {"k_edge": edge_device_id, "k_evse": evse_uuid}
        row: Mapping[str, Any] | None
        if self.pg is not None:
            values = await self.pg.fetch_one(_pg_text()["evse"], params)
            row = None if values is None else dict(zip(cloud_evses.c.keys(), values, strict=True))
        else:
            async with reading(self.engine) as conn:
                found = (await conn.execute(_EVSE_SELECT, params)).first()
            row = None if found is None else dict(found._mapping)
        if row is None:
            return None
        return StoredEvse(
            edge_device_id=row["edge_device_id"],
            evse_uuid=row["evse_uuid"],
            min_current_a=int(row["min_current_a"]),
            max_current_a=int(row["max_current_a"]),
            plugs=[PlugInfoWire.model_validate(p) for p in json.loads(row["plugs_json"])],
            statuses=[PlugStatusOut.model_validate(s) for s in json.loads(row["statuses_json"])],
            target=_stored_target(row["target_current_a"], row["target_valid_until"]),
        )

    async def target(self, edge_device_id: str, evse_uuid: str) -> StoredTarget | None:
        """The EVSE's stored target only (expired or not); None when none or no such EVSE.

        One narrow read for ``GET currentsettings``: no plugs or statuses to decode.
        """
        params = {"k_edge": edge_device_id, "k_evse": evse_uuid}
        if self.pg is not None:
            row = await self.pg.fetch_one(_pg_text()["target"], params)
        else:
            async with reading(self.engine) as conn:
                row = (await conn.execute(_TARGET_SELECT, params)).first()
        return None if row is None else _stored_target(row[0], row[1])

    async def edges(self) -> dict[str, bool]:
        """Every known edge and whether it is online."""
        async with reading(self.engine) as conn:
            rows = (
                await conn.execute(sa.select(cloud_edges.c.edge_device_id, cloud_edges.c.online))
            ).all()
        return {str(r[0]): bool(r[1]) for r in rows}

    async def evse_statuses(self) -> dict[tuple[str, str], list[PlugStatusOut]]:
        """The newest plug statuses of every EVSE, keyed by (edge id, EVSE uuid)."""
        async with reading(self.engine) as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        cloud_evses.c.edge_device_id,
                        cloud_evses.c.evse_uuid,
                        cloud_evses.c.statuses_json,
                    )
                )
            ).all()
        return {
            (str(r[0]), str(r[1])): [PlugStatusOut.model_validate(s) for s in json.loads(r[2])]
            for r in rows
        }


def _stored_target(current_a: int | None, valid_until: datetime | None) -> StoredTarget | None:
    if current_a is None or valid_until is None:
        return None
    if valid_until.tzinfo is None:  # SQLite through raw access; SQLAlchemy's type adds UTC
        valid_until = valid_until.replace(tzinfo=UTC)
    return StoredTarget(int(current_a), valid_until.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class _BatchRows:
    """The rows of one writer batch, each list sorted in the global lock order."""

    states: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    targets: list[dict[str, Any]]

    def lock_keys(self, dialect: str) -> list[tuple[str, str]]:
        """The EVSE rows to lock up front (PostgreSQL, statuses and targets, > 1 row)."""
        if dialect != "postgresql" or not self.statuses or not self.targets:
            return []
        keys = {_status_key(r) for r in self.statuses} | {_target_key(r) for r in self.targets}
        return sorted(keys) if len(keys) > 1 else []

    async def write_pg(self, conn: PgConnection) -> tuple[int, int]:
        """The batch in one transaction on a raw psycopg connection.

        A batch of one row is one statement in autocommit (atomic by itself): no BEGIN and
        COMMIT round trips, ~0.13 instead of ~0.33 ms of CPU. Under load many batches are one
        acknowledged target or one status.
        """
        text = _pg_text()
        if len(self.states) + len(self.statuses) + len(self.targets) == 1:
            for key, rows in (("state", self.states), ("status", self.statuses)):
                if rows:
                    cur = await conn.execute(text[key], rows[0], prepare=True)
                    return int(key == "status" and cur.rowcount > 0), 0
            cur = await conn.execute(text["target_update"], self.targets[0], prepare=True)
            return 0, int(cur.rowcount > 0)
        written_statuses = written_targets = 0
        async with conn.transaction():
            cur = conn.cursor()
            if self.states:
                await cur.executemany(text["state"], self.states)
            keys = self.lock_keys("postgresql")
            if keys:
                edges, evses = zip(*keys, strict=True)
                await cur.execute(text["lock"], {"edges": list(edges), "evses": list(evses)})
            if self.statuses:
                await cur.executemany(text["status"], self.statuses)
                written_statuses = max(cur.rowcount, 0)
            if self.targets:
                await cur.executemany(text["target_update"], self.targets)
                written_targets = max(cur.rowcount, 0)
        return written_statuses, written_targets
