"""EVSE API tokens: one per EVSE, printed once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.logging import LOGGED_ID_CHARS
from fuseguard.model.clock import Clock, RealClock
from fuseguard.store.db import reading, writing
from fuseguard.store.schema import evse_tokens

log = structlog.get_logger(__name__)


TokenCheck = Literal["ok", "missing", "invalid", "wrong_evse"]
TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token (tokens are 256-bit random, so no salt/KDF is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is stored about a token (never the token itself)."""

    id: str
    edge_device_id: str
    evse_uuid: str
    created_at: datetime


HASHES_OF_EVSE = sa.select(evse_tokens.c.token_sha256).where(
    evse_tokens.c.edge_device_id == sa.bindparam("k_edge"),
    evse_tokens.c.evse_uuid == sa.bindparam("k_evse"),
)
"""The stored token hashes of one EVSE (parameters ``k_edge``, ``k_evse``)."""
TOKEN_BY_HASH = sa.select(evse_tokens.c.id).where(
    evse_tokens.c.token_sha256 == sa.bindparam("k_hash")
)
"""A token with the hash ``k_hash``, of any EVSE."""


class TokenRepository:
    """Create, check, list and revoke EVSE tokens in the database."""

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock: Clock = clock if clock is not None else RealClock()

    async def create(self, edge_device_id: str, evse_uuid: str) -> str:
        """Create a token for one EVSE and return it in plain text (the only time it is seen)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        token_id = uuid.uuid4().hex
        async with writing(self._engine) as conn:
            await conn.execute(
                evse_tokens.insert().values(
                    id=token_id,
                    edge_device_id=edge_device_id,
                    evse_uuid=evse_uuid,
                    token_sha256=hash_token(token),
                    created_at=self._clock.now(),
                )
            )
        log.info("token_created", edge=edge_device_id, evse=evse_uuid, token_id=token_id)
        return token

    async def check(self, edge_device_id: str, evse_uuid: str, token: str | None) -> TokenCheck:
        """``ok`` for a token of this EVSE; ``wrong_evse`` for a valid token of another one."""
        if not token:
            return "missing"
        digest = hash_token(token)
        matched = False
        for stored in await self._hashes_of(edge_device_id, evse_uuid):
            matched |= hmac.compare_digest(stored, digest)
        if matched:
            return "ok"
        if await self._hash_known(digest):
            # the ids are the client's (path segments): cut for the log
            edge, evse = edge_device_id[:LOGGED_ID_CHARS], evse_uuid[:LOGGED_ID_CHARS]
            log.warning("token_wrong_evse", edge=edge, evse=evse, reason="misuse")
            return "wrong_evse"
        return "invalid"

    async def _hashes_of(self, edge_device_id: str, evse_uuid: str) -> list[str]:
        """The stored token hashes of one EVSE."""
        params = {"k_edge": edge_device_id, "k_evse": evse_uuid}
        async with reading(self._engine) as conn:
            return [str(r[0]) for r in (await conn.execute(HASHES_OF_EVSE, params)).all()]

    async def _hash_known(self, digest: str) -> bool:
        """Some EVSE has a token with this hash."""
        async with reading(self._engine) as conn:
            found = (await conn.execute(TOKEN_BY_HASH, {"k_hash": digest})).first()
        return found is not None

    async def list(self, edge_device_id: str | None = None) -> list[TokenInfo]:
        """Tokens (metadata only), optionally of one edge, oldest first."""
        query = sa.select(
            evse_tokens.c.id,
            evse_tokens.c.edge_device_id,
            evse_tokens.c.evse_uuid,
            evse_tokens.c.created_at,
        ).order_by(evse_tokens.c.created_at, evse_tokens.c.id)
        if edge_device_id is not None:
            query = query.where(evse_tokens.c.edge_device_id == edge_device_id)
        async with reading(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        return [TokenInfo(r.id, r.edge_device_id, r.evse_uuid, r.created_at) for r in rows]

    async def revoke(self, token_id: str) -> bool:
        """Delete a token by id; False when there was no such token."""
        async with writing(self._engine) as conn:
            result = await conn.execute(evse_tokens.delete().where(evse_tokens.c.id == token_id))
        revoked = result.rowcount > 0
        log.info("token_revoked" if revoked else "token_revoke_unknown", token_id=token_id)
        return revoked
