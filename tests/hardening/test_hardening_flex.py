"""Issue 17 "should fix": the EMS fallback never rises above the EMS's own limit, a corrupt
settings file keeps the last good copy and starts in fallback, save before switch."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from structlog.testing import capture_logs

from fuseguard.api.local import create_local_app
from fuseguard.control.flex import FlexManagement, FlexSettings, JsonFileFlexStore, MemoryFlexStore
from fuseguard.model.clock import VirtualClock
from tests.hardening.hardening_support import AUTH_HEADER, PASSWORD, USER, StaticLiveData

FUSE_A = 35.0


async def test_unset_fallback_never_exceeds_the_last_ems_limit() -> None:
    clock = VirtualClock()
    flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=10.0)
    flex.update(activation=True, current_limit_a=20.0)
    await clock.advance(11.0)
    assert flex.in_fallback
    assert flex.limit_a() == 20.0  # not the fuse's 35 A
    flex.update(current_limit_a=12.0)
    await clock.advance(11.0)
    assert flex.limit_a() == 12.0


async def test_configured_or_written_fallback_is_kept() -> None:
    clock = VirtualClock()
    configured = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=10.0, default_fallback_a=30.0)
    configured.update(activation=True, current_limit_a=20.0)
    written = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=10.0)
    written.update(activation=True, current_limit_a=20.0, fallback_current_limit_a=25.0)
    written.update(current_limit_a=10.0)
    await clock.advance(11.0)
    assert configured.limit_a() == 30.0
    assert written.limit_a() == 25.0


def test_fallback_follows_the_limit_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "flex_settings.json"
    flex = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    flex.update(activation=True, current_limit_a=18.0)
    again = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    assert again.settings().fallback_current_limit_a == 18.0
    assert again.settings().fallback_set is False


def test_corrupt_file_restores_last_good_copy_and_starts_in_fallback(tmp_path: Path) -> None:
    path = tmp_path / "flex_settings.json"
    flex = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    flex.update(activation=True, current_limit_a=20.0, fallback_current_limit_a=8.0)
    path.write_text('{"activation": tru', encoding="utf-8")  # torn by something outside us
    with capture_logs() as logs:
        restarted = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=JsonFileFlexStore(path))
    assert restarted.settings().activation is True  # the active EMS limit is not dropped
    assert restarted.in_fallback
    assert restarted.limit_a() == 8.0
    assert any(e["event"] == "flex_started_in_fallback" for e in logs)
    assert path.with_name("flex_settings.json.corrupt").exists()
    restarted.keep_alive(source="ems")  # the EMS is back: fallback ends
    assert not restarted.in_fallback


def test_corrupt_file_without_copy_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "flex_settings.json"
    path.write_text("garbage", encoding="utf-8")
    store = JsonFileFlexStore(path)
    assert store.load() is None
    assert store.load_problem is not None
    assert "no usable last good copy" in store.load_problem


def test_stray_temp_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "flex_settings.json"
    stray = tmp_path / ".flex_settings.json.4242.tmp"
    stray.write_text("{", encoding="utf-8")
    JsonFileFlexStore(path).load()
    assert not stray.exists()


class _BrokenStore(MemoryFlexStore):
    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def save(self, settings: FlexSettings) -> None:
        if self.broken:
            raise OSError(28, "No space left on device")
        super().save(settings)


def test_failed_save_changes_nothing() -> None:
    store = _BrokenStore()
    flex = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=store)
    flex.update(activation=True, current_limit_a=20.0)
    store.broken = True
    with pytest.raises(OSError, match="No space"):
        flex.update(current_limit_a=30.0)
    assert flex.settings().current_limit_a == 20.0
    assert flex.limit_a() == 20.0


async def test_expiry_notifies_even_when_the_save_fails() -> None:
    clock = VirtualClock()
    store = _BrokenStore()
    flex = FlexManagement(clock, fuse_a=FUSE_A, timeout_s=5.0, store=store)
    flex.update(activation=True, current_limit_a=20.0, fallback_current_limit_a=6.0)
    heard: list[float] = []
    flex.subscribe(lambda: heard.append(flex.limit_a()))
    store.broken = True
    await clock.advance(6.0)
    assert heard == [6.0]


async def test_local_api_answers_503_when_the_settings_cannot_be_saved() -> None:
    store = _BrokenStore()
    flex = FlexManagement(VirtualClock(), fuse_a=FUSE_A, store=store)
    store.broken = True
    app = create_local_app(flex, StaticLiveData(), user=USER, password=PASSWORD)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge") as client:
        r = await client.post(
            "/v1/flex_management/setting",
            content=json.dumps({"ActivePowerActivation": True, "CurrentLimit": 20}),
            headers={"authorization": AUTH_HEADER, "content-type": "application/json"},
        )
    assert r.status_code == 503
    assert flex.settings().activation is False
