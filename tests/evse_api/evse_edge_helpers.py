"""A small edge for the EVSE API tests: two EVSEs, a token store on SQLite, virtual time.

(A uniquely named module, not conftest, so that tests can import it next to other test dirs.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx2
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.evse import create_evse_app
from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.control.targets import EvseTargets
from fuseguard.model.clock import Clock, VirtualClock
from fuseguard.model.phases import ZERO
from fuseguard.model.samples import ChargerSample
from fuseguard.model.status import plug_status
from fuseguard.store.db import create_engine, init_schema
from fuseguard.store.targets import SqlTargetStore
from fuseguard.store.tokens import TokenRepository

EDGE = "edge-1"
EVSE_A = "25104c56d7f848af830af4300193efb3"
EVSE_B = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PLUG_A1 = "6bbf9fd56dc24f9697b078d5d8ccda84"
PLUG_A2 = "c99838f9eb5b423d98f8ba33389a255c"
PLUG_B1 = "0123456789abcdef0123456789abcdef"

EVSES = {
    EVSE_A: EvseInfo(EVSE_A, 6, 32, ((PLUG_A1, "Plug 1"), (PLUG_A2, "Plug 2"))),
    EVSE_B: EvseInfo(EVSE_B, 6, 16, ((PLUG_B1, "Plug 1"),)),
}


DEFAULT_RECENTLY_STARTED_WINDOW_S = 60.0


@dataclass(slots=True)
class _PlugMemory:
    charging_since_s: float | None = None


class PlugStatusTracker:
    """A stand-in for the controller's plug status (``Controller.status()``): builds plug status records from charger samples; remembers when charging started.

    ``recently_started_window_s`` is how long a new charging session reports
    ``recently_started_charging`` before ``charging``. The charger's own
    ``charging_duration_s`` is used when it reports one, else the time since this tracker first
    saw CP state C/D for the plug (on the injected clock).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        recently_started_window_s: float = DEFAULT_RECENTLY_STARTED_WINDOW_S,
    ) -> None:
        self._clock = clock
        self.recently_started_window_s = recently_started_window_s
        self._plugs: dict[str, _PlugMemory] = {}

    def record(
        self,
        *,
        evse_uuid: str,
        plug_uuid: str,
        plug_label: str,
        sample: ChargerSample | None,
        online: bool,
        dyn_current_limit_a: float,
    ) -> PlugStatusRecord:
        """The status of one plug now. ``sample`` None with ``online`` means no reading yet."""
        memory = self._plugs.setdefault(plug_uuid, _PlugMemory())
        now_s = self._clock.monotonic()
        charging_for_s: float | None = None
        if online and sample is not None and sample.cp_state.charging:
            if memory.charging_since_s is None:
                memory.charging_since_s = now_s
            charging_for_s = (
                sample.charging_duration_s
                if sample.charging_duration_s is not None
                else now_s - memory.charging_since_s
            )
        elif online:
            memory.charging_since_s = None
        status = plug_status(
            online=online,
            cp=None if sample is None else sample.cp_state,
            ocpp=None if sample is None else sample.ocpp_state,
            offered_current_a=(
                0.0
                if sample is None or sample.signalled_current_a is None
                else sample.signalled_current_a
            ),
            has_errors=bool(sample is not None and sample.errors),
            charging_for_s=charging_for_s,
            recently_started_window_s=self.recently_started_window_s,
        )
        fresh = online and sample is not None
        return PlugStatusRecord(
            time=self._clock.now(),
            plug_uuid=plug_uuid,
            plug_label=plug_label,
            evse_uuid=evse_uuid,
            status=status,
            current_a=sample.current_a if fresh and sample is not None else ZERO,
            power_w=sample.power_w if fresh and sample is not None else 0.0,
            dyn_current_limit_a=dyn_current_limit_a,
        )


@dataclass
class FakeController:
    """What the controller would know: the latest sample per plug and whether it answered."""

    clock: VirtualClock
    targets: EvseTargets
    samples: dict[str, ChargerSample | None] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    tracker: PlugStatusTracker = field(init=False)

    def __post_init__(self) -> None:
        self.tracker = PlugStatusTracker(self.clock, recently_started_window_s=60.0)

    def status(self, evse_uuid: str) -> list[PlugStatusRecord]:
        info = EVSES[evse_uuid]
        cap = self.targets.cap_a(evse_uuid)
        limit = info.max_current_a if cap is None else min(cap, info.max_current_a)
        return [
            self.tracker.record(
                evse_uuid=evse_uuid,
                plug_uuid=plug,
                plug_label=label,
                sample=self.samples.get(plug),
                online=plug not in self.offline,
                dyn_current_limit_a=limit,
            )
            for plug, label in info.plugs
        ]


@dataclass
class Edge:
    clock: VirtualClock
    engine: AsyncEngine
    url: str
    targets: EvseTargets
    controller: FakeController
    tokens: TokenRepository
    app: FastAPI
    client: httpx2.AsyncClient
    token_a: str
    token_b: str

    def path(self, evse: str = EVSE_A, what: str = "currentsettings", edge: str = EDGE) -> str:
        return f"/edgedevices/{edge}/evses/{evse}/{what}"


async def start_edge(
    db_url: str, clock: VirtualClock, *, tokens: tuple[str, str] | None = None
) -> Edge:
    """An edge process: engine, targets loaded from the store, API app and a client on it."""
    engine = create_engine(db_url)
    await init_schema(engine)
    targets = EvseTargets(clock, SqlTargetStore(engine, EDGE))
    await targets.load()
    controller = FakeController(clock, targets)
    repo = TokenRepository(engine)
    if tokens is None:
        tokens = (await repo.create(EDGE, EVSE_A), await repo.create(EDGE, EVSE_B))
    backend = EdgeEvseBackend(EDGE, EVSES, targets, controller.status)
    app = create_evse_app(backend, repo, max_duration_s=86_400)
    client = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://edge.test"
    )
    return Edge(clock, engine, db_url, targets, controller, repo, app, client, *tokens)


async def stop_edge(edge: Edge) -> None:
    await edge.client.aclose()
    await edge.engine.dispose()
