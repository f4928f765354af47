"""Register images of the virtual meters: a Modbus meter per map, a SunSpec meter and inverter.

Each device renders its source's published readings into ``{address: word}`` per function code
with the same codecs the drivers decode with (:mod:`fuseguard.wire.meters`,
:mod:`fuseguard.wire.sunspec`), and declares the address ranges it answers (everything else is
ILLEGAL DATA ADDRESS, like a real device).
"""

from __future__ import annotations

from collections.abc import Mapping

from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.sim.meters.physics import (
    InverterReadings,
    MeterFaults,
    MeterReadings,
    PvInverterSource,
    SiteMeter,
)
from fuseguard.wire.meters import MeterMap, Quantity, encode_entry, encode_missing
from fuseguard.wire.sunspec import (
    COMMON_MODEL_ID,
    DER_AC_MODEL_ID,
    END_MODEL_ID,
    SUNS_MARKER,
    PointType,
    choose_sf,
    encode_model,
)

Ranges = Mapping[int, tuple[tuple[int, int], ...]]  #: function code -> ((start, stop), ...)


def _freeze_with(faults: MeterFaults, source: SiteMeter | PvInverterSource) -> None:
    def follow(fault: DeviceFault | None) -> None:
        source.frozen = fault is DeviceFault.FROZEN

    faults.on_change(follow)


class VirtualModbusMeter:
    """A Modbus meter of any mapped model, metering ``source``."""

    def __init__(self, meter_map: MeterMap, source: SiteMeter, faults: MeterFaults) -> None:
        self.meter_map = meter_map
        self.source = source
        self.faults = faults
        self.name = faults.name
        #: entries to answer with their "not available" marker (tests of missing points)
        self.missing: set[tuple[Quantity, str | None]] = set()
        _freeze_with(faults, source)

    def ranges(self) -> Ranges:
        """The read blocks of the map: exactly what the driver requests."""
        result: dict[int, list[tuple[int, int]]] = {}
        for block in self.meter_map.blocks():
            result.setdefault(block.function_code, []).append((block.start, block.stop))
        return {fc: tuple(spans) for fc, spans in result.items()}

    def _value(self, r: MeterReadings, quantity: Quantity, phase: str | None) -> float:
        def pick(values: Phases) -> float:
            return values[int(phase[1]) - 1] if phase else values.total

        if quantity is Quantity.CURRENT_A:
            current = pick(r.current_a)
            return abs(current) if self.meter_map.current_sign == "from_power" else current
        if quantity is Quantity.ACTIVE_POWER_W:
            return pick(r.power_w)
        if quantity is Quantity.VOLTAGE_V:
            return pick(r.voltage_v)
        if quantity is Quantity.FREQUENCY_HZ:
            return r.frequency_hz
        if quantity is Quantity.ENERGY_IMPORT_WH:
            return r.energy_import_wh
        return r.energy_export_wh

    def registers(self, function_code: int) -> dict[int, int]:
        """The words this meter answers now for ``function_code``."""
        words: dict[int, int] = {}
        m = self.meter_map
        readings = self.source.readings
        for entry in m.entries:
            if m.fc_of(entry) != function_code:
                continue
            if entry.key in self.missing:
                encoded = encode_missing(m, entry)
            else:
                encoded = encode_entry(m, entry, self._value(readings, entry.quantity, entry.phase))
            for i, word in enumerate(encoded):
                words[entry.address + i] = word
        return words


class _SunSpecImage:
    """Common parts of a virtual SunSpec device: marker, common model, chain, end marker."""

    device_model = "virtual"

    def __init__(self, faults: MeterFaults, base_address: int) -> None:
        self.faults = faults
        self.name = faults.name
        self.base_address = base_address
        #: point names to answer "not implemented" (tests of missing points)
        self.missing: set[str] = set()

    def _models(self) -> list[tuple[int, dict[str, int | str | None]]]:
        raise NotImplementedError

    def _image(self) -> list[int]:
        common: dict[str, int | str | None] = {
            "Mn": "fuseguard",
            "Md": self.device_model,
            "Vr": "1.0",
            "SN": f"FG-{self.base_address}",
            "DA": 1,
        }
        words = list(SUNS_MARKER) + encode_model(COMMON_MODEL_ID, common)
        for model_id, values in self._models():
            for name in self.missing:
                if name in values:
                    values[name] = None
            words += encode_model(model_id, values)
        return [*words, END_MODEL_ID, 0]

    def ranges(self) -> Ranges:
        """Holding registers from the base address to the end marker (the chain is fixed)."""
        return {3: ((self.base_address, self.base_address + len(self._image())),)}

    def registers(self, function_code: int) -> dict[int, int]:
        """The whole image (function 03 only)."""
        if function_code != 3:
            return {}
        return {self.base_address + i: w for i, w in enumerate(self._image())}


def _scaled(values: Mapping[str, float], sf: int) -> dict[str, int | str | None]:
    return {name: round(v / 10.0**sf) for name, v in values.items()}


class VirtualSunSpecMeter(_SunSpecImage):
    """A SunSpec meter (model 203 by default, 201/202/204 possible) metering ``source``."""

    device_model = "virtual SunSpec meter"

    def __init__(
        self,
        source: SiteMeter,
        faults: MeterFaults,
        *,
        model_id: int = 203,
        base_address: int = 40000,
    ) -> None:
        super().__init__(faults, base_address)
        self.source = source
        self.model_id = model_id
        _freeze_with(faults, source)

    def _models(self) -> list[tuple[int, dict[str, int | str | None]]]:
        r = self.source.readings
        currents = {
            "AphA": abs(r.current_a.l1),
            "AphB": abs(r.current_a.l2),
            "AphC": abs(r.current_a.l3),
        }
        currents["A"] = sum(currents.values())
        volts = {"PhVphA": r.voltage_v.l1, "PhVphB": r.voltage_v.l2, "PhVphC": r.voltage_v.l3}
        volts["PhV"] = sum(volts.values()) / 3.0
        watts = {"WphA": r.power_w.l1, "WphB": r.power_w.l2, "WphC": r.power_w.l3}
        watts["W"] = r.total_power_w
        energy = {"TotWhImp": r.energy_import_wh, "TotWhExp": r.energy_export_wh}
        values: dict[str, int | str | None] = {}
        for group, sf_name, finest in (
            (currents, "A_SF", -2),
            (volts, "V_SF", -1),
            (watts, "W_SF", 0),
            (energy, "TotWh_SF", 0),
        ):
            kind = PointType.ACC32 if sf_name == "TotWh_SF" else PointType.INT16
            sf = choose_sf(group.values(), kind, finest=finest)
            values |= _scaled(group, sf)
            values[sf_name] = sf
        values |= {"Hz": round(r.frequency_hz * 100), "Hz_SF": -2}
        return [(self.model_id, values)]


class VirtualSunSpecInverter(_SunSpecImage):
    """A three-phase SunSpec PV inverter: model 103 and model 701 (DER AC measurement)."""

    device_model = "virtual SunSpec inverter"

    def __init__(
        self,
        source: PvInverterSource,
        faults: MeterFaults,
        *,
        with_701: bool = True,
        base_address: int = 40000,
    ) -> None:
        super().__init__(faults, base_address)
        self.source = source
        self.with_701 = with_701
        _freeze_with(faults, source)

    def _models(self) -> list[tuple[int, dict[str, int | str | None]]]:
        r = self.source.readings
        amps = {"AphA": r.current_a.l1, "AphB": r.current_a.l2, "AphC": r.current_a.l3}
        amps["A"] = r.current_a.total
        a_sf = choose_sf(amps.values(), PointType.UINT16, finest=-2)
        w_sf = choose_sf([r.power_w], PointType.INT16, finest=0)
        wh_sf = choose_sf([r.energy_produced_wh], PointType.ACC32, finest=0)
        m103: dict[str, int | str | None] = _scaled(amps, a_sf) | {"A_SF": a_sf}
        m103 |= _scaled(
            {"PhVphA": r.voltage_v.l1, "PhVphB": r.voltage_v.l2, "PhVphC": r.voltage_v.l3}, -1
        ) | {"V_SF": -1}
        m103 |= {"W": round(r.power_w / 10.0**w_sf), "W_SF": w_sf}
        m103 |= {"Hz": round(r.frequency_hz * 100), "Hz_SF": -2}
        m103 |= {"WH": round(r.energy_produced_wh / 10.0**wh_sf), "WH_SF": wh_sf}
        m103["St"] = 4 if r.producing else 2  # MPPT / SLEEPING
        models = [(103, m103)]
        if self.with_701:
            models.append((DER_AC_MODEL_ID, self._model_701(r)))
        return models

    @staticmethod
    def _model_701(r: InverterReadings) -> dict[str, int | str | None]:
        phase_w = r.current_a.zip_with(r.voltage_v, lambda i, v: i * v)
        amps = {"AL1": r.current_a.l1, "AL2": r.current_a.l2, "AL3": r.current_a.l3}
        amps["A"] = r.current_a.total
        watts = {"WL1": phase_w.l1, "WL2": phase_w.l2, "WL3": phase_w.l3, "W": r.power_w}
        a_sf = choose_sf(amps.values(), PointType.INT16, finest=-2)
        w_sf = choose_sf(watts.values(), PointType.INT16, finest=0)
        values: dict[str, int | str | None] = {"ACType": 2, "St": 1, "ConnSt": 1}
        values["InvSt"] = 3 if r.producing else 1  # RUNNING / SLEEPING
        values |= _scaled(amps, a_sf) | {"A_SF": a_sf}
        values |= _scaled(watts, w_sf) | {"W_SF": w_sf}
        values |= _scaled({"VL1": r.voltage_v.l1, "VL2": r.voltage_v.l2, "VL3": r.voltage_v.l3}, -1)
        values |= {"LNV": round(r.voltage_v.total / 3.0 * 10), "V_SF": -1}
        values |= {"Hz": round(r.frequency_hz * 1000), "Hz_SF": -3}
        values |= {"TotWhInj": round(r.energy_produced_wh), "TotWhAbs": 12_345, "TotWh_SF": 0}
        return values


__all__ = ["Ranges", "VirtualModbusMeter", "VirtualSunSpecInverter", "VirtualSunSpecMeter"]
