"""The ``fuseguard`` command line (Typer).

Heavy imports stay inside the commands so that ``--help`` is fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fuseguard import __version__

app = typer.Typer(
    name="fuseguard",
    help="Open, local-first load management for EV charging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check and inspect configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
sim_app = typer.Typer(help="Virtual devices on the real wire protocols.", no_args_is_help=True)


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


def _register_commands() -> None:
    """Commands contributed by the subsystems (each module adds its own)."""


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
