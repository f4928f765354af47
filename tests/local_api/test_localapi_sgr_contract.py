"""The published SmartGridready EIDs are the contract: every data point they reference works.

Reads ``tests/fixtures/sgr/*.xml`` (copies of ``shared/specs/sgr``) (REST and Modbus interface descriptions of the CLEMAP
edge) and drives our REST app and Modbus twin exactly as an SGr communication handler would.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from localapi_support import PASSWORD, USER, StaticLiveData
from pymodbus.client import AsyncModbusTcpClient

from fuseguard.api.local import create_local_app
from fuseguard.api.modbus import float_to_registers, registers_to_float, serve_modbus_twin
from fuseguard.control.flex import FlexManagement

SGR_DIR = Path(
    os.environ.get("FUSEGUARD_SGR_DIR", Path(__file__).resolve().parents[1] / "fixtures" / "sgr")
)
REST_EID = SGR_DIR / "SGr_04_0018_CLEMAP_LoadManagement_RestAPILocal_V1.0.xml"
MODBUS_EID = SGR_DIR / "SGr_04_0018_CLEMAP_LoadManagement_ModbusTCP_V1.0.xml"
NS = {"s": "http://www.smartgridready.com/ns/V0/"}
_S = "{http://www.smartgridready.com/ns/V0/}"


@dataclass(frozen=True)
class DataPoint:
    profile: str
    name: str
    direction: str  # R, W, RW
    dtype: str  # boolean, float32, float64, ...
    element: ET.Element


def data_points(path: Path) -> list[DataPoint]:
    root = ET.parse(path).getroot()
    points = []
    for fp in root.iter(f"{_S}functionalProfileListElement"):
        profile = fp.findtext("s:functionalProfile/s:functionalProfileName", namespaces=NS)
        for dp in fp.iter(f"{_S}dataPointListElement"):
            d = dp.find("s:dataPoint", NS)
            assert d is not None
            dtype_el = d.find("s:dataType", NS)
            assert dtype_el is not None
            points.append(
                DataPoint(
                    profile=str(profile),
                    name=str(d.findtext("s:dataPointName", namespaces=NS)),
                    direction=str(d.findtext("s:dataDirection", namespaces=NS)),
                    dtype=next(iter(dtype_el)).tag.removeprefix(_S),
                    element=dp,
                )
            )
    return points


REST_POINTS = data_points(REST_EID)
MODBUS_POINTS = data_points(MODBUS_EID)

# The value each read data point must show, from the live fixture (conftest) and flex state.
EXPECTED_READS = {
    "ActivePowerACtot": 9200.0,
    "ActualActivePower": 9200.0,
    "ReactivePowerACtot": -150.0,
    "ActualReactivePower": -150.0,
    "CurrentACL1": 10.0,
    "CurrentACL2": 12.5,
    "CurrentACL3": 17.5,
    "EMSCurrentLimit": 21.0,
    "SafeCurrent": 7.0,
    "ReadinessState": True,
    "RunState": True,
    "MaxActivePower": 0.0,
    "MinActivePower": 0.0,
}


def test_the_eids_cover_what_we_expect() -> None:
    assert {p.name for p in REST_POINTS} == set(EXPECTED_READS) | {"ActivePowerActivation"}
    assert {p.name for p in MODBUS_POINTS} >= {"EMSCurrentLimit", "SafeCurrent", "CurrentACL1"}
    root = ET.parse(MODBUS_EID).getroot()
    assert root.findtext(".//s:modbusTcp/s:slaveId", namespaces=NS) == "1"
    assert root.findtext(".//s:firstRegisterAddressIsOne", namespaces=NS) == "false"
    assert root.findtext(".//s:bitOrder", namespaces=NS) == "BigEndian"
    rest = ET.parse(REST_EID).getroot()
    assert rest.findtext(".//s:restApiAuthenticationMethod", namespaces=NS) == "BasicSecurityScheme"
    assert rest.findtext(".//s:restApiVerifyCertificate", namespaces=NS) == "false"


@pytest.fixture
async def rest(flex: FlexManagement, live: StaticLiveData) -> AsyncIterator[httpx2.AsyncClient]:
    flex.update(activation=True, current_limit_a=21.0, fallback_current_limit_a=7.0)
    app = create_local_app(flex, live, user=USER, password=PASSWORD)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app),
        base_url="https://localhost:7000",
        auth=(USER, PASSWORD),
    ) as c:
        yield c


def _headers(call: ET.Element) -> dict[str, str]:
    return {
        str(h.findtext("s:headerName", namespaces=NS)): str(h.findtext("s:value", namespaces=NS))
        for h in call.iterfind("s:requestHeader/s:header", NS)
    }


@pytest.mark.parametrize("point", REST_POINTS, ids=lambda p: f"{p.profile}.{p.name}")
async def test_rest_data_point(
    point: DataPoint, rest: httpx2.AsyncClient, flex: FlexManagement
) -> None:
    cfg = point.element.find("s:restApiDataPointConfiguration", NS)
    assert cfg is not None
    calls = [c for c in cfg if c.tag.removeprefix(_S).startswith("restApi")]
    assert calls
    for call in calls:
        method = call.findtext("s:requestMethod", namespaces=NS)
        path = str(call.findtext("s:requestPath", namespaces=NS))
        if method == "GET":
            r = await rest.get(path, headers=_headers(call))
            assert r.status_code == 200
            query = str(call.findtext("s:responseQuery/s:query", namespaces=NS))
            value = r.json()[query]  # JMESPath of a top-level key
            expected = EXPECTED_READS[point.name]
            if point.dtype == "boolean":
                assert value is expected
            else:
                assert isinstance(value, int | float)
                assert not isinstance(value, bool)
                assert value == pytest.approx(expected)
        else:
            assert method == "POST"
            template = str(call.findtext("s:requestBody", namespaces=NS))
            sample = "false" if point.dtype == "boolean" else "17.5"
            r = await rest.post(
                path,
                content=template.replace("[[value]]", sample).encode(),
                headers=_headers(call),
            )
            assert r.status_code == 200, r.text
            key = next(iter(json.loads(template.replace("[[value]]", "0"))))
            s = flex.settings()
            got = {
                "ActivePowerActivation": s.activation,
                "CurrentLimit": s.current_limit_a,
                "FallbackCurrentLimit": s.fallback_current_limit_a,
            }[key]
            assert got == (False if point.dtype == "boolean" else 17.5)


EXPECTED_WRITES = {19050: "activation", 19052: "fallback", 19054: "limit"}


@pytest.mark.parametrize("point", MODBUS_POINTS, ids=lambda p: f"{p.profile}.{p.name}")
async def test_modbus_data_point(
    point: DataPoint, flex: FlexManagement, live: StaticLiveData
) -> None:
    flex.update(activation=True, current_limit_a=21.0, fallback_current_limit_a=7.0)
    cfg = point.element.find("s:modbusDataPointConfiguration", NS)
    assert cfg is not None
    address = int(str(cfg.findtext("s:address", namespaces=NS)))
    count = int(str(cfg.findtext("s:numberOfRegisters", namespaces=NS)))
    assert cfg.findtext("s:registerType", namespaces=NS) == "HoldRegister"
    mdt = cfg.find("s:modbusDataType", NS)
    assert mdt is not None
    assert next(iter(mdt)).tag.removeprefix(_S) == "float32"
    assert count == 2
    twin = await serve_modbus_twin(flex, live, "127.0.0.1", 0)
    try:
        async with AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=3) as c:
            if "R" in point.direction:
                rr = await c.read_holding_registers(address, count=count, device_id=1)
                assert not rr.isError()
                value = registers_to_float(*rr.registers)
                assert value == pytest.approx(float(EXPECTED_READS[point.name]))
            if "W" in point.direction:
                sample = 1.0 if point.dtype == "boolean" else 17.5
                if point.name == "ActivePowerActivation":
                    flex.update(activation=False)
                wr = await c.write_registers(address, list(float_to_registers(sample)), device_id=1)
                assert not wr.isError()
                s = flex.settings()
                got = {
                    "activation": 1.0 if s.activation else 0.0,
                    "fallback": s.fallback_current_limit_a,
                    "limit": s.current_limit_a,
                }[EXPECTED_WRITES[address]]
                assert got == sample
    finally:
        await twin.close()
