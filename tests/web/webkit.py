"""A dashboard on real edge parts (flex, targets, plug settings, SQLite store) and a fixed status,
served on a free loopback port, plus a tiny HTTP client that speaks its login and CSRF rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine

import fuseguard.store.web as web_store
from fuseguard.api.edge_evse import EdgeEvseBackend
from fuseguard.api.evse_models import EvseInfo
from fuseguard.api.metrics import build_registry, metrics_endpoint
from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.api.web.app import create_web_app
from fuseguard.api.web.auth import LoginThrottle, SessionStore
from fuseguard.api.web.core import WebDeps
from fuseguard.api.web.events import EventLog
from fuseguard.api.web.live import LiveHub
from fuseguard.control.flex import FlexManagement, MemoryFlexStore
from fuseguard.control.plug_settings import PlugSettings
from fuseguard.control.targets import EvseTargets
from fuseguard.control.types import ChargerSpec, ControllerStatus, PlugView
from fuseguard.model.circuits import MAIN, CircuitSpec, CircuitTree
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus
from fuseguard.serving import ServerHandle, serve_app
from fuseguard.store.db import open_store
from fuseguard.store.web import Role, WebEventRepository, WebUserRepository

EVSE = "25104c56d7f848af830af4300193efb3"
PLUG = "6bbf9fd56dc24f9697b078d5d8ccda84"
ADMIN_PW = "admin-password-1"
VIEWER_PW = "viewer-password-1"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
#: argon2id at its lowest cost, for the rigs' users: the dashboard tests are about logins,
#: sessions, CSRF and roles, not the hash cost, and at the production parameters (64 MiB, 3
#: passes, 4 lanes) every hash and every login took 0.2 s of CPU (half of each test's). A hash
#: carries its parameters, so logging in (``verify``) costs what hashing did; the production
#: hasher and its parameters are checked by ``test_users_are_stored_as_argon2_hashes``.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def plug_view(**kw: object) -> PlugView:
    base: dict[str, object] = {
        "id": "wb1",
        "evse_uuid": EVSE,
        "plug_uuid": PLUG,
        "plug_label": "Plug 1",
        "circuit": "garage",
        "status": PlugStatus.CHARGING,
        "online": True,
        "setpoint_a": 16,
        "written_a": 16,
        "reason": "fair share of the garage fuse",
        "current_a": Phases(15.5, 15.2, 15.8),
        "grid_current_a": Phases(15.5, 15.2, 15.8),
        "power_w": 10_700.0,
        "energy_wh": 4321.0,
        "stuck": False,
        "error": None,
    }
    base.update(kw)
    return PlugView(**base)  # type: ignore[arg-type]


def status(time: datetime, *, cycles: int = 7, **kw: object) -> ControllerStatus:
    base: dict[str, object] = {
        "time": time,
        "meter_ok": True,
        "meter_fallback": False,
        "meter_sample": None,
        "grid_current_a": Phases(25.0, 20.0, 22.0),
        "grid_power_w": 15_000.0,
        "main_limit_a": Phases.uniform(35.0),
        "flex_fallback": False,
        "limits_a": {MAIN: Phases.uniform(35.0), "garage": Phases.uniform(25.0)},
        "non_ev_load_a": {MAIN: Phases(9.5, 4.8, 6.2), "garage": Phases(1.0, 0.0, 0.0)},
        "plugs": (plug_view(),),
        "cycles": cycles,
        "last_cycle_ms": 1.5,
    }
    base.update(kw)
    return ControllerStatus(**base)  # type: ignore[arg-type]


TREE = CircuitTree.of(
    [
        CircuitSpec(id=MAIN, parent=None, fuse_a=35.0),
        CircuitSpec(id="garage", parent=MAIN, fuse_a=25.0),
    ]
)


@dataclass
class Rig:
    """The served dashboard and the parts behind it."""

    url: str
    deps: WebDeps
    hub: LiveHub
    handle: ServerHandle
    clock: VirtualClock
    engine: AsyncEngine
    current: list[ControllerStatus] = field(default_factory=list)


async def start_rig(
    tmp: Path, *, max_failures: int = 5, tls: bool = False, tz: tzinfo | None = None
) -> Rig:
    clock = VirtualClock()
    engine = await open_store(f"sqlite+aiosqlite:///{tmp / 'web.db'}")
    users = WebUserRepository(engine, clock)
    real, web_store._hasher = web_store._hasher, CHEAP_HASHER  # only while adding them
    try:
        await users.add("alice", ADMIN_PW, Role.ADMIN)
        await users.add("victor", VIEWER_PW, Role.VIEWER)
    finally:
        web_store._hasher = real
    flex = FlexManagement(clock, fuse_a=35.0, store=MemoryFlexStore())
    targets = EvseTargets(clock)
    evses = {EVSE: EvseInfo(EVSE, 6, 32, ((PLUG, "Plug 1"),))}
    current = [status(clock.now())]
    backend = EdgeEvseBackend("edge-1", evses, targets, lambda _uuid: [])
    deps = WebDeps(
        status=lambda: current[-1],
        tree=TREE,
        flex=flex,
        targets=targets,
        evse_backend=backend,
        evses=evses,
        edge_id="edge-1",
        max_duration_s=3600,
        plug_settings=PlugSettings([ChargerSpec(id="wb1", circuit="garage")], tmp / "plugs.json"),
        users=users,
        events=EventLog(WebEventRepository(engine), clock),
        clock=clock,
        sessions=SessionStore(clock, 600.0),
        throttle=LoginThrottle(clock, max_failures, 300.0),
        site_name="test site",
        tz=tz,
    )
    hub = LiveHub(deps.view, deps.status)
    registry, _ = build_registry(deps.status, TREE, flex)
    app = create_web_app(deps, hub, metrics=metrics_endpoint(registry))
    cert = key = None
    if tls:
        cert_path, key_path = ensure_self_signed_cert(tmp, ["localhost", "127.0.0.1"])
        cert, key = str(cert_path), str(key_path)
    handle = await serve_app(app, "127.0.0.1", 0, cert, key)
    return Rig(handle.url, deps, hub, handle, clock, engine, current)


async def stop_rig(rig: Rig) -> None:
    rig.hub.close()
    await rig.handle.close()
    await rig.deps.events.close()
    await rig.engine.dispose()


class Client:
    """A browser-like client: cookie jar, login form with its CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=10)
        )
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=False) as r:
            return r.status, await r.text()

    async def post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        async with self.http.post(self.base + path, data=data, allow_redirects=False) as r:
            return r.status, await r.text()

    async def login(self, user: str, password: str) -> int:
        _, page = await self.get("/login")
        match = _CSRF.search(page)
        assert match is not None
        code, _ = await self.post(
            "/login", {"user": user, "password": password, "csrf_token": match.group(1)}
        )
        if code == 303:
            _, page = await self.get("/settings")
            found = _CSRF.search(page)
            assert found is not None
            self.csrf = found.group(1)
        return code


async def next_sse_status(response: aiohttp.ClientResponse) -> dict[str, object]:
    """The data of the next ``status`` event of an SSE response."""
    event = ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "status":
            data: dict[str, object] = json.loads(line[6:])
            return data
