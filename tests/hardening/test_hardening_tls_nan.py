"""Issue 17: TLS 1.2 minimum and SAN with the configured names; NaN/inf refused by every API."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx2
import pytest
from cryptography import x509
from pymodbus.client import AsyncModbusTcpClient

from fuseguard.api.evse import create_evse_app
from fuseguard.api.local import create_local_app
from fuseguard.api.modbus import REG_CURRENT_LIMIT, REG_FALLBACK_LIMIT, serve_modbus_twin
from fuseguard.api.services import tls_files
from fuseguard.serving import limited_config, serve_app
from tests.hardening.hardening_support import (
    AUTH_HEADER,
    PASSWORD,
    USER,
    StaticLiveData,
    make_flex,
)


def _cert(tmp_path: Path, names: list[str]) -> tuple[str, str]:
    rt: Any = SimpleNamespace(data_dir=tmp_path)
    return tls_files(rt, None, None, names)


def test_generated_certificate_names_the_configured_hosts(tmp_path: Path) -> None:
    cert, _ = _cert(tmp_path, ["edge.example.lan", "192.168.7.20"])
    parsed = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"edge.example.lan", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert {"192.168.7.20", "127.0.0.1"} <= ips


async def test_tls_minimum_is_1_2(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path, [])
    app = create_local_app(make_flex(), StaticLiveData(), user=USER, password=PASSWORD)
    config = limited_config(app, ssl_certfile=cert, ssl_keyfile=key)
    assert config.ssl is not None
    assert config.ssl.minimum_version == ssl.TLSVersion.TLSv1_2
    handle = await serve_app(app, "127.0.0.1", 0, cert, key)
    try:
        ctx = ssl.create_default_context(cafile=cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        _, writer = await asyncio.open_connection("127.0.0.1", handle.port, ssl=ctx)
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
        writer.close()
    finally:
        await handle.close()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_local_api_refuses_non_finite_currents(literal: str) -> None:
    flex = make_flex()
    app = create_local_app(flex, StaticLiveData(), user=USER, password=PASSWORD)
    transport = httpx2.ASGITransport(app=app)
    headers = {"authorization": AUTH_HEADER, "content-type": "application/json"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://edge") as client:
        for key in ("CurrentLimit", "FallbackCurrentLimit"):
            body = f'{{"ActivePowerActivation": true, "{key}": {literal}}}'
            r = await client.post("/v1/flex_management/setting", content=body, headers=headers)
            assert r.status_code in (400, 422), r.text
    assert flex.settings().activation is False  # nothing applied


async def test_modbus_refuses_non_finite_registers() -> None:
    flex = make_flex()
    twin = await serve_modbus_twin(flex, StaticLiveData(), "127.0.0.1", 0)
    try:
        async with AsyncModbusTcpClient("127.0.0.1", port=twin.port, timeout=2, retries=0) as c:
            for regs in ([0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]):  # NaN, +inf, -inf
                for address in (REG_CURRENT_LIMIT, REG_FALLBACK_LIMIT):
                    rr = await c.write_registers(address, regs, device_id=1)
                    assert rr.isError()
                    assert rr.exception_code == 3
    finally:
        await twin.close()
    assert flex.settings().fallback_current_limit_a == 10.0


class _Backend:
    async def evse(self, edge_device_id: str, evse_uuid: str) -> Any:
        from fuseguard.api.evse_models import EvseInfo

        return EvseInfo(evse_uuid, 6, 32, ((evse_uuid, "1"),))

    async def set_target(self, *_: object) -> str:
        raise AssertionError("a non-finite target must not get here")


class _Tokens:
    async def check(self, *_: object) -> str:
        return "ok"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e999", "-Infinity"])
async def test_evse_api_refuses_non_finite_targets(literal: str) -> None:
    app = create_evse_app(_Backend(), _Tokens())  # type: ignore[arg-type]
    transport = httpx2.ASGITransport(app=app)
    path = "/edgedevices/e1/evses/" + "ab" * 16 + "/currentsettings"
    headers = {"evsetoken": "t", "content-type": "application/json"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://e") as client:
        for body in (
            f'{{"current": {literal}, "duration": 60}}',
            f'{{"current": 10, "duration": {literal}}}',
        ):
            r = await client.post(path, content=body, headers=headers)
            assert r.status_code in (400, 422), r.text
