"""The ``fuseguard`` command line (Typer).

Heavy imports stay inside the commands so that ``--help`` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast, get_args

import typer

from fuseguard import __version__

if TYPE_CHECKING:
    from fuseguard.serving import PortInUseError

app = typer.Typer(
    name="fuseguard",
    help="Open, local-first load management for EV charging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and inspect configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
sim_app = typer.Typer(help="Virtual devices on the real wire protocols.", no_args_is_help=True)


#: ``fuseguard demo`` options that set what a config sets with these keys.
_DEMO_OPTIONS = {
    "api.local.port": "--local-api-port",
    "api.modbus.port": "--modbus-port",
    "api.evse.port": "--evse-api-port",
}


def _port_in_use(command: str, err: PortInUseError, setting: str) -> typer.Exit:
    """Say which port is busy and what changes it; everything started is stopped already."""
    typer.echo(
        f"fuseguard {command}: the {err.service} cannot listen on {err.host}:{err.port} "
        f"({err.detail}). Is another fuseguard (or other program) using it? "
        f"Stop it, or choose another port with {setting}.",
        err=True,
    )
    return typer.Exit(code=2)


def stop_on_signals() -> list[str]:
    """Make SIGINT and SIGTERM stop this process's edge cleanly, whatever it inherited.

    A command started in the background by a shell without job control (a script's ``cmd &``,
    a CI step, a test runner's worker) inherits SIGINT (and SIGQUIT) *ignored*: Python then
    leaves SIGINT ignored, asyncio's runner hooks SIGINT only when it has Python's default
    handler, and a ``kill -INT`` (Ctrl-C, the benchmark's stop) did nothing at all: the edge
    ran on until it was killed, stopping nothing cleanly (round 13's "shutdown hang"). Here an
    ignored or default SIGINT gets Python's handler back (asyncio's runner then turns it into
    a cancellation of the edge: its ordinary stop) and an ignored SIGTERM the default (which
    :class:`~fuseguard.edge.Edge` takes over). Returns the names of the signals restored.
    """
    import signal

    restored = []
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        restored.append("SIGINT")
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        restored.append("SIGTERM")
    return restored


@app.command()
def version() -> None:
    """Print the fuseguard version."""
    typer.echo(__version__)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="site config (TOML)")],
) -> None:
    """Validate a site config: prints OK, or every problem with key, file and line (exit 2)."""
    from fuseguard.config import check_config

    problems = check_config(file)
    if not problems:
        typer.echo("OK")
        return
    for problem in problems:
        typer.echo(str(problem), err=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="site config (TOML)")],
    dump_snapshot: Annotated[
        Path | None,
        typer.Option(help="write the allocator's input of every cycle to this JSON file"),
    ] = None,
    loop: Annotated[
        str,
        typer.Option(
            "--loop",
            help="auto | uvloop | asyncio (auto: uvloop when installed, the cheaper loop)",
        ),
    ] = "auto",
) -> None:
    """Run the edge controller against the real devices of a site config (real time)."""
    import asyncio

    from fuseguard.config import ConfigError, load_config
    from fuseguard.edge import Edge
    from fuseguard.logging import configure_logging
    from fuseguard.serving import EventLoop, LoopUnavailableError, PortInUseError, loop_factory

    if loop not in get_args(EventLoop):
        typer.echo(f"fuseguard run: --loop must be auto, uvloop or asyncio, not {loop!r}", err=True)
        raise typer.Exit(code=2)
    try:
        new_loop = loop_factory(cast("EventLoop", loop))
    except LoopUnavailableError as err:
        typer.echo(f"fuseguard run: --loop {loop}: {err}", err=True)
        raise typer.Exit(code=2) from err
    try:
        cfg = load_config(config)
    except ConfigError as err:
        for problem in err.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(code=2) from err
    configure_logging(cfg.logging.level, cfg.logging.format)
    _log_restored(stop_on_signals())
    edge = Edge(cfg, dump_snapshot=dump_snapshot, hard_exit_s=12.0, freeze_gc=True)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(edge.run())
    except PortInUseError as err:
        raise _port_in_use("run", err, f"{err.key} in {config}") from err
    except ValueError as err:  # e.g. an empty or example local API password
        typer.echo(f"fuseguard run: {err}", err=True)
        raise typer.Exit(code=2) from err


@app.command()
def demo(
    headless: Annotated[bool, typer.Option(help="no live view; print URLs and log")] = False,
    data_dir: Annotated[Path, typer.Option(help="where demo.json, certs and the DB go")] = Path(
        "demo-data"
    ),
    local_api_port: Annotated[int, typer.Option(help="CLEMAP local API (HTTPS)")] = 7000,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP twin")] = 5020,
    evse_api_port: Annotated[int, typer.Option(help="Direct EVSE Control API")] = 3032,
    web_port: Annotated[int, typer.Option(help="web dashboard (HTTP on loopback)")] = 8080,
    host: Annotated[str, typer.Option(help="address the APIs listen on")] = "127.0.0.1",
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    mqtt: Annotated[
        str | None, typer.Option(help="publish over MQTT, e.g. mqtt://127.0.0.1:1883")
    ] = None,
    mqtt_prefix: Annotated[str, typer.Option(help="MQTT topic prefix")] = "fuseguard",
    ha_prefix: Annotated[
        str, typer.Option(help="Home Assistant discovery prefix")
    ] = "homeassistant",
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus /metrics here (0 = any free port)")
    ] = None,
) -> None:
    """Run a whole simulated site: a virtual meter, three virtual chargers, cars, the edge."""
    import asyncio

    from fuseguard.demo import run_demo
    from fuseguard.logging import configure_logging
    from fuseguard.serving import PortInUseError

    configure_logging("info" if headless else "warning", "auto")
    _log_restored(stop_on_signals())
    try:
        asyncio.run(
            run_demo(
                data_dir=data_dir,
                local_api_port=local_api_port,
                modbus_port=modbus_port,
                evse_api_port=evse_api_port,
                web_port=web_port,
                host=host,
                headless=headless,
                duration_s=duration,
                mqtt_url=mqtt,
                mqtt_prefix=mqtt_prefix,
                ha_prefix=ha_prefix,
                metrics_port=metrics_port,
            )
        )
    except PortInUseError as err:
        raise _port_in_use("demo", err, _DEMO_OPTIONS.get(err.key, err.key)) from err
    except OSError as err:
        typer.echo(f"fuseguard demo: {err} (is a port in use? see --help)", err=True)
        raise typer.Exit(code=2) from err


def _log_restored(signals: list[str]) -> None:
    if signals:
        import structlog

        structlog.get_logger("fuseguard.cli").info(
            "stop_signals_restored",
            device="edge",
            reason=f"inherited as ignored: {', '.join(signals)} restored, so that it stops us",
        )


def _register_commands() -> None:
    """Commands contributed by the subsystems (each module adds its own)."""
    from fuseguard.cli import allocate as allocate_cmd
    from fuseguard.cli import cloud as cloud_cmd
    from fuseguard.cli import sim_cemm as cemm_cmd
    from fuseguard.cli import sim_charger as charger_cmd
    from fuseguard.cli import sim_meter as meter_cmd
    from fuseguard.cli import sim_ocpp as ocpp_cmd
    from fuseguard.cli import simulate as scenario_cmd
    from fuseguard.cli import token as token_cmd
    from fuseguard.cli import user as user_cmd

    allocate_cmd.register(app)
    scenario_cmd.register(app)
    cemm_cmd.register(sim_app)
    charger_cmd.register(sim_app)
    meter_cmd.register(sim_app)
    ocpp_cmd.register(sim_app)
    app.add_typer(sim_app, name="sim")
    token_cmd.register(app)
    user_cmd.register(app)
    cloud_cmd.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
