"""EVSE tokens of a cloud replica: :class:`~fuseguard.store.tokens.TokenRepository`, with the
per-request check on raw psycopg when the database is PostgreSQL (:mod:`fuseguard.cloud.pg`).

The check is the repository's, statement for statement: the stored SHA-256 hashes of the EVSE's
tokens compared in constant time with the hash of the presented one, then (only when none
matches) whether the hash belongs to another EVSE (403 instead of 401). Nothing is cached: a
revoked token is refused by the very next request, on every replica.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.store.tokens import HASHES_OF_EVSE, TOKEN_BY_HASH, TokenRepository

if TYPE_CHECKING:
    from fuseguard.cloud.pg import PgPool


@cache
def _pg_text() -> tuple[str, str]:
    from fuseguard.cloud.pg import compiled  # psycopg is needed on PostgreSQL only

    return compiled(HASHES_OF_EVSE), compiled(TOKEN_BY_HASH)


class CloudTokens(TokenRepository):
    """The token repository whose ``check`` reads on ``pg`` when given (module docstring)."""

    def __init__(self, engine: AsyncEngine, pg: PgPool | None = None) -> None:
        super().__init__(engine)
        self._pg = pg

    async def _hashes_of(self, edge_device_id: str, evse_uuid: str) -> list[str]:
        if self._pg is None:
            return await super()._hashes_of(edge_device_id, evse_uuid)
        params = {"k_edge": edge_device_id, "k_evse": evse_uuid}
        return [str(r[0]) for r in await self._pg.fetch_all(_pg_text()[0], params)]

    async def _hash_known(self, digest: str) -> bool:
        if self._pg is None:
            return await super()._hash_known(digest)
        return await self._pg.fetch_one(_pg_text()[1], {"k_hash": digest}) is not None
