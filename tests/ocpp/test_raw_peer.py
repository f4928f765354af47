"""An independent peer: a charge point written as raw OCPP-J frames (no ``ocpp`` library), so a
misreading shared by the library on both ends of the other tests cannot hide here. Frames follow
the examples of OCPP-J 1.6 section 4 and the message definitions of OCPP 1.6 section 6."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from fuseguard.control.ports import DeviceResponseError

from .conftest import PASSWORD, basic, central, wait_for


async def _next_call(ws: ClientConnection) -> list[Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame[0] == 2, frame
    return frame  # type: ignore[no-any-return]


async def test_raw_frames_boot_configuration_and_profiles() -> None:
    async with (
        central(safe_current_a=8) as site,
        connect(
            site.url(),
            subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": basic("CP1", PASSWORD)},  # type: ignore[list-item]
        ) as ws,
    ):
        assert ws.subprotocol == "ocpp1.6"
        await ws.send(
            json.dumps(
                [
                    2,
                    "19223201",
                    "BootNotification",
                    {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger"},
                ]
            )
        )
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer[0] == 3 and answer[1] == "19223201"
        assert answer[2]["status"] == "Accepted"
        assert answer[2]["interval"] == 60
        assert answer[2]["currentTime"].endswith("Z")

        get = await _next_call(ws)
        assert get[2] == "GetConfiguration"
        assert "ChargeProfileMaxStackLevel" in get[3]["key"]
        await ws.send(json.dumps([3, get[1], {
            "configurationKey": [
                {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,SmartCharging"},
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
                {"key": "MeterValuesSampledData", "readonly": False,
                 "value": "Current.Import,Current.Offered,Power.Active.Import,Energy.Active.Import.Register"},
            ],
            "unknownKey": ["MeterValueSampleInterval"],
        }]))  # fmt: skip
        change = await _next_call(ws)  # only the interval differs
        assert change[2:] == [
            "ChangeConfiguration",
            {"key": "MeterValueSampleInterval", "value": "10"},
        ]
        await ws.send(json.dumps([3, change[1], {"status": "Accepted"}]))

        trigger = await _next_call(ws)
        assert trigger[2:] == [
            "TriggerMessage",
            {"requestedMessage": "StatusNotification", "connectorId": 1},
        ]
        await ws.send(json.dumps([3, trigger[1], {"status": "Accepted"}]))
        await ws.send(
            json.dumps(
                [
                    2,
                    "s1",
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
                ]
            )
        )
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
        assert [3, "s1", {}] in frames  # StatusNotification.conf is empty
        trigger = next(f for f in frames if f[0] == 2)
        assert trigger[2:] == [
            "TriggerMessage",
            {"requestedMessage": "MeterValues", "connectorId": 1},
        ]
        await ws.send(json.dumps([3, trigger[1], {"status": "Rejected"}]))  # allowed: not fatal

        profile = await _next_call(ws)
        assert profile[2] == "SetChargingProfile"
        body = profile[3]
        assert body["connectorId"] == 1
        cs = body["csChargingProfiles"]
        schedule = cs.pop("chargingSchedule")
        assert cs == {"chargingProfileId": 1000101, "stackLevel": 0,
                      "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute"}  # fmt: skip
        assert schedule["chargingRateUnit"] == "A"
        assert schedule["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 8.0, "numberPhases": 3}
        ]
        assert set(schedule) == {"chargingRateUnit", "chargingSchedulePeriod", "startSchedule"}
        await ws.send(json.dumps([3, profile[1], {"status": "Accepted"}]))
        await wait_for(site.station.ready.is_set)

        sample = await site.connectors[0].read()
        assert sample.ocpp_state == "preparing"
        # a limit from the controller: the lease, one stack level up, ending lease_s later
        write = asyncio.create_task(site.connectors[0].set_current_limit(13))
        lease = await _next_call(ws)
        cs = lease[3]["csChargingProfiles"]
        assert (cs["stackLevel"], cs["chargingProfileId"]) == (1, 1000201)
        assert cs["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 13.0
        assert "validTo" in cs and "validFrom" not in cs
        await ws.send(json.dumps([3, lease[1], {"status": "Accepted"}]))
        await asyncio.wait_for(write, 5)
        # a CALLERROR from the charge point for a request is a refusal, reported
        write = asyncio.create_task(site.connectors[0].set_current_limit(7))
        lease = await _next_call(ws)
        await ws.send(json.dumps([4, lease[1], "NotSupported", "no smart charging today", {}]))
        with pytest.raises(DeviceResponseError, match="NotSupported"):
            await asyncio.wait_for(write, 5)
        assert any("NotSupported" in e for e in (await site.connectors[0].read()).errors)
