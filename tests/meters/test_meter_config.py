"""[meter] driver = "modbus" | "sunspec", circuit meters and [pv]: config and the factory."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from fuseguard.config import ConfigError, load_config
from fuseguard.devices.factory import build_meter, build_meter_endpoint
from fuseguard.devices.meters import ModbusMeter, SunSpecInverter, SunSpecMeter
from fuseguard.model.phases import Phases

from .meter_rig import modbus_rig, sunspec_inverter_rig

SITE = """
[site]
edge_id = "e1"
main_fuse_a = 35
"""
MAPS = Path(__file__).parents[2] / "src/fuseguard/wire/meters/maps"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.toml"
    p.write_text(SITE + text)
    return p


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return "\n".join(str(p) for p in err.value.problems)


def test_modbus_meter_config_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, '[meter]\ndriver = "modbus"\nmodel = "sdm630"\nhost = "192.168.1.40"\n')
    )
    assert (cfg.meter.port, cfg.meter.unit_id, cfg.meter.model) == (502, 1, "sdm630")
    assert cfg.pv is None
    cemm = load_config(write(tmp_path, '[meter]\ndriver = "cemm"\n'))
    assert cemm.meter.port == 80  # unchanged for the HTTP drivers


@pytest.mark.parametrize(
    ("meter", "message"),
    [
        ('driver = "modbus"', "exactly one of model"),
        ('driver = "modbus"\nmodel = "sdm999"', "'sdm999' is not built in"),
        ('driver = "modbus"\nmodel = "sdm630"\nmap_file = "x.toml"', "exactly one of model"),
        ('driver = "cemm"\nmodel = "sdm630"', "for driver = 'modbus'"),
        ('driver = "modbus"\nmodel = "em24"\nunit_id = 300', "unit_id"),
        ('driver = "sunspec"\nsunspec_device = "battery"', "sunspec_device"),
    ],
)
def test_invalid_meter_configs(tmp_path: Path, meter: str, message: str) -> None:
    assert message in problems(tmp_path, f"[meter]\n{meter}\n")


def test_map_file_relative_to_the_config(tmp_path: Path) -> None:
    text = (MAPS / "em340.toml").read_text().replace('name = "em340"', 'name = "my-em340"')
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "mine.toml").write_text(text)
    cfg = load_config(write(tmp_path, '[meter]\ndriver = "modbus"\nmap_file = "maps/mine.toml"\n'))
    assert cfg.meter.map_file == tmp_path / "maps" / "mine.toml"
    (tmp_path / "maps" / "mine.toml").write_text(text.replace('unit = "A"', 'unit = "mA"'))
    found = problems(tmp_path, '[meter]\ndriver = "modbus"\nmap_file = "maps/mine.toml"\n')
    assert "mine.toml: not a valid meter map" in found


def test_circuit_meter_and_pv_are_read(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
[[site.circuits]]
id = "garage"
fuse_a = 32
meter = { driver = "modbus", model = "sdm630", host = "10.0.0.5", unit_id = 2 }

[pv]
driver = "sunspec"
host = "10.0.0.9"
""",
        )
    )
    garage = cfg.site.circuits[0]
    assert garage.meter is not None
    assert (garage.meter.model, garage.meter.port, garage.meter.unit_id) == ("sdm630", 502, 2)
    assert cfg.pv is not None
    assert (cfg.pv.driver, cfg.pv.sunspec_device, cfg.pv.port) == ("sunspec", "inverter", 502)
    cemm_pv = load_config(write(tmp_path, '[pv]\ndriver = "cemm"\nhost = "10.0.0.3"\n'))
    assert cemm_pv.pv is not None and cemm_pv.pv.alias == "mb5"


async def test_factory_builds_and_reads_a_modbus_meter(tmp_path: Path) -> None:
    rig = await modbus_rig("em24")
    try:
        rig.set_load(Phases(8.0, 0.0, -3.0))
        cfg = load_config(
            write(
                tmp_path,
                f'[meter]\ndriver = "modbus"\nmodel = "em24"\nport = {rig.server.port}\n',
            )
        )
        async with aiohttp.ClientSession() as session:
            meter = build_meter(cfg, session)
            assert isinstance(meter, ModbusMeter)
            assert meter.meter_map.name == "em24"
            sample = await meter.read()
            await meter.close()
        assert sample.current_a is not None
        assert sample.current_a.l3 == pytest.approx(-3.0, abs=0.001)
    finally:
        await rig.close()


async def test_factory_builds_sunspec_meter_and_inverter(tmp_path: Path) -> None:
    rig = await sunspec_inverter_rig()
    try:
        assert rig.pv is not None
        rig.pv.power_w = 3000.0
        rig.site.tick()
        cfg = load_config(
            write(
                tmp_path,
                f'[meter]\ndriver = "sunspec"\nport = {rig.server.port}\n'
                f'[pv]\ndriver = "sunspec"\nport = {rig.server.port}\n',
            )
        )
        assert cfg.pv is not None
        async with aiohttp.ClientSession() as session:
            assert isinstance(build_meter(cfg, session), SunSpecMeter)
            pv = build_meter_endpoint(cfg.pv, session, name="pv")
            assert isinstance(pv, SunSpecInverter)
            sample = await pv.read()
            await pv.close()
        assert sample.power_w == pytest.approx(-3000.0, abs=1.0)
    finally:
        await rig.close()
