"""``fuseguard allocate SNAPSHOT.json``: the allocator on one snapshot, setpoints and reasons."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from fuseguard.allocation.engine import allocate
from fuseguard.allocation.snapshot import allocation_to_data, snapshot_from_json
from fuseguard.allocation.types import SnapshotError


def register(app: typer.Typer) -> None:
    """Add ``allocate SNAPSHOT.json`` to ``app``."""

    @app.command("allocate")
    def allocate_command(
        snapshot_file: Annotated[
            Path, typer.Argument(metavar="SNAPSHOT.json", help="snapshot file, '-' for stdin")
        ],
    ) -> None:
        """Run the allocator on one snapshot and print setpoints and reasons as JSON."""
        try:
            text = (
                sys.stdin.read() if str(snapshot_file) == "-" else snapshot_file.read_text("utf-8")
            )
        except OSError as exc:
            typer.echo(f"$: cannot read {snapshot_file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        try:
            snap = snapshot_from_json(text)
        except SnapshotError as exc:
            typer.echo(f"{exc.path}: {exc.message}", err=True)
            raise typer.Exit(2) from None
        typer.echo(json.dumps(allocation_to_data(allocate(snap)), indent=2))


__all__ = ["register"]
