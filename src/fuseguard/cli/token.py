"""``fuseguard token create|list|revoke``: EVSE API tokens on the command line.

The token is printed once (stdout, alone on its line, so scripts can capture it); only its SHA-256
hash is stored. The database comes from ``--config FILE`` (``[storage] url`` or the SQLite file in
``data_dir``; the edge id is ``site.edge_id``) or from ``--db URL`` (then ``--edge`` is required).
:func:`with_token_repo` and :func:`logs_to_stderr` are shared with ``fuseguard cloud token``
(:mod:`fuseguard.cli.cloud`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from fuseguard.store.tokens import TokenRepository

T = TypeVar("T")

DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL (sqlite:///file.db, postgresql://...)")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="site config (TOML): storage and edge id")
]
EdgeOption = Annotated[str | None, typer.Option("--edge", help="edge device id")]

token_app = typer.Typer(
    help="EVSE API tokens (printed once, stored only as a hash).", no_args_is_help=True
)


@dataclass(frozen=True, slots=True)
class TokenContext:
    """Where tokens live and, when known, this edge's id and EVSEs."""

    db_url: str
    edge_device_id: str | None = None
    evse_uuids: frozenset[str] | None = None


def edge_context_from_config(path: Path) -> TokenContext:
    """Storage URL, ``site.edge_id`` and the configured EVSE uuids of an edge config."""
    from fuseguard.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=2) from err
    return TokenContext(
        db_url=cfg.storage_url,
        edge_device_id=cfg.site.edge_id,
        evse_uuids=frozenset(ch.evse_uuid for ch in cfg.chargers),
    )


def logs_to_stderr() -> None:
    """Keep stdout for the token: when nobody configured logging yet, log warnings to stderr."""
    import structlog

    if not structlog.is_configured():
        from fuseguard.logging import configure_logging

        configure_logging("warning")


def _resolve(db: str | None, config: Path | None) -> TokenContext:
    logs_to_stderr()
    if config is not None:
        ctx = edge_context_from_config(config)
        return TokenContext(db or ctx.db_url, ctx.edge_device_id, ctx.evse_uuids)
    if db is None:
        typer.echo("give --config FILE or --db URL", err=True)
        raise typer.Exit(code=2)
    return TokenContext(db)


def with_token_repo(url: str, action: Callable[[TokenRepository], Awaitable[T]]) -> T:
    """Open the store at ``url`` (schema created if missing), run ``action``, close the store."""
    from fuseguard.store.db import open_store
    from fuseguard.store.tokens import TokenRepository

    async def run() -> T:
        engine = await open_store(url)
        try:
            return await action(TokenRepository(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@token_app.command("create")
def create(
    evse: Annotated[str, typer.Option("--evse", help="EVSE uuid (32 lowercase hex)")],
    edge: EdgeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a token for one EVSE and print it (the only time it is shown)."""
    from fuseguard.model.ids import is_hex_uuid

    ctx = _resolve(db, config)
    edge_id = edge or ctx.edge_device_id
    if edge_id is None:
        typer.echo("--edge is required without --config", err=True)
        raise typer.Exit(code=2)
    if not is_hex_uuid(evse):
        typer.echo(f"--evse {evse!r} is not a uuid of 32 lowercase hex characters", err=True)
        raise typer.Exit(code=2)
    if ctx.evse_uuids is not None and evse not in ctx.evse_uuids:
        typer.echo(f"--evse {evse} is not a charger of this edge's config", err=True)
        raise typer.Exit(code=2)
    token = with_token_repo(ctx.db_url, lambda r: r.create(edge_id, evse))
    typer.echo(token)
    typer.echo(
        f"token for edge {edge_id} EVSE {evse}; store it now, it is not shown again", err=True
    )


@token_app.command("list")
def list_(
    edge: EdgeOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List tokens (id, edge, EVSE, created); never the tokens themselves."""
    ctx = _resolve(db, config)
    infos = with_token_repo(ctx.db_url, lambda r: r.list(edge or ctx.edge_device_id))
    typer.echo(f"{'id':32}  {'edge':20}  {'evse':32}  created")
    for info in infos:
        typer.echo(
            f"{info.id:32}  {info.edge_device_id:20}  {info.evse_uuid:32}  "
            f"{info.created_at.isoformat(timespec='seconds')}"
        )


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="token id from `token list`")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke (delete) a token by id."""
    ctx = _resolve(db, config)
    if not with_token_repo(ctx.db_url, lambda r: r.revoke(token_id)):
        typer.echo(f"no token with id {token_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {token_id}")


def register(app: typer.Typer) -> None:
    """Add the ``token`` group (create --evse UUID, list, revoke ID) to ``app``."""
    app.add_typer(token_app, name="token")
