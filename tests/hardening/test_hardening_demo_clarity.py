"""Round 11 demo clarity: with a grid meter that gives total power only (the demo's CEMM P1
meter), the dashboard said a plug was "limited by circuit main on L2" while the main circuit's
bars (the total spread evenly over three phases) showed headroom on L2: the allocator limits
the per-phase load it assumes (``[meter] phase_assumption = "worst"``: all of the non-EV power on
every phase), and nothing said so. Now the reason says why and the main circuit shows the
allocator's per-phase view.
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from fuseguard.api.mqtt.state import Topics, plug_messages
from fuseguard.api.site_state import TOTAL_POWER_NOTE, LimitSource, explained_reason
from fuseguard.api.web.view import ViewContext, site_view
from fuseguard.cloud.live_wire import LiveSnapshot, relay_view, snapshot_bytes
from fuseguard.model.circuits import MAIN
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from fuseguard.view import render
from tests.web.webkit import TREE, plug_view, status

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
CTX = ViewContext(tree=TREE, limit_source=LimitSource.FUSE, settings={}, targets={}, now=NOW)
#: worst case: 4 600 W of non-EV load at 230 V is 20 A, assumed on every phase
ASSUMED = Phases.uniform(20.0)
EV = Phases(15.5, 15.2, 15.8)


def _status(*, per_phase: bool, reason: str) -> object:
    sample = MeterSample(
        timestamp=NOW,
        power_w=15_000.0,
        current_a=Phases(25.0, 20.0, 22.0) if per_phase else None,
    )
    return status(
        NOW,
        meter_sample=sample,
        non_ev_load_a={MAIN: ASSUMED, "garage": Phases.uniform(0.0)},
        plugs=(plug_view(reason=reason, grid_current_a=EV),),
    )


def test_reason_names_the_assumption_with_a_total_power_meter() -> None:
    st = _status(per_phase=False, reason="limited by circuit main on L2")
    page = site_view(st, CTX)  # type: ignore[arg-type]
    assert page["plugs"][0]["reason"] == f"limited by circuit main on L2 {TOTAL_POWER_NOTE}"
    paused = "paused: less than 6 A available on circuit main on L1, waiting 20 s"
    assert explained_reason(paused, st).endswith(TOTAL_POWER_NOTE)  # type: ignore[arg-type]
    # not where the assumption plays no part: a metered sub-circuit, a power limit, a cap
    for other in ("limited by circuit garage on L1", "at maximum 16 A",
                  "limited by the 11.0 kW power limit of circuit main"):  # fmt: skip
        assert explained_reason(other, st) == other  # type: ignore[arg-type]


def test_reason_unchanged_with_a_per_phase_meter() -> None:
    st = _status(per_phase=True, reason="limited by circuit main on L2")
    page = site_view(st, CTX)  # type: ignore[arg-type]
    assert page["plugs"][0]["reason"] == "limited by circuit main on L2"
    main = page["circuits"][0]
    assert not main["assumed"]
    assert [row["current_a"] for row in main["phases"]] == [25.0, 20.0, 22.0]  # measured


def test_main_circuit_shows_the_allocators_per_phase_view() -> None:
    st = _status(per_phase=False, reason="limited by circuit main on L2")
    main = site_view(st, CTX)["circuits"][0]  # type: ignore[arg-type]
    assert main["id"] == MAIN and main["assumed"]
    assert [row["non_ev_a"] for row in main["phases"]] == [20.0, 20.0, 20.0]
    assert [row["current_a"] for row in main["phases"]] == [35.5, 35.2, 35.8]  # assumed + EV
    assert [row["headroom_a"] for row in main["phases"]] == [-0.5, -0.2, -0.8]


def test_terminal_view_explains_too() -> None:
    st = _status(per_phase=False, reason="limited by circuit main on L2")
    console = Console(width=300, record=True)
    console.print(render(st, None, {}))  # type: ignore[arg-type]
    assert TOTAL_POWER_NOTE in console.export_text()


def test_mqtt_and_the_cloud_viewer_say_it_too() -> None:
    st = _status(per_phase=False, reason="limited by circuit main on L2")
    messages = plug_messages(Topics("fg/e1"), st, {"wb1": "wb1"}, {})  # type: ignore[arg-type]
    assert messages["fg/e1/plug/wb1/reason"].endswith(TOTAL_POWER_NOTE)
    relayed = relay_view(
        LiveSnapshot.model_validate_json(snapshot_bytes(1, "s", site_view(st, CTX))),  # type: ignore[arg-type]
        0.0,
        True,
    )
    assert relayed["circuits"][0]["assumed"]
    assert relayed["plugs"][0]["reason"].endswith(TOTAL_POWER_NOTE)
