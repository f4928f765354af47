"""The dashboard over HTTP (no browser): login, sessions, CSRF, roles, throttling, settings paths,
SSE, events, and the pure view of a status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from argon2 import PasswordHasher

from fuseguard.api.web.auth import LoginThrottle, SessionStore
from fuseguard.api.web.events import EventKind, EventLog, StatusWatcher
from fuseguard.api.web.view import STATUS_WORDS, circuit_views
from fuseguard.model.clock import VirtualClock
from fuseguard.model.status import ChargeMode, PlugStatus
from fuseguard.store.db import open_store
from fuseguard.store.web import Role, WebEventRepository, WebUserRepository

from .webkit import (
    ADMIN_PW,
    EVSE,
    TREE,
    VIEWER_PW,
    Client,
    Rig,
    plug_view,
    start_rig,
    status,
    stop_rig,
)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    try:
        yield r
    finally:
        await stop_rig(r)


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[Client]:
    c = Client(rig.url)
    try:
        yield c
    finally:
        await c.close()


async def test_pages_need_a_login(client: Client) -> None:
    for path in ("/", "/site", "/settings", "/events"):
        code, _ = await client.get(path)
        assert code == 303, path
    code, _ = await client.get("/live/data")
    assert code == 401


async def test_login_sets_a_strict_httponly_cookie_and_shows_the_site(rig: Rig) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(rig.url + "/login") as r:
            page = await r.text()
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        form = {"user": "alice", "password": ADMIN_PW, "csrf_token": token}
        async with http.post(rig.url + "/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
            cookie = r.headers["set-cookie"].lower()
        assert "fg_session=" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP on loopback; HTTPS adds it (is_https)
        async with http.get(rig.url + "/site") as r:
            assert r.status == 200
            html = await r.text()
            assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'data-plug="wb1"' in html
    assert "Charging" in html
    assert "fair share of the garage fuse" in html


async def test_session_cookie_is_secure_over_https(tmp_path: Path) -> None:
    rig = await start_rig(tmp_path, tls=True)
    try:
        assert rig.url.startswith("https://")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(rig.url + "/login", ssl=False) as r:
                page = await r.text()
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form = {"user": "alice", "password": ADMIN_PW, "csrf_token": token}
            async with http.post(
                rig.url + "/login", data=form, allow_redirects=False, ssl=False
            ) as r:
                assert r.status == 303
                cookie = r.headers["set-cookie"].lower()
        assert "fg_session=" in cookie
        assert "secure" in cookie
        assert "httponly" in cookie
    finally:
        await stop_rig(rig)


async def test_metrics_on_the_dashboard_need_a_session(client: Client) -> None:
    code, _ = await client.get("/metrics")
    assert code == 401
    assert await client.login("victor", VIEWER_PW) == 303
    code, text = await client.get("/metrics")
    assert code == 200
    assert 'fuseguard_phase_current_amperes{circuit="garage",phase="L1"} 16.5' in text


async def test_wrong_password_and_missing_login_token_are_refused(client: Client) -> None:
    assert await client.login("alice", "not-the-password") == 401
    code, _ = await client.post("/login", {"user": "alice", "password": ADMIN_PW})
    assert code == 403  # no double-submit token
    events = await client.get("/site")
    assert events[0] == 303  # still not logged in


async def test_login_throttling_locks_the_name_after_repeated_failures(rig: Rig) -> None:
    client = Client(rig.url)
    try:
        for _ in range(5):
            assert await client.login("alice", "wrong-password") == 401
        assert await client.login("alice", ADMIN_PW) == 429  # right password, still locked
        await rig.clock.advance(301.0)
        assert await client.login("alice", ADMIN_PW) == 303
    finally:
        await client.close()


async def test_csrf_less_post_is_refused_and_changes_nothing(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    before = rig.deps.flex.settings()
    code, _ = await client.post("/settings/limit", {"activation": "on", "current_limit_a": "20"})
    assert code == 403
    code, _ = await client.post(
        "/settings/limit", {"activation": "on", "current_limit_a": "20", "csrf_token": "forged"}
    )
    assert code == 403
    assert rig.deps.flex.settings() == before


async def test_admin_limit_goes_through_flex_management_and_is_audited(
    rig: Rig, client: Client
) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    form = {
        "activation": "on",
        "current_limit_a": "20.5",
        "fallback_current_limit_a": "8",
        "csrf_token": client.csrf,
    }
    code, _ = await client.post("/settings/limit", form)
    assert code == 303
    s = rig.deps.flex.settings()
    assert (s.activation, s.current_limit_a, s.fallback_current_limit_a) == (True, 20.5, 8.0)
    assert rig.deps.flex.limit_a() == 20.5
    events = await rig.deps.events.recent(10, EventKind.LIMIT)
    assert events[0].source == "web alice"
    assert "CurrentLimit 20.5 A" in events[0].message


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "10001", "twenty"])
async def test_limit_validation_is_the_local_apis(rig: Rig, client: Client, value: str) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    before = rig.deps.flex.settings()
    form = {"activation": "on", "current_limit_a": value, "csrf_token": client.csrf}
    code, page = await client.post("/settings/limit", form)
    assert code == 422
    assert "Not changed" in page
    assert rig.deps.flex.settings() == before


async def test_evse_target_uses_the_evse_api_checks(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    base = {"evse": EVSE, "csrf_token": client.csrf}
    code, page = await client.post(
        "/settings/target", {**base, "current_a": "3", "duration_s": "60"}
    )
    assert code == 422
    assert "within [6, 32]" in page  # the EVSE API's range check
    code, _ = await client.post(
        "/settings/target", {**base, "current_a": "10", "duration_s": "7200"}
    )
    assert code == 422  # above max_duration_s
    assert rig.deps.targets.get(EVSE) is None
    code, _ = await client.post(
        "/settings/target", {**base, "current_a": "10", "duration_s": "600"}
    )
    assert code == 303
    target = rig.deps.targets.get(EVSE)
    assert target is not None
    assert target.current_a == 10
    code, _ = await client.post(
        "/settings/target", {**base, "clear": "1", "current_a": "", "duration_s": ""}
    )
    assert code == 303
    assert rig.deps.targets.get(EVSE) is None
    kinds = [e.message for e in await rig.deps.events.recent(10, EventKind.TARGET)]
    assert kinds[0].endswith("target cleared")
    assert "target 10 A for 600 s" in kinds[1]


async def test_plug_mode_and_priority_through_plug_settings(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    form = {"plug": "wb1", "mode": "pv", "priority": "5", "csrf_token": client.csrf}
    code, _ = await client.post("/settings/plug", form)
    assert code == 303
    assert rig.deps.plug_settings is not None
    setting = rig.deps.plug_settings.all()["wb1"]
    assert (setting.mode, setting.priority) == (ChargeMode.PV, 5)
    code, _ = await client.post("/settings/plug", {**form, "priority": "500"})
    assert code == 422
    assert rig.deps.plug_settings.all()["wb1"].priority == 5


async def test_plug_setting_refused_changes_neither_mode_nor_priority(
    rig: Rig, client: Client
) -> None:
    # round 9: a valid mode with a priority out of range changed the mode, then answered 422
    assert await client.login("alice", ADMIN_PW) == 303
    assert rig.deps.plug_settings is not None
    before = rig.deps.plug_settings.all()["wb1"]
    form = {"plug": "wb1", "mode": "off", "priority": "500", "csrf_token": client.csrf}
    code, _ = await client.post("/settings/plug", form)
    assert code == 422
    assert rig.deps.plug_settings.all()["wb1"] == before
    assert before.mode != ChargeMode.OFF


async def test_departure_through_plug_settings(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    form = {"plug": "wb1", "hours": "2.5", "need_kwh": "18", "csrf_token": client.csrf}
    code, _ = await client.post("/settings/departure", form)
    assert code == 303
    assert rig.deps.plug_settings is not None
    now = rig.deps.clock.now()
    dep = rig.deps.plug_settings.departure_of("wb1", now)
    assert dep is not None and dep.need_wh == 18000.0
    assert abs((dep.at - now).total_seconds() - 9000.0) < 60.0
    for bad in ({"hours": "0"}, {"hours": "x"}, {"need_kwh": "-1"}, {"need_kwh": "nan"}):
        code, _ = await client.post("/settings/departure", {**form, **bad})
        assert code == 422, bad
    code, _ = await client.post("/settings/departure", {**form, "clear": "1"})
    assert code == 303
    assert rig.deps.plug_settings.departure_of("wb1", now) is None


async def test_viewer_sees_settings_but_cannot_write(rig: Rig, client: Client) -> None:
    assert await client.login("victor", VIEWER_PW) == 303
    code, page = await client.get("/settings")
    assert code == 200
    assert "viewer" in page
    assert "disabled" in page
    before = rig.deps.flex.settings()
    form = {"activation": "on", "current_limit_a": "10", "csrf_token": client.csrf}
    code, _ = await client.post("/settings/limit", form)
    assert code == 403
    assert rig.deps.flex.settings() == before


async def test_removed_admin_can_no_longer_write(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    assert await rig.deps.users.remove("alice")
    form = {"activation": "on", "current_limit_a": "10", "csrf_token": client.csrf}
    code, _ = await client.post("/settings/limit", form)
    assert code == 403
    assert (await client.get("/site"))[0] == 303  # the session is gone


async def test_logout_ends_the_session(client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    code, _ = await client.post("/logout", {"csrf_token": client.csrf})
    assert code == 303
    assert (await client.get("/site"))[0] == 303


async def test_sse_sends_the_status_at_once_and_every_new_cycle(rig: Rig, client: Client) -> None:
    assert await client.login("alice", ADMIN_PW) == 303
    async with client.http.get(rig.url + "/live/stream") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first = await _next_event(r)
        assert first[0] == "status"
        assert first[1]["plugs"][0]["setpoint_a"] == 16
        rig.current.append(status(rig.clock.now(), cycles=8, plugs=(plug_view(setpoint_a=9),)))
        rig.hub.on_status(rig.current[-1])
        second = await asyncio.wait_for(_next_event(r), 2.0)
    assert second[0] == "status"
    assert second[1]["cycles"] == 8
    assert second[1]["plugs"][0]["setpoint_a"] == 9


async def _next_event(response: aiohttp.ClientResponse) -> tuple[str, dict[str, object]]:
    event = ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            return event, json.loads(line[6:])


async def test_events_page_lists_logins_and_filters_by_kind(client: Client) -> None:
    assert await client.login("alice", "bad-password") == 401
    assert await client.login("alice", ADMIN_PW) == 303
    code, page = await client.get("/events")
    assert code == 200
    assert "<td>login</td>" in page
    assert "<td>login_failed</td>" in page
    _, page = await client.get("/events?kind=login_failed")
    assert "<td>login</td>" not in page


# --- units -------------------------------------------------------------------------------------


async def test_throttle_window_slides() -> None:
    clock = VirtualClock()
    throttle = LoginThrottle(clock, max_failures=2, window_s=60.0)
    throttle.failed("user:a")
    assert throttle.retry_after_s("user:a") == 0.0
    await clock.advance(10.0)
    throttle.failed("user:a", "ip:1")
    assert throttle.retry_after_s("user:a") == pytest.approx(50.0)
    assert throttle.retry_after_s("ip:1") == 0.0
    await clock.advance(50.0)
    assert throttle.retry_after_s("user:a") == 0.0


async def test_sessions_expire_when_idle() -> None:
    clock = VirtualClock()
    store = SessionStore(clock, idle_s=100.0)
    session = store.create("a", Role.VIEWER)
    await clock.advance(90.0)
    assert store.get(session.id) is session  # touched: idle time restarts
    await clock.advance(90.0)
    assert store.get(session.id) is session
    await clock.advance(101.0)
    assert store.get(session.id) is None
    assert store.get("x" * 500) is None


async def test_users_are_stored_as_argon2_hashes(tmp_path: Path) -> None:
    engine = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    try:
        repo = WebUserRepository(engine)
        await repo.add("bob", "correct horse", Role.VIEWER)
        with pytest.raises(ValueError, match="exists"):
            await repo.add("bob", "another one", Role.ADMIN)
        with pytest.raises(ValueError, match="password"):
            await repo.add("carl", "short", Role.ADMIN)
        async with engine.connect() as conn:
            stored = (await conn.exec_driver_sql("SELECT password_hash FROM web_users")).scalar()
        assert str(stored).startswith("$argon2id$")
        # the library's recommended cost, not the rigs' cheap one (tests/web/webkit.py)
        cost = PasswordHasher()
        assert f"$m={cost.memory_cost},t={cost.time_cost},p={cost.parallelism}$" in str(stored)
        assert "correct horse" not in str(stored)
        user = await repo.verify("bob", "correct horse")
        assert user is not None
        assert user.role is Role.VIEWER
        assert await repo.verify("bob", "wrong") is None
        assert await repo.verify("nobody", "correct horse") is None
        assert [u.name for u in await repo.list()] == ["bob"]
        assert await repo.remove("bob")
        assert not await repo.remove("bob")
    finally:
        await engine.dispose()


async def test_status_watcher_logs_fault_and_fallback_transitions(tmp_path: Path) -> None:
    engine = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    clock = VirtualClock()
    log = EventLog(WebEventRepository(engine), clock)
    watcher = StatusWatcher(log)
    try:
        watcher.on_status(status(clock.now()))  # healthy first cycle: nothing to say
        watcher.on_status(status(clock.now(), meter_fallback=True))
        watcher.on_status(
            status(
                clock.now(),
                meter_fallback=True,
                plugs=(plug_view(online=False, status=PlugStatus.OFFLINE),),
            )
        )
        watcher.on_status(status(clock.now()))
        await log.close()
        messages = [(e.kind, e.message) for e in reversed(await log.recent())]
    finally:
        await engine.dispose()
    assert messages == [
        (EventKind.FALLBACK, "meter-loss fallback started: meter stale or gone"),
        (EventKind.FAULT, "charger not reachable"),
        (EventKind.FALLBACK, "meter-loss fallback ended: meter readings are back"),
        (EventKind.FAULT, "fault cleared: plug back to normal"),
    ]


def test_circuit_view_splits_ev_and_non_ev_and_headroom() -> None:
    from datetime import UTC, datetime

    views = {c["id"]: c for c in circuit_views(status(datetime.now(UTC)), TREE)}
    main_l1 = views["main"]["phases"][0]
    assert main_l1["current_a"] == 25.0
    assert main_l1["ev_a"] == 15.5
    assert main_l1["non_ev_a"] == 9.5
    assert main_l1["headroom_a"] == 10.0
    garage_l1 = views["garage"]["phases"][0]
    assert garage_l1["limit_a"] == 25.0
    assert garage_l1["current_a"] == 16.5  # its non-EV load plus the plug
    assert views["garage"]["depth"] == 1
    assert len(STATUS_WORDS) == len(PlugStatus) == 13
