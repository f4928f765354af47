"""``fuseguard cloud``: run a cloud replica; manage EVSE tokens and broker credentials.

* ``fuseguard cloud [--config cloud.toml] [--embedded-broker]``
* ``fuseguard cloud token create --edge ID --evse UUID`` (prints it once), ``list``, ``revoke``
* ``fuseguard cloud broker-files --edge ID ... --out DIR`` (Mosquitto password, ACL and conf files)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fuseguard.cli.token import logs_to_stderr, with_token_repo

if TYPE_CHECKING:
    from fuseguard.cloud.config import CloudSettings

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="cloud.toml (default: built-in defaults)")
]

cloud_app = typer.Typer(
    help="The multi-edge cloud for the Direct EVSE Control API.", invoke_without_command=True
)
token_app = typer.Typer(help="EVSE API tokens in the cloud database.", no_args_is_help=True)
cloud_app.add_typer(token_app, name="token")


def _settings(config: Path | None) -> CloudSettings:
    from fuseguard.cloud.config import load_cloud_settings

    try:
        return load_cloud_settings(config)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


def _db_url(config: Path | None) -> str:
    """The cloud database; logs go to stderr so that stdout carries only the command's output."""
    logs_to_stderr()
    return _settings(config).database.url


@cloud_app.callback()
def cloud(
    ctx: typer.Context,
    config: ConfigOpt = None,
    embedded_broker: Annotated[
        bool, typer.Option("--embedded-broker", help="run an in-process amqtt broker")
    ] = False,
    loop: Annotated[
        str | None,
        typer.Option("--loop", help="auto | uvloop | asyncio (default: server.loop, auto)"),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option("--http", help="auto | httptools | h11 (default: server.http, auto)"),
    ] = None,
) -> None:
    """Run one cloud replica (HTTP API on :3032, MQTT to the edges) until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from fuseguard.cloud.app import run_cloud

    settings = _settings(config)
    chosen = {k: v for k, v in (("loop", loop), ("http", http)) if v is not None}
    if chosen:
        try:
            server = type(settings.server).model_validate(settings.server.model_dump() | chosen)
        except ValueError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2) from err
        settings = settings.model_copy(update={"server": server})
    typer.echo(
        f"fuseguard cloud: API http://{settings.server.host}:{settings.server.port} "
        f"broker {settings.broker.url}{' (embedded)' if embedded_broker else ''} "
        f"replica {settings.replica_id}"
    )
    from fuseguard.serving import LoopUnavailableError

    try:
        run_cloud(settings, embedded_broker=embedded_broker)
    except LoopUnavailableError as err:
        typer.echo(f"error: server.loop = {settings.server.loop!r}: {err}", err=True)
        raise typer.Exit(code=2) from err


@token_app.command("create")
def token_create(
    edge: Annotated[str, typer.Option("--edge", help="edge device id")],
    evse: Annotated[str, typer.Option("--evse", help="EVSE uuid (32 lowercase hex)")],
    config: ConfigOpt = None,
) -> None:
    """Create a token for one EVSE of one edge; it is printed once and stored as a hash."""
    from fuseguard.model.ids import is_hex_uuid

    if not is_hex_uuid(evse):
        typer.echo("error: --evse must be 32 lowercase hex characters", err=True)
        raise typer.Exit(code=2)
    typer.echo(with_token_repo(_db_url(config), lambda r: r.create(edge, evse)))


@token_app.command("list")
def token_list(
    edge: Annotated[str | None, typer.Option("--edge", help="only this edge")] = None,
    config: ConfigOpt = None,
) -> None:
    """List tokens (id, edge, EVSE, created); never the tokens themselves."""
    for info in with_token_repo(_db_url(config), lambda r: r.list(edge)):
        typer.echo(
            f"{info.id}  {info.edge_device_id}  {info.evse_uuid}  {info.created_at.isoformat()}"
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="token id from `token list`")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a token by id."""
    if not with_token_repo(_db_url(config), lambda r: r.revoke(token_id)):
        typer.echo(f"error: no token {token_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {token_id}")


@cloud_app.command("broker-files")
def broker_files(
    edges: Annotated[list[str], typer.Option("--edge", help="edge id (repeat)")],
    out: Annotated[Path, typer.Option("--out", help="directory for passwd, acl, mosquitto.conf")],
    cloud_user: Annotated[str, typer.Option("--cloud-user")] = "fuseguard-cloud",
    prefix: Annotated[str, typer.Option("--prefix")] = "fuseguard",
    tls_dir: Annotated[
        Path,
        typer.Option("--tls-dir", help="broker's ca.crt, server.crt, server.key (as it sees them)"),
    ] = Path("/etc/mosquitto/certs"),
    edge_port: Annotated[int, typer.Option("--edge-port", help="TLS listener of the edges")] = 8883,
    cloud_port: Annotated[
        int, typer.Option("--cloud-port", help="listener of the cloud replicas")
    ] = 1884,
    cloud_bind: Annotated[
        str, typer.Option("--cloud-bind", help="address of the cloud listener (private)")
    ] = "127.0.0.1",
) -> None:
    """Write Mosquitto ``passwd``, ``acl`` and ``mosquitto.conf`` (one user per edge)."""
    import secrets

    from fuseguard.cloud.acl import BrokerTls, mosquitto_conf, mosquitto_files, new_edge_passwords
    from fuseguard.cloud.protocol import Topics
    from fuseguard.demo.run import write_private

    passwords = new_edge_passwords(edges)
    cloud_password = secrets.token_urlsafe(24)
    files = mosquitto_files(Topics(prefix), passwords, cloud_user, cloud_password)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    # credentials (hashed or not) are 0600 from their creation, never readable in between
    write_private(out / "passwd", files.passwords)
    write_private(out / "acl", files.acl)
    tls = BrokerTls(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
    conf = mosquitto_conf(
        out / "passwd",
        out / "acl",
        edge_port=edge_port,
        cloud_port=cloud_port,
        cloud_bind=cloud_bind,
        tls=tls,
    )
    (out / "mosquitto.conf").write_text(conf)
    creds = [f"{cloud_user} {cloud_password}"] + [f"{e} {p}" for e, p in passwords.items()]
    secret_file = out / "credentials.txt"
    write_private(secret_file, "\n".join(creds) + "\n")
    typer.echo(
        f"wrote {out / 'passwd'}, {out / 'acl'}, {out / 'mosquitto.conf'} and {secret_file} "
        "(keep it secret; all but mosquitto.conf are 0600: chown passwd and acl to the broker's "
        "user)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``cloud`` command group to ``app``."""
    app.add_typer(cloud_app, name="cloud")
