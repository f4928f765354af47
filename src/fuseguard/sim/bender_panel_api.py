"""Admin API of the virtual Bender's panel: ``GET /sim/panel``, ``PATCH /sim/panel``.

``{"key_set": "seed", "schuko_cfg": true, "schuko_state": "power_on", "backend_conn_state":
"connected", "wlan_state": "wlan_connected", "display_text": "..."}`` (absent fields stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, HTTPException
from pydantic import AfterValidator, BaseModel, ConfigDict

from fuseguard.sim.bender_config import BenderDeviceConfig
from fuseguard.sim.bender_panel import (
    BackendConnState,
    KeySet,
    SchukoState,
    WlanState,
    check_display_text,
)

if TYPE_CHECKING:
    from fuseguard.sim.bender import BenderController


class PanelIn(BaseModel):
    """A partial update of the key set and the panel states (absent fields stay)."""

    model_config = ConfigDict(extra="forbid")

    key_set: KeySet | None = None
    schuko_cfg: bool | None = None
    schuko_state: SchukoState | None = None
    backend_conn_state: BackendConnState | None = None
    wlan_state: WlanState | None = None
    display_text: Annotated[str, AfterValidator(check_display_text)] | None = None


class PanelOut(BaseModel):
    """The key set and panel states."""

    key_set: KeySet
    schuko_cfg: bool
    schuko_state: SchukoState
    backend_conn_state: BackendConnState
    wlan_state: WlanState
    display_text: str
    con_cycles_schuko: int


def panel_out(cfg: BenderDeviceConfig) -> PanelOut:
    """The panel of ``cfg`` as the admin API shows it."""
    p = cfg.panel
    return PanelOut(
        key_set=cfg.key_set,
        schuko_cfg=p.schuko_cfg,
        schuko_state=p.schuko_state,
        backend_conn_state=p.backend_conn_state,
        wlan_state=p.wlan_state,
        display_text=p.display_text,
        con_cycles_schuko=p.con_cycles_schuko,
    )


def add_panel_routes(app: FastAPI, controller: BenderController) -> None:
    """``GET`` / ``PATCH /sim/panel``."""

    @app.get("/sim/panel")
    async def panel() -> PanelOut:
        """Key set and panel states."""
        return panel_out(controller.config)

    @app.patch("/sim/panel", responses={409: {"description": "Schuko socket disabled"}})
    async def patch_panel(body: PanelIn) -> PanelOut:
        """Change the key set and panel states (absent fields stay as they are)."""
        cfg = controller.config
        p = cfg.panel
        try:
            p.set_schuko(enabled=body.schuko_cfg, state=body.schuko_state)
        except ValueError as err:
            raise HTTPException(status_code=409, detail=str(err)) from err
        if body.key_set is not None:
            cfg.key_set = body.key_set
        if body.backend_conn_state is not None:
            p.backend_conn_state = body.backend_conn_state
        if body.wlan_state is not None:
            p.wlan_state = body.wlan_state
        if body.display_text is not None:
            p.display_text = body.display_text
        return panel_out(cfg)


__all__ = ["PanelIn", "PanelOut", "add_panel_routes", "panel_out"]
