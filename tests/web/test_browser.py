"""The dashboard in a real browser (Debian's Chromium via Playwright) against ``fuseguard demo``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from .conftest import AXE, DESKTOP, PHONE, SCREENSHOTS, Demo, Watch, login, open_context

VIEWER = ("viewer1", "viewer-password-1")
PAGES = ("site", "settings", "events")


def _viewer(demo: Demo) -> tuple[str, str]:
    """Create the viewer once with the CLI (``fuseguard user add``), reading the password on stdin."""
    exe = Path(sys.executable).parent / "fuseguard"
    cmd = [str(exe), "user", "add", VIEWER[0], "--role", "viewer", "--password-stdin", "--replace"]
    done = subprocess.run(
        [*cmd, "--db", demo.db_url],
        input=VIEWER[1] + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [str(exe), "user", "list", "--db", demo.db_url], capture_output=True, text=True, check=False
    )
    assert re.search(r"viewer1\s+viewer", listed.stdout)
    assert VIEWER[1] not in listed.stdout
    return VIEWER


def _admin(demo: Demo) -> tuple[str, str]:
    return demo.info["web"]["user"], demo.info["web"]["password"]


def test_demo_prints_and_records_the_dashboard(demo: Demo) -> None:
    web = demo.info["web"]
    assert set(web) == {"url", "user", "password"}
    assert web["url"].startswith("http://127.0.0.1:")
    assert web["url"] in demo.stdout.read_text()


def test_login_form_by_accessible_names(demo: Demo, ctx: tuple[Any, Watch]) -> None:
    context, watch = ctx
    page = context.new_page()
    page.goto(demo.web + "/site")
    page.wait_for_url("**/login")
    page.get_by_label("User").fill("demo")
    page.get_by_label("Password").fill("definitely-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user or password")
    login(page, demo.web, *_admin(demo))
    expect(page.get_by_role("heading", name="Site", exact=True)).to_be_visible()
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["fg_session"]["httpOnly"] is True
    assert cookies["fg_session"]["sameSite"] == "Strict"
    # the wrong password answered 401, which Chromium logs; nothing else may fail
    assert [e for e in watch.console_errors if "401" not in e] == []


def test_live_values_change_over_sse(demo: Demo, ctx: tuple[Any, Watch]) -> None:
    context, watch = ctx
    page = context.new_page()
    login(page, demo.web, *_admin(demo))
    stamp = page.locator('[data-site="time"]')
    first = stamp.inner_text()
    page.wait_for_function(
        "t => document.querySelector('[data-site=\"time\"]').textContent !== t",
        arg=first,
        timeout=5000,
    )
    expect(page.locator("#conn")).to_have_text("Live")
    assert page.locator("[data-plug]").count() == 3
    assert page.locator("[data-circuit]").count() >= 1
    expect(page.locator("#chart canvas").first).to_be_attached()
    # the live data and the page agree on the plugs' words
    words = page.locator('[data-plug] [data-f="status_words"]').all_inner_texts()
    assert all(w and w != "-" for w in words)
    assert watch.console_errors == []


def test_setting_changed_in_ui_reaches_the_apis(
    demo: Demo, ctx: tuple[Any, Watch], playwright_session: Any
) -> None:
    context, watch = ctx
    page = context.new_page()
    login(page, demo.web, *_admin(demo))
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("External limit active").check()
    page.get_by_label("Current limit (A)").fill("23.5")
    page.get_by_role("button", name="Apply limit").click()
    expect(page.get_by_role("status").filter(has_text="CurrentLimit")).to_contain_text(
        "CurrentLimit 23.5 A"
    )
    evse = demo.info["evse_api"]["evses"][0]
    page.get_by_label("EVSE", exact=True).select_option(evse["uuid"])
    page.get_by_label("Target current (A)").fill("10")
    page.get_by_label("Duration (s)").fill("600")
    page.get_by_role("button", name="Set target").click()
    expect(page.get_by_role("status").filter(has_text="target")).to_contain_text("target 10 A")

    local = demo.info["local_api"]
    api = playwright_session.request.new_context(
        ignore_https_errors=True,
        http_credentials={"username": local["user"], "password": local["password"]},
    )
    try:
        setting = api.get(local["url"] + "/v1/flex_management/setting").json()
        evse_api = demo.info["evse_api"]
        url = (
            f"{evse_api['url']}/edgedevices/{evse_api['edge_device_id']}"
            f"/evses/{evse['uuid']}/currentsettings"
        )
        target = api.get(url, headers={"evsetoken": evse["token"]}).json()
    finally:
        api.dispose()
    assert setting["ActivePowerActivation"] is True
    assert setting["CurrentLimit"] == 23.5
    assert target["current"] == 10

    page.get_by_role("link", name="Events").click()
    rows = page.locator("table.events tbody tr").all_inner_texts()
    assert any("limit" in r and "CurrentLimit 23.5 A" in r for r in rows)
    assert any("target" in r and "target 10 A" in r for r in rows)
    assert any("login" in r for r in rows)
    assert watch.console_errors == []


def test_viewer_cannot_write(demo: Demo, ctx: tuple[Any, Watch]) -> None:
    context, watch = ctx
    page = context.new_page()
    login(page, demo.web, *_viewer(demo))
    page.goto(demo.web + "/settings")
    expect(page.get_by_role("button", name="Apply limit")).to_be_disabled()
    expect(page.get_by_text("logged in as a viewer")).to_be_visible()
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    answer = page.request.post(
        demo.web + "/settings/limit",
        form={"activation": "on", "current_limit_a": "7", "csrf_token": token or ""},
    )
    assert answer.status == 403
    assert watch.console_errors == []


def test_departure_at_a_time_of_day_is_shown_in_force(demo: Demo, ctx: tuple[Any, Watch]) -> None:
    context, watch = ctx
    page = context.new_page()
    login(page, demo.web, *_admin(demo))
    page.goto(demo.web + "/settings")
    form = page.get_by_role("group", name=re.compile(r"· departure")).first
    plug = form.locator("legend").inner_text().split(" ")[0]
    expect(form.get_by_text("No departure announced.")).to_be_visible()
    form.get_by_label("Leaves at (HH:MM)").fill("7:30")
    form.get_by_label("Energy need (kWh)").fill("20")
    form.get_by_role("button", name="Announce").click()
    in_force = re.compile(r"Departure in force: leaves 07:30 (today|tomorrow \(.+\)) · 20 kWh")
    expect(page.get_by_role("status")).to_contain_text(f"plug {plug}: leaves 07:30")
    form = page.get_by_role("group", name=re.compile(r"· departure")).first
    expect(form.locator("p.departure")).to_have_text(in_force)
    expect(form.get_by_label("Energy need (kWh)")).to_have_value("20")
    page.goto(demo.web + "/site")
    card = page.locator(f'[data-plug="{plug}"] [data-f="departure_words"]')
    expect(card).to_contain_text("07:30")
    first = page.locator('[data-site="time"]').inner_text()
    page.wait_for_function(  # a live update keeps it (live.js writes departure_words)
        "t => document.querySelector('[data-site=\"time\"]').textContent !== t",
        arg=first,
        timeout=5000,
    )
    expect(card).to_contain_text("· 20 kWh ·")
    page.goto(demo.web + "/settings")
    form = page.get_by_role("group", name=re.compile(r"· departure")).first
    form.get_by_role("button", name="Clear").click()
    form = page.get_by_role("group", name=re.compile(r"· departure")).first
    expect(form.get_by_text("No departure announced.")).to_be_visible()
    assert watch.console_errors == []


def test_csrf_less_post_is_refused(demo: Demo, ctx: tuple[Any, Watch]) -> None:
    context, _ = ctx
    page = context.new_page()
    login(page, demo.web, *_admin(demo))
    before = page.request.get(demo.web + "/live/data").status
    assert before == 200
    answer = page.request.post(
        demo.web + "/settings/limit", form={"activation": "on", "current_limit_a": "7"}
    )
    assert answer.status == 403
    assert "CSRF" in answer.text()


def test_screenshots_and_accessibility(demo: Demo, browser: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    serious: dict[str, list[str]] = {}
    for size_name, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
        # bypass_csp lets the test inject axe-core; the pages themselves run under the CSP
        context, watch = open_context(browser, viewport, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(demo.web + "/login")
            page.screenshot(path=str(SCREENSHOTS / f"web-login-{size_name}.png"))
            serious[f"login {size_name}"] = _axe(page)
            login(page, demo.web, *_admin(demo))
            for name in PAGES:
                page.goto(f"{demo.web}/{name}")
                if name == "site":
                    page.wait_for_timeout(1500)  # a few live updates and the chart
                page.screenshot(path=str(SCREENSHOTS / f"web-{name}-{size_name}.png"))
                serious[f"{name} {size_name}"] = _axe(page)
        finally:
            context.close()
        assert watch.outside() == []
        assert watch.console_errors == []
    assert {k: v for k, v in serious.items() if v} == {}


def _axe(page: Any) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
