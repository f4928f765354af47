"""The history, compliance and session pages over HTTP (login as in tests/web), and the CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fuseguard.api.web.history import BadQueryError, bucket_minutes, month_window
from fuseguard.api.web.recorder import HistoryRecorder
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus
from fuseguard.store.history import ChargeSession, HistoryBatch, HistoryRepository

from ..web.webkit import (
    ADMIN_PW,
    TREE,
    VIEWER_PW,
    Client,
    Rig,
    plug_view,
    start_rig,
    status,
    stop_rig,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    repo = HistoryRepository(r.engine)
    r.deps.history = repo
    rec = HistoryRecorder(repo, TREE, r.clock)
    idle = plug_view(status=PlugStatus.IDLE, current_a=Phases(), energy_wh=None)
    for i in range(180):  # 3 minutes; a second above the main limit at 12:01:30
        grid = Phases(36.0, 20.0, 22.0) if i == 90 else Phases(25.0, 20.0, 22.0)
        plug = plug_view(energy_wh=10.0 * i, id_tag="04A2B3C4") if i < 150 else idle
        pv_w = -3000.0 - 10.0 * i if i < 120 else None  # producing; the PV meter is lost at 12:02
        t = T0 + timedelta(seconds=i)
        rec.on_status(status(t, grid_current_a=grid, plugs=(plug,), pv_power_w=pv_w))
    await rec.close()
    # an older session of another plug, with a label a spreadsheet would run as a formula
    other = ChargeSession("f" * 32, "wb2", "=HYPERLINK(1)", T0 - timedelta(days=40))
    other.ended_at = other.started_at + timedelta(hours=2)
    other.energy_wh = 20_000.0
    await repo.write(HistoryBatch(sessions=[other]))
    try:
        yield r
    finally:
        await stop_rig(r)


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[Client]:
    c = Client(rig.url)
    assert await c.login("victor", VIEWER_PW) == 303  # a viewer may see every history page
    try:
        yield c
    finally:
        await c.close()


async def test_history_pages_need_a_login(rig: Rig) -> None:
    c = Client(rig.url)
    try:
        for path in ("/history", "/compliance", "/sessions"):
            assert (await c.get(path))[0] == 303, path
        for path in ("/history/data", "/sessions.csv"):
            assert (await c.get(path))[0] == 401, path
    finally:
        await c.close()


async def test_history_page_and_its_data(client: Client) -> None:
    code, html = await client.get("/history?span=day&date=2026-03-01")
    assert code == 200
    assert 'data-url="/history/data?span=day&amp;date=2026-03-01"' in html
    assert "/static/history.js" in html
    assert 'href="/history" aria-current="page"' in html
    code, text = await client.get("/history/data?span=day&date=2026-03-01")
    assert code == 200
    data = json.loads(text)
    assert data["resolution_s"] == 60
    assert data["t"] == [(T0 + timedelta(minutes=m)).timestamp() for m in range(3)]
    assert data["grid_l1"] == [25.0, 36.0, 25.0]  # the minute's maximum
    assert data["limit_l1"] == [35.0, 35.0, 35.0]
    assert data["pv_w"] == [3295, 3895, None]  # the minute's mean; no PV reading: null
    code, text = await client.get("/history/data?span=hour&date=2026-03-01&hour=12")
    data = json.loads(text)
    assert data["resolution_s"] == 1
    assert len(data["t"]) == 180
    assert data["grid_l1"][90] == 36.0
    assert data["ev_l1"][0] == 15.5
    assert data["pv_w"][:2] == [3000, 3010]
    assert data["pv_w"][119:121] == [4190, None]
    for bad in ("span=year", "date=2026-13-01", "date=yesterday", "span=hour&hour=24"):
        assert (await client.get("/history/data?" + bad))[0] == 400, bad


async def test_compliance_lists_the_second_above_the_limit(client: Client) -> None:
    code, html = await client.get("/compliance?from=2026-03-01&to=2026-03-01")
    assert code == 200
    assert "A fuse was exceeded in 1 phase-seconds." in html
    assert '<tr data-circuit="main" data-phase="L1" class="over">' in html
    assert "<td>36.0</td><td>103 %</td>" in html
    assert "2026-03-01 12:01:30</td><td>main</td><td>L1</td><td>36.0</td>" in html
    assert "<td>load step</td>" in html
    code, html = await client.get("/compliance?from=2026-03-02&to=2026-03-03")
    assert "No data recorded in this period." in html
    assert (await client.get("/compliance?from=2026-03-02&to=2026-03-01"))[0] == 400


async def test_sessions_page_filters_by_plug_and_month(client: Client) -> None:
    code, html = await client.get("/sessions")
    assert code == 200
    assert html.count("<tr data-session=") == 2
    code, html = await client.get("/sessions?plug=wb1&month=2026-03")
    assert html.count("<tr data-session=") == 1
    assert "Plug 1 (wb1)" in html
    assert "<td>04A2B3C4</td>" in html  # the OCPP idTag of the session
    assert "2026-03-01 12:00:00" in html
    assert 'href="/sessions.csv?plug=wb1&amp;month=2026-03"' in html
    code, html = await client.get("/sessions?month=2026-02")
    assert "No sessions." in html
    assert (await client.get("/sessions?month=2026-1"))[0] == 400
    assert (await client.get("/sessions?plug=a%22b"))[0] == 400


async def test_sessions_csv_contents(client: Client) -> None:
    code, text = await client.get("/sessions.csv")
    assert code == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2
    first, older = rows
    assert first == {
        "plug_id": "wb1",
        "plug_label": "Plug 1",
        "started_at": "2026-03-01T12:00:00+00:00",
        "ended_at": "2026-03-01T12:02:30+00:00",
        "duration_s": "150",
        "energy_wh": "1490.0",
        "max_current_a": "15.8",
        "mean_current_a": "15.8",
        "charging_s": "150",
        "id_tag": "04A2B3C4",
    }
    assert older["id_tag"] == ""
    assert older["plug_label"] == "'=HYPERLINK(1)"  # no formula reaches a spreadsheet
    assert older["duration_s"] == "7200"
    code, text = await client.get("/sessions.csv?plug=wb2")
    assert [r["plug_id"] for r in csv.DictReader(io.StringIO(text))] == ["wb2"]


async def test_admin_sees_the_same_pages(rig: Rig) -> None:
    c = Client(rig.url)
    try:
        assert await c.login("alice", ADMIN_PW) == 303
        assert (await c.get("/sessions"))[0] == 200
    finally:
        await c.close()


def test_month_window_and_bucketing() -> None:
    assert month_window("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_window("") is None
    with pytest.raises(BadQueryError):
        month_window("2026-00")
    assert bucket_minutes([], 600)["t"] == []
