"""History, compliance and sessions in a real browser (Debian's Chromium) against ``fuseguard demo``:
the recorder runs in the demo's edge, the chart draws its data, axe finds no serious violation."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from playwright.sync_api import expect

from ..web.conftest import AXE, DESKTOP, PHONE, SCREENSHOTS, Demo, login, open_context

PAGES = ("history?span=hour", "compliance", "sessions")


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def _admin(demo: Demo) -> tuple[str, str]:
    return demo.info["web"]["user"], demo.info["web"]["password"]


def test_history_chart_draws_recorded_seconds(demo: Demo, browser: Any) -> None:
    context, watch = open_context(browser, DESKTOP)
    try:
        page = context.new_page()
        login(page, demo.web, *_admin(demo))
        status = page.locator("#history-status")
        for _ in range(30):  # the recorder writes every 5 s
            page.goto(demo.web + "/history?span=hour")
            expect(status).not_to_have_text("Loading…")
            if re.fullmatch(r"\d+ points", status.inner_text()):
                break
            page.wait_for_timeout(1000)
        assert re.fullmatch(r"\d+ points", status.inner_text()), status.inner_text()
        expect(page.locator("#history-chart canvas")).to_have_count(1)
        expect(page.locator("#history-chart .u-legend")).to_contain_text("limit A")
        expect(page.locator("#history-chart .u-legend")).to_contain_text("PV kW")
        data = page.request.get(demo.web + "/history/data?span=hour").json()
        assert any(isinstance(w, int) for w in data["pv_w"]), "the demo's PV meter is recorded"
        page.goto(demo.web + "/compliance")
        expect(page.locator("#verdict")).not_to_be_empty()
        expect(page.locator('tr[data-circuit="main"][data-phase="L1"]')).to_have_count(1)
        page.goto(demo.web + "/sessions")
        expect(page.get_by_role("link", name="Download CSV")).to_be_visible()
        answer = page.request.get(demo.web + "/sessions.csv")
        assert answer.status == 200
        header = next(csv.reader(io.StringIO(answer.text())))
        assert header[:3] == ["plug_id", "plug_label", "started_at"]
    finally:
        context.close()
    assert watch.outside() == []
    assert watch.console_errors == []


def test_history_pages_screenshots_and_accessibility(demo: Demo, browser: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    serious: dict[str, list[str]] = {}
    for size_name, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
        context, watch = open_context(browser, viewport, bypass_csp=True)
        try:
            page = context.new_page()
            login(page, demo.web, *_admin(demo))
            for path in PAGES:
                name = path.split("?", 1)[0]
                page.goto(f"{demo.web}/{path}")
                if name == "history":
                    expect(page.locator("#history-status")).not_to_have_text("Loading…")
                page.screenshot(path=str(SCREENSHOTS / f"web-{name}-{size_name}.png"))
                serious[f"{name} {size_name}"] = _axe(page)
        finally:
            context.close()
        assert watch.outside() == []
        assert watch.console_errors == []
    assert {k: v for k, v in serious.items() if v} == {}
