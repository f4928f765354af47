"""Security profile 1/2 at the handshake, and CALLERROR for every malformed frame."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import PASSWORD, basic, central, charge_point, wait_for


async def _status_of_handshake(
    url: str, headers: dict[str, str], subprotocols: list[str] | None = None
) -> int:
    with pytest.raises(InvalidStatus) as err:
        async with connect(
            url, subprotocols=subprotocols or ["ocpp1.6"], additional_headers=headers
        ):  # type: ignore[list-item]
            pass
    return err.value.response.status_code


async def test_wrong_password_is_refused_before_the_upgrade() -> None:
    async with central() as site:
        assert (
            await _status_of_handshake(site.url(), {"Authorization": basic("CP1", "wrong")}) == 401
        )
        assert await _status_of_handshake(site.url(), {}) == 401
        # the identity in the credentials must be the one in the URL
        assert (
            await _status_of_handshake(site.url(), {"Authorization": basic("CP2", PASSWORD)}) == 401
        )
        assert await _status_of_handshake(site.url(), {"Authorization": "Basic !!notbase64"}) == 401
        assert site.station.session is None
        assert site.server.refused == 4


async def test_unknown_identity_is_refused_with_401() -> None:
    async with central() as site:
        status = await _status_of_handshake(
            site.url("CP9"), {"Authorization": basic("CP9", PASSWORD)}
        )
        assert status == 401
        # a path that is no OCPP URL gets the same 401 (nothing to tell ids apart by)
        url = site.server.url.removesuffix("/ocpp") + "/a/b/c"
        assert await _status_of_handshake(url, {"Authorization": basic("CP1", PASSWORD)}) == 401


async def test_both_url_forms_are_accepted() -> None:
    async with central() as site:
        short = site.server.url.removesuffix("/ocpp") + "/CP1"
        async with charge_point(short):
            await wait_for(site.station.ready.is_set)


async def test_profile_0_needs_the_explicit_switch() -> None:
    async with central(password=None) as site:
        assert await _status_of_handshake(site.url(), {}) == 401
    async with (
        central(password=None, allow_no_auth=True) as site,
        charge_point(site.url(), password=None),
    ):
        await wait_for(site.station.ready.is_set)


async def test_a_password_is_required_even_with_allow_no_auth() -> None:
    async with central(allow_no_auth=True) as site:
        assert await _status_of_handshake(site.url(), {}) == 401


async def test_subprotocol_ocpp16_is_required() -> None:
    async with central() as site:
        status = await _status_of_handshake(
            site.url(), {"Authorization": basic("CP1", PASSWORD)}, ["ocpp2.0.1"]
        )
        assert status == 400


@pytest.mark.parametrize(
    ("frame", "code", "unique_id"),
    [
        ("this is not json", "FormationViolation", "-1"),
        ('{"not": "a list"}', "ProtocolError", "-1"),
        ("[2]", "ProtocolError", "-1"),
        ('[9, "u1", "Heartbeat", {}]', "PropertyConstraintViolation", "u1"),
        ('[2, "u2", "Heartbeat"]', "ProtocolError", "u2"),
        ('[2, "u3", ["Heartbeat"], {}]', "FormationViolation", "u3"),
        ('[2, "u4", "Heartbeat", []]', "FormationViolation", "u4"),
        ('[2, 17, "Heartbeat", {}]', "ProtocolError", "-1"),
        ('[2, "u5", "StatusNotification", {"connectorId": 1}]', "ProtocolError", "u5"),
        (
            '[2, "u6", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}]',
            "TypeConstraintViolation",
            "u6",
        ),
        ('[2, "u7", "Heartbeat", {"extra": 1}]', "FormationViolation", "u7"),
        (
            '[2, "u8", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}]',
            "FormationViolation",
            "u8",
        ),
        ('[2, "u9", "Reset", {"type": "Hard"}]', "NotImplemented", "u9"),
        ('[2, "u10", "NoSuchAction", {}]', "NotSupported", "u10"),
        (
            '[2, "u11", "MeterValues", {"connectorId": 1, "meterValue": [{"timestamp": "x", "sampledValue": [{"value": NaN}]}]}]',
            "TypeConstraintViolation",
            "u11",
        ),
    ],
)
async def test_malformed_frames_get_a_callerror_and_the_session_survives(
    frame: str, code: str, unique_id: str
) -> None:
    async with central() as site, charge_point(site.url()) as (cp, ws):
        await wait_for(site.station.ready.is_set)
        answers: asyncio.Queue[str] = asyncio.Queue()
        original = cp.route_message

        async def spy(raw: str) -> None:
            data = json.loads(raw)
            if data[0] == 4 and data[1] != "ignored":
                answers.put_nowait(raw)
                return
            await original(raw)

        cp.route_message = spy  # type: ignore[method-assign]
        await ws.send(frame)
        answer = json.loads(await asyncio.wait_for(answers.get(), 5))
        assert answer[0] == 4
        assert answer[1] == unique_id
        assert answer[2] == code
        assert isinstance(answer[3], str)
        assert isinstance(answer[4], dict)
        # still connected and served
        result = await cp.call(call.Heartbeat())
        assert result.current_time.endswith("Z")


async def test_oversized_frame_closes_only_that_connection() -> None:
    async with central() as site:
        site.server.max_frame_bytes = 1024
        await site.server.close()
        await site.server.start()
        async with charge_point(site.url()) as (_, ws):
            await wait_for(site.station.ready.is_set)
            await ws.send(
                '[2, "big", "DataTransfer", {"vendorId": "x", "data": "' + "a" * 4096 + '"}]'
            )
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1009  # message too big
        await wait_for(lambda: site.station.session is None)
        async with charge_point(site.url()):
            await wait_for(site.station.ready.is_set)


async def test_other_core_messages_are_answered() -> None:
    async with (
        central(allowed_id_tags=frozenset({"GOOD"})) as site,
        charge_point(site.url()) as (cp, _),
    ):
        assert (await cp.call(call.Authorize(id_tag="GOOD"))).id_tag_info["status"] == "Accepted"
        assert (await cp.call(call.Authorize(id_tag="BAD"))).id_tag_info["status"] == "Invalid"
        assert (
            await cp.call(call.DataTransfer(vendor_id="com.example"))
        ).status == "UnknownVendorId"
        assert await cp.call(call.DiagnosticsStatusNotification(status="Idle")) is not None
        assert await cp.call(call.FirmwareStatusNotification(status="Idle")) is not None
        assert (await cp.call(call.Heartbeat())).current_time.endswith("Z")


async def test_a_second_connection_replaces_the_first() -> None:
    async with central() as site, charge_point(site.url()) as (_, ws1):
        await wait_for(site.station.ready.is_set)
        first = site.station.session
        async with charge_point(site.url()):
            await wait_for(
                lambda: site.station.session is not first and site.station.ready.is_set()
            )
            await asyncio.wait_for(ws1.wait_closed(), 5)
            assert site.station.session is not None
