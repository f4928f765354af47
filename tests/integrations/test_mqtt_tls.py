"""``mqtts://``: the MQTT interface against a private Mosquitto TLS listener, and its config."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuseguard.api.mqtt.client import BrokerUrl
from fuseguard.api.mqtt.service import MqttInterface
from fuseguard.api.tls import ensure_self_signed_cert
from fuseguard.config import ConfigError, load_config
from fuseguard.control.flex import FlexManagement
from fuseguard.model.clock import RealClock
from tests.ports import free_port

from .statuskit import site_config, status


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Mosquitto with only a TLS listener (self-signed certificate for 127.0.0.1)."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.fail("the TLS test needs the `mosquitto` binary (apt-get install mosquitto)")
    cert, key = ensure_self_signed_cert(tmp_path / "certs", ["127.0.0.1"])
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # as root, mosquitto would drop to its own user, which cannot read the 0600 key in tmp_path
    stay = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{stay}"
        f"certfile {cert}\nkeyfile {key}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mosquitto (TLS) did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"mqtts://127.0.0.1:{port}", cert
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def test_mqtts_connects_with_the_ca_file_and_refuses_without(
    tls_broker: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = tls_broker
    clock = RealClock()

    def iface(ca_file: Path | None) -> MqttInterface:
        mqtt = {"url": url, "topic_prefix": "fgtls", "discovery": False}
        if ca_file is not None:
            mqtt["ca_file"] = str(ca_file)
        cfg = site_config(tmp_path, mqtt=mqtt)
        return MqttInterface(cfg, clock, status, FlexManagement(clock, fuse_a=32.0))

    good = iface(ca)
    task = asyncio.create_task(good.run())
    try:
        await good.connection.wait_connected(10)
        assert await good.publish_changes(force=True) > 10
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # without the private CA the certificate does not verify: no connection, ever
    bad = iface(None)
    task = asyncio.create_task(bad.run())
    try:
        await asyncio.sleep(1.5)
        assert not bad.connection.connected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_broker_urls() -> None:
    assert BrokerUrl.parse("mqtt://broker") == BrokerUrl("broker", 1883, False)
    assert BrokerUrl.parse("mqtts://broker") == BrokerUrl("broker", 8883, True)
    assert BrokerUrl.parse("mqtts://broker:1234") == BrokerUrl("broker", 1234, True)
    with pytest.raises(ValueError, match="scheme"):
        BrokerUrl.parse("http://broker")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ('url = "http://broker:1883"', "mqtt.url"),
        ('topic_prefix = "a/#"', "mqtt.topic_prefix"),
        ('discovery_prefix = "/ha"', "mqtt.discovery_prefix"),
        ("min_interval_s = 0", "mqtt.min_interval_s"),
    ],
)
def test_bad_mqtt_config_is_refused_with_its_key(tmp_path: Path, section: str, key: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        '[site]\nedge_id = "e1"\nmain_fuse_a = 32\n\n[mqtt]\n' + section + "\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(key in str(problem) for problem in err.value.problems), err.value.problems
