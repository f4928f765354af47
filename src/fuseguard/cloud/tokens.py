"""EVSE tokens of a cloud replica: :class:`~fuseguard.store.tokens.TokenRepository`, with the
per-request check on raw psycopg when the database is PostgreSQL (:mod:`fuseguard.cloud.pg`).

The check is the repository's, statement for statement: the stored SHA-256 hashes of the EVSE's
tokens compared in constant time with the hash of the presented one, then (only when none
matches) whether the hash belongs to another EVSE (403 instead of 401). Nothing is cached: a
revoked token is refused by the very next request, on every replica.
"""

from __future__ import annotations

import hmac
from functools import cache
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.store.schema import evse_tokens
from fuseguard.store.tokens import TokenCheck, TokenRepository, hash_token

if TYPE_CHECKING:
    from fuseguard.cloud.pg import PgPool

log = structlog.get_logger(__name__)

_HASHES_OF_EVSE = sa.select(evse_tokens.c.token_sha256).where(
    evse_tokens.c.edge_device_id == sa.bindparam("k_edge"),
    evse_tokens.c.evse_uuid == sa.bindparam("k_evse"),
)
_TOKEN_BY_HASH = sa.select(evse_tokens.c.id).where(
    evse_tokens.c.token_sha256 == sa.bindparam("k_hash")
)


@cache
def _pg_text() -> tuple[str, str]:
    from fuseguard.cloud.pg import compiled  # psycopg is needed on PostgreSQL only

    return compiled(_HASHES_OF_EVSE), compiled(_TOKEN_BY_HASH)


class CloudTokens(TokenRepository):
    """The token repository; ``check`` runs on ``pg`` when given (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, pg: PgPool | None = None) -> None:
        super().__init__(engine)
        self._pg = pg

    async def check(self, edge_device_id: str, evse_uuid: str, token: str | None) -> TokenCheck:
        """``ok`` for a token of this EVSE; ``wrong_evse`` for a valid token of another one."""
        pg = self._pg
        if pg is None:
            return await super().check(edge_device_id, evse_uuid, token)
        if not token:
            return "missing"
        digest = hash_token(token)
        hashes_sql, by_hash_sql = _pg_text()
        rows = await pg.fetch_all(hashes_sql, {"k_edge": edge_device_id, "k_evse": evse_uuid})
        matched = False
        for (stored,) in rows:
            matched |= hmac.compare_digest(stored, digest)
        if matched:
            return "ok"
        if await pg.fetch_one(by_hash_sql, {"k_hash": digest}) is not None:
            log.warning("token_wrong_evse", edge=edge_device_id, evse=evse_uuid, reason="misuse")
            return "wrong_evse"
        return "invalid"
