"""Fleet click-through in a real browser (Debian's Chromium): from the cloud's fleet page to an
edge's live page relayed over the machine's Mosquitto; live updates, staleness, screenshots, axe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .cloudrig import ADMIN, CloudRig, running_cloud
from .conftest import DESKTOP, PHONE, SCREENSHOTS, open_context
from .test_browser import _axe

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def rig(mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudRig]:
    with running_cloud(mqtt_url, tmp_path_factory.mktemp("cloud-live")) as r:
        yield r


def _credentials() -> dict[str, str]:
    return {"username": ADMIN[0], "password": ADMIN[1]}


def test_click_through_from_the_fleet_to_the_live_edge(rig: CloudRig, browser: Any) -> None:
    context, watch = open_context(browser, DESKTOP, http_credentials=_credentials())
    try:
        page = context.new_page()
        page.goto(rig.url + "/fleet")
        page.get_by_role("link", name=rig.edge_id).click()
        page.wait_for_url(f"**/fleet/edges/{rig.edge_id}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(rig.edge_id)
        expect(page.locator('.circuit[data-circuit="garage"] .phase')).to_have_count(3)
        card = page.locator('article.plug[data-plug="wb1"]')
        expect(card.locator('[data-f="status_words"]')).to_have_text("Charging")
        expect(card.locator('[data-f="setpoint_a"]')).to_have_text("16")
        expect(page.locator("#conn")).to_have_text("Live")
        rig.setpoint_a = 10  # the edge changes; the page follows over MQTT + SSE, no reload
        expect(card.locator('[data-f="setpoint_a"]')).to_have_text("10")
        rig.stopped_s = 30.0  # the edge's control loop stalls: the page says so
        expect(page.locator("#conn")).to_contain_text("stale")
        rig.stopped_s = 0.0
        expect(page.locator("#conn")).to_have_text("Live")
        page.get_by_role("link", name="Back to the fleet").click()
        page.wait_for_url("**/fleet")
    finally:
        context.close()
    assert watch.outside() == []
    assert watch.console_errors == []


def test_cloud_pages_screenshots_and_accessibility(rig: CloudRig, browser: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    serious: dict[str, list[str]] = {}
    for size, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
        context, watch = open_context(
            browser, viewport, http_credentials=_credentials(), bypass_csp=True
        )
        try:
            page = context.new_page()
            for name, path in (("fleet", "/fleet"), ("edge", f"/fleet/edges/{rig.edge_id}")):
                page.goto(rig.url + path)
                if name == "edge":
                    expect(page.locator("#conn")).to_have_text("Live")
                page.screenshot(path=str(Path(SCREENSHOTS) / f"cloud-{name}-{size}.png"))
                serious[f"{name} {size}"] = _axe(page)
        finally:
            context.close()
        assert watch.outside() == []
        assert watch.console_errors == []
    assert serious == {key: [] for key in serious}
