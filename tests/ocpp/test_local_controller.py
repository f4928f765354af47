"""Local controller mode: fuseguard between the charge point and a stub backend (a second
central system built on the ``ocpp`` library), forwarding both ways and queueing while it is down."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import ServerConnection, serve

from tests.ports import free_port

from .conftest import central, charge_point, wait_for

BACKEND_TX = 777


class StubBackend(ChargePoint):
    """The operator's backend: records every frame it receives, answers in its own way."""

    def __init__(self, identity: str, connection: Any, frames: list[list[Any]]) -> None:
        super().__init__(identity, connection, response_timeout=5)
        self.frames = frames

    async def route_message(self, raw_msg: str) -> None:
        self.frames.append(json.loads(raw_msg))
        await super().route_message(raw_msg)

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(
            current_time="2026-01-05T00:00:00Z", interval=123, status="Accepted"
        )

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> Any:
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> Any:
        return call_result.MeterValues()

    @on(Action.start_transaction)
    def on_start(self, **_: Any) -> Any:
        return call_result.StartTransaction(
            transaction_id=BACKEND_TX, id_tag_info={"status": "Accepted"}
        )

    @on(Action.stop_transaction)
    def on_stop(self, **_: Any) -> Any:
        return call_result.StopTransaction()

    @on(Action.authorize)
    def on_authorize(self, **_: Any) -> Any:
        return call_result.Authorize(id_tag_info={"status": "Blocked"})


class Backend:
    def __init__(self) -> None:
        self.frames: list[list[Any]] = []
        self.sessions: list[StubBackend] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.auth.append(ws.request.headers.get("Authorization"))
        cp = StubBackend(ws.request.path.rsplit("/", 1)[-1], ws, self.frames)
        self.sessions.append(cp)
        with contextlib.suppress(Exception):
            await cp.start()

    def calls(self, action: str) -> list[dict[str, Any]]:
        return [f[3] for f in self.frames if f[0] == 2 and f[2] == action]


@contextlib.asynccontextmanager
async def backend_on(port: int = 0) -> AsyncIterator[tuple[Backend, int]]:
    b = Backend()
    async with serve(b.handler, "127.0.0.1", port, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        yield b, int(next(iter(server.sockets)).getsockname()[1])


async def test_messages_are_forwarded_both_ways_and_caps_stay(tmp_path: Path) -> None:
    async with (
        backend_on() as (backend, port),
        central(upstream=f"ws://127.0.0.1:{port}/ocpp", spool_dir=tmp_path, connectors=1) as site,
        charge_point(site.url()) as (cp, _),
    ):
        # the backend answered the boot, not fuseguard (interval 123, not 60)
        assert backend.paths == ["/ocpp/CP1"]
        assert backend.auth[0] is not None and backend.auth[0].startswith("Basic ")
        assert backend.calls("BootNotification") == [
            {"chargePointModel": "Test", "chargePointVendor": "fuseguard"}
        ]
        await wait_for(site.station.ready.is_set)
        # fuseguard's caps: ChargePointMaxProfile on connector 0, at the two highest levels
        (safe,) = cp.safes()
        assert safe["charging_profile_purpose"] == "ChargePointMaxProfile"
        assert safe["stack_level"] == 7
        assert [c for c, p in cp.profiles] == [0]
        await site.connectors[0].set_current_limit(10)
        (lease,) = cp.leases()
        assert lease["stack_level"] == 8
        assert lease["charging_profile_purpose"] == "ChargePointMaxProfile"
        # charge point -> backend, unchanged, and the backend's answer back
        status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
        await cp.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
        )
        await wait_for(lambda: status in backend.calls("StatusNotification"))
        tx = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="TAG", meter_start=5, timestamp="2026-01-05T00:00:00Z"
            )
        )
        assert tx.transaction_id == BACKEND_TX
        assert (await cp.call(call.Authorize(id_tag="TAG"))).id_tag_info["status"] == "Blocked"
        assert site.station.connectors[1].transaction_id == BACKEND_TX
        # fuseguard observed it too
        assert (await site.connectors[0].read()).ocpp_state == "charging"
        # backend -> charge point: its profile request, answered by the charge point itself
        (b,) = backend.sessions
        tx_profile = {
            "chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "transactionId": BACKEND_TX,
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20.0}]},
        }  # fmt: skip
        before = len(cp.profiles)
        result = await b.call(
            call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_profile)
        )
        assert result.status == "Accepted"
        assert cp.profiles[before] == (1, {
            "charging_profile_id": 5, "stack_level": 0, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative", "transaction_id": BACKEND_TX,
            "charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 20.0}]},
        })  # fmt: skip
        # ... after which fuseguard puts its caps back (they cap, the backend's profile stays)
        await wait_for(lambda: len(cp.safes()) == 2 and len(cp.leases()) == 2)
        # a clear-all from the backend reaches the charge point; fuseguard re-installs its caps
        assert (await b.call(call.ClearChargingProfile())).status == "Accepted"
        assert cp.cleared == [{}]
        await wait_for(lambda: len(cp.safes()) == 3)
        composite = await b.call(call.GetCompositeSchedule(connector_id=1, duration=60))
        assert composite.status == "Rejected"  # what the charge point said


async def test_backend_down_answers_locally_spools_and_replays_in_order(tmp_path: Path) -> None:
    port = free_port()
    async with (
        central(
            upstream=f"ws://127.0.0.1:{port}/ocpp",
            spool_dir=tmp_path,
            allowed_id_tags=frozenset({"OK"}),
        ) as site,
        charge_point(site.url()) as (cp, _),
    ):
        await wait_for(site.station.ready.is_set)
        # local authorisation policy while the backend is away
        assert (await cp.call(call.Authorize(id_tag="OK"))).id_tag_info["status"] == "Accepted"
        assert (await cp.call(call.Authorize(id_tag="NO"))).id_tag_info["status"] == "Invalid"
        tx = await cp.call(
            call.StartTransaction(
                connector_id=1, id_tag="OK", meter_start=100, timestamp="2026-01-05T00:00:00Z"
            )
        )
        local_tx = tx.transaction_id
        assert local_tx != BACKEND_TX
        mv = {"connectorId": 1, "transactionId": local_tx,
              "meterValue": [{"timestamp": "2026-01-05T00:00:10Z", "sampledValue": [{"value": "150"}]}]}  # fmt: skip
        await cp.call(
            call.MeterValues(connector_id=1, transaction_id=local_tx, meter_value=mv["meterValue"])
        )
        await cp.call(
            call.StopTransaction(
                meter_stop=200, timestamp="2026-01-05T00:10:00Z", transaction_id=local_tx
            )
        )
        await cp.call(call.Heartbeat())  # not spooled: only what billing needs
        spool = tmp_path / "CP1.jsonl"
        lines = [json.loads(json.loads(line)["frame"]) for line in spool.read_text().splitlines()]
        assert [f[2] for f in lines] == ["StartTransaction", "MeterValues", "StopTransaction"]
        # the backend comes up: boot first, then the spool in order, transaction id mapped
        async with backend_on(port) as (backend, _):
            await wait_for(lambda: len(backend.calls("StopTransaction")) == 1, timeout_s=15)
            actions = [f[2] for f in backend.frames if f[0] == 2]
            assert actions == [
                "BootNotification",
                "StartTransaction",
                "MeterValues",
                "StopTransaction",
            ]
            assert backend.calls("StartTransaction") == [
                {
                    "connectorId": 1,
                    "idTag": "OK",
                    "meterStart": 100,
                    "timestamp": "2026-01-05T00:00:00Z",
                }
            ]
            assert backend.calls("MeterValues") == [mv | {"transactionId": BACKEND_TX}]
            assert backend.calls("StopTransaction") == [
                {"meterStop": 200, "timestamp": "2026-01-05T00:10:00Z", "transactionId": BACKEND_TX}
            ]
            # unique ids are the charge point's own
            await wait_for(lambda: spool.read_text() == "")
            # live traffic goes straight through again, with the mapped id for the old transaction
            await cp.call(
                call.MeterValues(
                    connector_id=1, transaction_id=local_tx, meter_value=mv["meterValue"]
                )
            )
            await wait_for(lambda: len(backend.calls("MeterValues")) == 2)
            assert backend.calls("MeterValues")[1]["transactionId"] == BACKEND_TX


async def test_spool_survives_a_restart(tmp_path: Path) -> None:
    from fuseguard.devices.ocpp.spool import Spool, SpoolEntry

    s = Spool.for_identity(tmp_path, "CP/../1")
    s.append(SpoolEntry('[2,"a","MeterValues",{}]'))
    s.append(SpoolEntry('[2,"b","StartTransaction",{}]', local_tx=5))
    assert s.path.parent == tmp_path
    again = Spool.for_identity(tmp_path, "CP/../1")
    assert again.entries() == s.entries()
    again.pop_first()
    assert [e.local_tx for e in Spool.for_identity(tmp_path, "CP/../1").entries()] == [5]
    (tmp_path / "x.jsonl").write_text('not json\n{"frame": "[2]", "local_tx": null}\n')
    assert len(Spool(tmp_path / "x.jsonl")) == 1
    small = Spool(tmp_path / "small.jsonl", max_entries=2)
    for i in range(3):
        small.append(SpoolEntry(str(i)))
    assert [e.frame for e in Spool(tmp_path / "small.jsonl").entries()] == ["1", "2"]
