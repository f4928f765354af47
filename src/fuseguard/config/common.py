"""Shared pieces of the config models: the strict base model, ids, per-phase amperes."""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from fuseguard.model.ids import is_hex_uuid
from fuseguard.model.numbers import NotFiniteError, finite
from fuseguard.model.phases import Phases

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OCPP_ID = re.compile(r"^[!-~]{1,48}$")  # printable ASCII without spaces; see ChargerConfig


class _Model(BaseModel):
    # allow_inf_nan=False: NaN and infinities are never config values (a NaN fuse removes a limit,
    # an infinite timeout switches off loss detection); every float is refused with its key path.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _hex_uuid(value: str) -> str:
    if not is_hex_uuid(value):
        msg = "must be 32 lowercase hex characters (a uuid without dashes)"
        raise ValueError(msg)
    return value


HexUuid = Annotated[str, Field(description="32 lowercase hex characters")]


def _to_triple(value: object) -> tuple[float, float, float]:
    if isinstance(value, bool):
        msg = "expected a number of amperes or [L1, L2, L3]"
        raise ValueError(msg)
    try:
        if isinstance(value, int | float):
            one = finite(value, "fuse rating")
            return (one, one, one)
        if isinstance(value, list | tuple) and len(value) == 3:
            l1, l2, l3 = (finite(v, f"fuse rating L{i + 1}") for i, v in enumerate(value))
            return (l1, l2, l3)
    except NotFiniteError as err:
        msg = f"expected finite amperes: {err}"
        raise ValueError(msg) from None
    msg = "expected a number of amperes or [L1, L2, L3]"
    raise ValueError(msg)


PerPhaseA = Annotated[
    tuple[float, float, float],
    BeforeValidator(_to_triple),
    Field(description="amperes: one number for all phases, or [L1, L2, L3]"),
]


def per_phase(value: tuple[float, float, float]) -> Phases:
    """A per-phase config value -> :class:`Phases`."""
    return Phases.of(value)


#: The TOML file being loaded (relative paths in it are relative to the file).
_TOML_PATH: ContextVar[Path | None] = ContextVar("_TOML_PATH", default=None)
