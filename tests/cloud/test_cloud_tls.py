"""Issue 17 item 4: MQTT over TLS against a real Mosquitto with a generated CA.

Each test starts its own Mosquitto (free port, own config: a TLS listener with the test CA's
server certificate) next to the machine's broker; verification is on unless told otherwise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from brokerkit import Pki, make_pki, run_mosquitto
from cloudkit import api_client, cloud_settings, make_edge, wait_for
from tests.ports import free_port

from fuseguard.cloud.app import CloudService
from fuseguard.cloud.config import BrokerSection
from fuseguard.cloud.link import (
    BrokerAddress,
    LinkMessage,
    LinkTimeoutError,
    MqttLink,
    TlsSettings,
)
from fuseguard.cloud.protocol import CommandMessage
from fuseguard.config.models import CloudLinkConfig

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_conf(pki: Pki, port: int, *, require_certificate: bool) -> str:
    return (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "tls_version tlsv1.2\n"
        f"require_certificate {'true' if require_certificate else 'false'}\n"
    )


@pytest.fixture(scope="module")
def tls_url(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with run_mosquitto(
        _tls_conf(pki, port, require_certificate=False), tmp_path_factory.mktemp("mq"), [port]
    ):
        yield f"mqtts://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def mtls_url(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    with run_mosquitto(
        _tls_conf(pki, port, require_certificate=True), tmp_path_factory.mktemp("mq"), [port]
    ):
        yield f"ssl://127.0.0.1:{port}"


async def _round_trip(url: str, tls: TlsSettings | None, *, timeout_s: float = 5.0) -> bytes:
    """Connect, subscribe, publish, receive; raises LinkTimeoutError if no connection."""
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(message: LinkMessage) -> None:
        got.put_nowait(message.payload)

    topic = f"tls-{uuid.uuid4().hex[:8]}/x"
    link = MqttLink(url, f"tls-{uuid.uuid4().hex[:8]}", on_message, tls=tls, reconnect_max_s=0.5)
    task = asyncio.create_task(link.run())
    try:
        await link.subscribe(topic)
        await link.wait_connected(timeout_s)
        await link.publish(topic, b"over tls")
        async with asyncio.timeout(5):
            return await got.get()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_broker_urls() -> None:
    assert BrokerAddress.parse("mqtts://broker") == BrokerAddress("broker", 8883, tls=True)
    assert BrokerAddress.parse("ssl://b:9999") == BrokerAddress("b", 9999, tls=True)
    assert BrokerAddress.parse("mqtt://b") == BrokerAddress("b", 1883, tls=False)
    assert BrokerAddress.parse("b:1884") == BrokerAddress("b", 1884, tls=False)
    with pytest.raises(ValueError, match="scheme"):
        BrokerAddress.parse("ws://b")


def test_tls_settings_need_a_tls_url(pki: Pki) -> None:
    with pytest.raises(ValueError, match="mqtts"):
        MqttLink("mqtt://127.0.0.1:1883", "x", _ignore, tls=TlsSettings(ca_file=pki.ca))
    with pytest.raises(ValueError, match="mqtts"):
        BrokerSection(url="mqtt://b:1883", ca_file=pki.ca)
    with pytest.raises(ValueError, match="mqtts"):
        CloudLinkConfig(broker="mqtt://b:1883", ca_file=pki.ca)
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        CloudLinkConfig(broker="mqtts://b", key_file=pki.client_key)
    assert BrokerSection(url="mqtts://b", ca_file=pki.ca).tls.ca_file == pki.ca
    assert CloudLinkConfig(broker="mqtts://b", ca_file=pki.ca).ca_file == pki.ca


async def _ignore(message: LinkMessage) -> None:
    return None


def test_context_is_strict(pki: Pki) -> None:
    import ssl

    ctx = TlsSettings(ca_file=pki.ca).context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_tls_with_the_broker_ca(tls_url: str, pki: Pki) -> None:
    assert await _round_trip(tls_url, TlsSettings(ca_file=pki.ca)) == b"over tls"


async def test_verification_is_on_by_default(tls_url: str, pki: Pki) -> None:
    with pytest.raises(LinkTimeoutError):  # system CAs do not know the test CA
        await _round_trip(tls_url, None, timeout_s=2)
    with pytest.raises(LinkTimeoutError):  # another CA
        await _round_trip(tls_url, TlsSettings(ca_file=pki.other_ca), timeout_s=2)


async def test_host_name_is_checked(tls_url: str, pki: Pki) -> None:
    port = BrokerAddress.parse(tls_url).port
    # "127.1" reaches 127.0.0.1, but the certificate names only localhost and 127.0.0.1
    wrong_name = f"mqtts://127.1:{port}"
    with pytest.raises(LinkTimeoutError):
        await _round_trip(wrong_name, TlsSettings(ca_file=pki.ca), timeout_s=2)
    assert await _round_trip(f"mqtts://localhost:{port}", TlsSettings(ca_file=pki.ca))


async def test_client_certificate(mtls_url: str, pki: Pki) -> None:
    with pytest.raises(LinkTimeoutError):
        await _round_trip(mtls_url, TlsSettings(ca_file=pki.ca), timeout_s=2)
    tls = TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    assert await _round_trip(mtls_url, tls) == b"over tls"


async def test_cloud_and_edge_over_tls(tls_url: str, pki: Pki, tmp_path: Path) -> None:
    prefix = f"fgtls-{uuid.uuid4().hex[:8]}"
    settings = cloud_settings(tls_url, prefix, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    settings = settings.model_copy(
        update={"broker": BrokerSection(url=tls_url, topic_prefix=prefix, ca_file=pki.ca)}
    )
    edge = make_edge(tls_url, prefix, tls=TlsSettings(ca_file=pki.ca))
    evse = edge.evses[0]
    async with CloudService(settings) as service:
        await edge.start()
        try:

            async def known() -> bool:
                await service.backend.flush()
                return await service.backend.evse(edge.edge_device_id, evse.evse_uuid) is not None

            await wait_for(known)
            token = await service.tokens.create(edge.edge_device_id, evse.evse_uuid)
            async with api_client(service) as http:
                r = await http.post(
                    f"/edgedevices/{edge.edge_device_id}/evses/{evse.evse_uuid}/currentsettings",
                    json={"current": 12, "duration": 60},
                    headers={"evsetoken": token},
                )
            assert r.json()["state"] == "received"
            assert edge.targets.cap_a(evse.evse_uuid) == 12
        finally:
            await edge.stop()


async def test_site_config_reaches_the_agent(tls_url: str, pki: Pki, tmp_path: Path) -> None:
    """``[cloud]`` TLS keys and ``[api.evse] max_duration_s`` of a site config drive the agent."""
    from types import SimpleNamespace

    from fuseguard.api.edge_evse import EdgeEvseBackend, evse_infos_from_config
    from fuseguard.api.services import EVSE_BACKEND, EVSE_INFOS
    from fuseguard.cloud.edge_agent import cloud_agent
    from fuseguard.config import load_config
    from fuseguard.control.targets import EvseTargets
    from fuseguard.model.clock import RealClock

    site = tmp_path / "site.toml"
    site.write_text(
        f"""
[site]
edge_id = "tls-edge"
main_fuse_a = 35

[[chargers]]
id = "cp1"
evse_uuid = "25104c56d7f848af830af4300193efb3"
  [[chargers.plugs]]
  uuid = "35104c56d7f848af830af4300193efb3"
  label = "Plug 1"

[api.evse]
max_duration_s = 600

[cloud]
broker = "{tls_url}"
ca_file = "{pki.ca}"
"""
    )
    cfg = load_config(site)
    infos = evse_infos_from_config(cfg)
    clock = RealClock()
    targets = EvseTargets(clock)
    backend = EdgeEvseBackend("tls-edge", infos, targets, lambda u: [])
    rt = SimpleNamespace(config=cfg, clock=clock, shared={EVSE_BACKEND: backend, EVSE_INFOS: infos})
    agent = cloud_agent(rt)  # type: ignore[arg-type]
    assert agent is not None
    assert agent.max_duration_s == 600
    assert agent.link.tls == TlsSettings(ca_file=pki.ca)
    task = asyncio.create_task(agent.run())
    try:
        await agent.wait_connected(10)
        assert agent.link.connected
        evse = "25104c56d7f848af830af4300193efb3"
        cmd = CommandMessage(
            id="c1", reply_to="x", op="set", evse_uuid=evse, current=10, duration=601
        )
        assert (await agent.handle_command(cmd)).state == "rejected"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
