"""``[api.ocpp] tls = true`` without certificate files: the edge generates its self-signed pair
(the same one and the same SAN rule as the local API: the bound host, ``api.local.tls_names``,
localhost, 127.0.0.1) and charge points connect over wss:// with TLS 1.2 or newer."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from websockets.asyncio.client import connect

from fuseguard.api.tls import CERT_NAME
from fuseguard.config import FuseguardConfig
from fuseguard.edge import Edge
from fuseguard.model.clock import RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from tests.ports import free_port

from .conftest import PASSWORD, basic


class StillMeter:
    def __init__(self, clock: RealClock) -> None:
        self.clock = clock

    async def read(self) -> MeterSample:
        return MeterSample(timestamp=self.clock.now(), power_w=0.0, current_a=Phases(2, 2, 2))


async def test_tls_with_a_generated_certificate(tmp_path: Path) -> None:
    clock = RealClock()
    port = free_port()
    cfg = FuseguardConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "site": {"edge_id": "garage", "main_fuse_a": 32},
            "chargers": [{"id": "c1", "evse_uuid": "1" * 32, "driver": "ocpp", "ocpp_id": "CP1",
                          "ocpp_password": PASSWORD, "plugs": [{"uuid": "2" * 32, "label": "P"}]}],
            "api": {"ocpp": {"host": "127.0.0.1", "port": port, "tls": True},
                    "local": {"enabled": False, "tls_names": ["edge.example.lan", "192.0.2.7"]},
                    "modbus": {"enabled": False}, "evse": {"enabled": False}},
        }
    )  # fmt: skip
    edge = Edge(cfg, clock, meter=StillMeter(clock))
    task = asyncio.create_task(edge.run())
    try:
        await asyncio.wait_for(edge.ready.wait(), 30)
        cert_path = tmp_path / CERT_NAME
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"edge.example.lan", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
        ips = set(san.get_values_for_type(x509.IPAddress))
        assert {ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("127.0.0.1")} <= ips
        client = ssl.create_default_context(cafile=str(cert_path))  # verifies name and chain
        async with connect(
            f"wss://127.0.0.1:{port}/ocpp/CP1",
            ssl=client,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": basic("CP1", PASSWORD)},
            open_timeout=10,
        ) as ws:
            assert ws.subprotocol == "ocpp1.6"
            tls = ws.transport.get_extra_info("ssl_object")
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
