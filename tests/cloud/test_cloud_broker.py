"""Issue 17 item 4: the generated broker files, enforced by a real Mosquitto.

`mosquitto_files` (passwd, acl) and `mosquitto_conf` are run as generated (plus `user root` /
log lines for the test) in a Mosquitto of this test's own: an edge can neither speak for another
edge nor read its commands nor forge commands, anonymous and wrong passwords are refused, and an
edge that connects with another edge's client id cannot kick it offline
(``use_username_as_clientid`` on the edge listener). The edges use TLS as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from brokerkit import make_pki, run_mosquitto
from cloudkit import api_client, cloud_settings, make_edge, wait_for
from tests.ports import free_port

from fuseguard.cloud.acl import BrokerTls, mosquitto_conf, mosquitto_files
from fuseguard.cloud.app import CloudService
from fuseguard.cloud.config import BrokerSection
from fuseguard.cloud.link import TlsSettings
from fuseguard.cloud.protocol import Topics

pytestmark = pytest.mark.mqtt

PREFIX = "fuseguard"
CLOUD_USER = "fuseguard-cloud"
PASSWORDS = {"edge-a": "pw-a-" + uuid.uuid4().hex, "edge-b": "pw-b-" + uuid.uuid4().hex}
CLOUD_PASSWORD = "pw-cloud-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Broker:
    edge_port: int
    cloud_port: int
    ca: Path

    @property
    def edge_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.edge_port}"

    @property
    def cloud_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.cloud_port}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    work = tmp_path_factory.mktemp("acl-broker")
    pki = make_pki(work)
    files = mosquitto_files(Topics(PREFIX), PASSWORDS, CLOUD_USER, CLOUD_PASSWORD)
    (work / "passwd").write_text(files.passwords)
    (work / "acl").write_text(files.acl)
    edge_port, cloud_port = free_port(), free_port()
    conf = mosquitto_conf(
        work / "passwd",
        work / "acl",
        edge_port=edge_port,
        cloud_port=cloud_port,
        tls=BrokerTls(pki.ca, pki.server_cert, pki.server_key),
    )
    # the edge listener binds every interface in production; keep the test's on loopback
    conf = conf.replace(f"listener {edge_port}\n", f"listener {edge_port} 127.0.0.1\n")
    with run_mosquitto(conf, work, [edge_port, cloud_port]):
        yield Broker(edge_port, cloud_port, pki.ca)


def _edge_client(broker: Broker, user: str, password: str, identifier: str) -> aiomqtt.Client:
    ctx = ssl.create_default_context(cafile=str(broker.ca))
    return aiomqtt.Client(
        "127.0.0.1", broker.edge_port, username=user, password=password,
        identifier=identifier, tls_context=ctx,
    )  # fmt: skip


def _cloud_client(broker: Broker, identifier: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", broker.cloud_port, username=CLOUD_USER, password=CLOUD_PASSWORD,
        identifier=identifier,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _collect(client: aiomqtt.Client, *filters: str) -> AsyncIterator[list[str]]:
    """Subscribe to ``filters``; the list fills with ``topic payload`` of what arrives."""
    got: list[str] = []
    for topic_filter in filters:
        await client.subscribe(topic_filter, qos=1)

    async def pump() -> None:
        async for message in client.messages:
            got.append(f"{message.topic} {message.payload!r}")

    task = asyncio.create_task(pump())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    ctx = ssl.create_default_context(cafile=str(broker.ca))
    for user, password in ((None, None), ("edge-a", "wrong"), ("nobody", "x")):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", broker.edge_port, username=user, password=password,
                tls_context=ctx, timeout=5,
            ):  # fmt: skip
                pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.cloud_port, timeout=5):
            pass


async def test_an_edge_cannot_speak_for_another_or_read_its_commands(broker: Broker) -> None:
    t = Topics(PREFIX)
    replica = "r1"
    async with (
        _cloud_client(broker, "fuseguard-cloud-r1") as cloud,
        _edge_client(broker, "edge-a", PASSWORDS["edge-a"], "edge-a") as a,
        _edge_client(broker, "edge-b", PASSWORDS["edge-b"], "edge-b") as b,
        _collect(cloud, t.all_states(), t.all_statuses(), t.all_acks(replica)) as cloud_got,
        _collect(a, f"{PREFIX}/#", t.command("edge-b"), t.command("edge-a")) as a_got,
        _collect(b, t.command("edge-b")) as b_got,
    ):
        evse = "e" * 32
        # edge A publishes as itself and as B
        await a.publish(t.state("edge-a"), b"a-own", qos=1)
        await a.publish(t.state("edge-b"), b"a-as-b", qos=1)
        await a.publish(t.status("edge-b", evse), b"a-as-b-status", qos=1)
        await a.publish(t.ack("edge-b", replica), b"a-as-b-ack", qos=1)
        # edge A forges a command to B and to itself
        await a.publish(t.command("edge-b"), b"forged-for-b", qos=1)
        await a.publish(t.command("edge-a"), b"forged-for-a", qos=1)
        # the cloud commands B
        await cloud.publish(t.command("edge-b"), b"cmd-for-b", qos=1)
        await cloud.publish(t.command("edge-a"), b"cmd-for-a", qos=1)
        # the cloud cannot speak for an edge either
        await cloud.publish(t.state("edge-b"), b"cloud-as-b", qos=1)
        await b.publish(t.state("edge-b"), b"b-own", qos=1)

        async def settled() -> bool:
            return len(cloud_got) >= 2 and len(b_got) >= 1 and len(a_got) >= 1

        await wait_for(settled)
        await asyncio.sleep(0.5)  # anything that should not arrive had its chance
        assert sorted(cloud_got) == sorted(
            [f"{t.state('edge-a')} b'a-own'", f"{t.state('edge-b')} b'b-own'"]
        )
        assert b_got == [f"{t.command('edge-b')} b'cmd-for-b'"]
        assert a_got == [f"{t.command('edge-a')} b'cmd-for-a'"]


async def test_an_edge_cannot_kick_another_offline(broker: Broker, tmp_path: Path) -> None:
    """The real edge agent and cloud on the generated config; edge A tries B's client ids."""
    settings = cloud_settings(broker.cloud_url, PREFIX, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    settings = settings.model_copy(
        update={
            "broker": BrokerSection(
                url=broker.cloud_url, username=CLOUD_USER, password=CLOUD_PASSWORD,
                topic_prefix=PREFIX,
            )
        }
    )  # fmt: skip
    edge = make_edge(
        broker.edge_url, PREFIX, edge_device_id="edge-b", tls=TlsSettings(ca_file=broker.ca),
        username="edge-b", password=PASSWORDS["edge-b"],
    )  # fmt: skip
    evse = edge.evses[0]
    connects = 0
    hook = edge.agent.link.on_connect
    assert hook is not None

    async def counting() -> None:
        nonlocal connects
        connects += 1
        await hook()

    edge.agent.link.on_connect = counting
    async with CloudService(settings) as service:
        await edge.start()
        try:

            async def online() -> bool:
                await service.backend.flush()
                return bool(await service.backend.edge_online("edge-b")) and bool(
                    await service.backend.evse("edge-b", evse.evse_uuid)
                )

            await wait_for(online)
            # edge A logs in with B's client ids (as B sends it, as the broker names it): the
            # broker makes each "edge-a"
            for stolen_id in ("fuseguard-edge-edge-b", "edge-b"):
                async with _edge_client(broker, "edge-a", PASSWORDS["edge-a"], stolen_id):
                    await asyncio.sleep(1.0)
                    assert edge.agent.link.connected
                    assert connects == 1
                    assert await service.backend.edge_online("edge-b") is True
            token = await service.tokens.create("edge-b", evse.evse_uuid)
            async with api_client(service) as http:
                r = await http.post(
                    f"/edgedevices/edge-b/evses/{evse.evse_uuid}/currentsettings",
                    json={"current": 10, "duration": 60},
                    headers={"evsetoken": token},
                )
            assert r.json()["state"] == "received"
            assert connects == 1
        finally:
            await edge.stop()


async def test_two_replicas_share_the_cloud_user(broker: Broker) -> None:
    """On the cloud listener client ids stay apart: replicas with one user do not kick each other."""
    async with _cloud_client(broker, "fuseguard-cloud-x") as one:
        async with _cloud_client(broker, "fuseguard-cloud-y") as two:
            await two.publish(Topics(PREFIX).command("edge-a"), b"x", qos=1)
        await one.publish(Topics(PREFIX).command("edge-a"), b"y", qos=1)  # still connected
