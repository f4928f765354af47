"""Browser-test fixtures: one ``fuseguard demo`` subprocess and Debian's Chromium via Playwright.

Chromium comes from the distribution (``apt-get install -y chromium`` when it is missing, as
root; the Makefile's test setup does the same); Playwright never downloads a browser here.
Every page records its console errors and every request it makes, so that each test can check
that nothing failed and no request left the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from ..conftest import StopLater

CHROMIUM = os.environ.get("FUSEGUARD_CHROMIUM", "/usr/bin/chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
ROOT = Path(__file__).resolve().parents[2]
# `FUSEGUARD_SCREENSHOTS=1 make pytest` refreshes docs/screenshots; otherwise they go to a temp dir
# (a test run must not dirty the work tree).
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("FUSEGUARD_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "fuseguard-screenshots"
)
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _ensure_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, timeout=900)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package `chromium`")
    return CHROMIUM


@dataclass
class Demo:
    """The running demo: its demo.json and data dir."""

    info: dict[str, Any]
    data_dir: Path
    stdout: Path

    @property
    def web(self) -> str:
        return str(self.info["web"]["url"])

    @property
    def db_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / 'fuseguard.db').resolve()}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, stop_later: StopLater) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("web-demo")
    out = data_dir / "demo.out"
    exe = Path(sys.executable).parent / "fuseguard"
    ports = ["--local-api-port", "0", "--modbus-port", "0", "--evse-api-port", "0"]
    cmd = [str(exe), "demo", "--headless", "--data-dir", str(data_dir), *ports, "--web-port", "0"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        demo_json = data_dir / "demo.json"
        deadline = time.monotonic() + 60
        while not demo_json.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"demo did not start:\n{out.read_text()[-3000:]}")
            time.sleep(0.2)
        time.sleep(0.3)  # the file is written in one go; let the print follow
        yield Demo(json.loads(demo_json.read_text()), data_dir, out)
    finally:
        # stops as before (SIGINT, killed after 20 s), but the worker need not wait for it
        proc.send_signal(signal.SIGINT)
        stop_later.add(proc, grace_s=20)


# Module scope, not session: while Playwright's sync API is open, its event loop blocks the
# asyncio tests that follow (pytest-asyncio cannot run a loop inside it).
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    _ensure_chromium()
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_session: Any) -> Iterator[Any]:
    b = playwright_session.chromium.launch(
        executable_path=_ensure_chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    try:
        yield b
    finally:
        b.close()


@dataclass
class Watch:
    """What a browser context did: console errors and every request URL."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Requests to anything but this machine (data: URLs stay in the browser)."""
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "about", "blob"):
                continue
            if parsed.hostname not in LOOPBACK:
                out.append(url)
        return out


def open_context(browser: Any, viewport: dict[str, int], **kw: Any) -> tuple[Any, Watch]:
    """A fresh context (own cookies) whose page console and requests are recorded."""
    context = browser.new_context(viewport=viewport, **kw)
    context.set_default_timeout(10_000)
    watch = Watch()
    context.on("request", lambda req: watch.requests.append(req.url))

    def on_page(page: Any) -> None:
        page.on(
            "console", lambda m: watch.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: watch.console_errors.append(str(e)))

    context.on("page", on_page)
    return context, watch


@pytest.fixture
def ctx(browser: Any) -> Iterator[tuple[Any, Watch]]:
    context, watch = open_context(browser, DESKTOP)
    try:
        yield context, watch
    finally:
        context.close()
    assert watch.outside() == []


def login(page: Any, base: str, user: str, password: str) -> None:
    """Log in through the form, by its accessible names."""
    page.goto(base + "/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/site")
