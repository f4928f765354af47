"""``fuseguard user add|list|remove``: users of the web dashboard.

The password is read from a prompt (hidden, asked twice) or, for scripts, from ``--password-stdin``
(one line on stdin); it is never a command-line argument (it would show in ``ps`` and the shell
history). Only an argon2id hash is stored. The database comes from ``--config FILE`` or ``--db URL``
like ``fuseguard token``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from fuseguard.cli.token import ConfigOption, DbOption, edge_context_from_config, logs_to_stderr

if TYPE_CHECKING:
    from fuseguard.store.web import WebUserRepository

T = TypeVar("T")

user_app = typer.Typer(help="Web dashboard users (passwords stored as argon2 hashes).")


def _db_url(db: str | None, config: ConfigOption) -> str:
    logs_to_stderr()
    if db is not None:
        return db
    if config is not None:
        return edge_context_from_config(config).db_url
    typer.echo("give --config FILE or --db URL", err=True)
    raise typer.Exit(code=2)


def with_user_repo(url: str, action: Callable[[WebUserRepository], Awaitable[T]]) -> T:
    """Open the store at ``url`` (schema created if missing), run ``action``, close it."""
    from fuseguard.store.db import open_store
    from fuseguard.store.web import WebUserRepository

    async def run() -> T:
        engine = await open_store(url)
        try:
            return await action(WebUserRepository(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="user name (letters, digits, _ . @ -)")],
    role: Annotated[str, typer.Option("--role", help="admin or viewer")] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="change the password/role of an existing user")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a user (or with --replace: set a new password and role)."""
    from fuseguard.store.web import Role, check_password, check_user_name

    url = _db_url(db, config)
    try:
        check_user_name(name)
        parsed_role = Role(role)
    except ValueError as err:
        typer.echo(f"fuseguard user add: {err}", err=True)
        raise typer.Exit(code=2) from err
    password = _read_password(password_stdin)
    try:
        check_password(password)
        with_user_repo(url, lambda r: r.add(name, password, parsed_role, replace=replace))
    except ValueError as err:
        typer.echo(f"fuseguard user add: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"user {name} ({parsed_role.value}) saved")


@user_app.command("list")
def list_(db: DbOption = None, config: ConfigOption = None) -> None:
    """List users (name, role, created); never passwords."""
    users = with_user_repo(_db_url(db, config), lambda r: r.list())
    typer.echo(f"{'user':32}  {'role':8}  created")
    for user in users:
        created = user.created_at.isoformat(timespec="seconds")
        typer.echo(f"{user.name:32}  {user.role.value:8}  {created}")


@user_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="user name")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a user (open dashboard sessions can no longer write; they end when idle)."""
    if not with_user_repo(_db_url(db, config), lambda r: r.remove(name)):
        typer.echo(f"no user {name}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"removed {name}")


def register(app: typer.Typer) -> None:
    """Add the ``user`` group (add NAME, list, remove NAME) to ``app``."""
    app.add_typer(user_app, name="user")


__all__ = ["register", "user_app", "with_user_repo"]
