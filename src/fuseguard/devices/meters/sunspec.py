"""SunSpec meters and inverters over Modbus TCP: discovery, the model chain, scale factors.

:class:`SunSpecClient` finds the base address (40000, 0, 50000: the first that holds "SunS";
an address the device refuses counts as "not here"), walks the model chain (id, length, ... up
to the end marker 0xFFFF) and reads one model at a time (split into requests of at most 125
registers), checking its header: a chain that changed under us (firmware update, another device
behind the same address) is rediscovered on the next read.

:class:`SunSpecMeter` reads the first meter model (201-204): per-phase current and active power
(power positive = imported from the grid, SunSpec's meter convention; current magnitudes take
their phase's power sign), voltage, frequency, reactive power, imported/exported energy.

:class:`SunSpecInverter` reads a PV inverter as a meter of its feed-in point, in fuseguard's sign
convention (consumption positive), so production is *negative* power: model 701 (DER AC
measurement, with per-phase power) when present, else 101-103 (per-phase current, total power
only). ``energy_export_wh`` is the energy the inverter produced.

Scale factors are applied (``value * 10**SF``); a point or scale factor holding its type's
unimplemented marker is missing, never a number; every value passes the finite and plausibility
check, and garbage raises ``DeviceResponseError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog

from fuseguard.control.ports import DeviceResponseError
from fuseguard.devices.meters.checks import checked, garbage, required
from fuseguard.devices.meters.modbus_meter import signed_current
from fuseguard.devices.meters.transport import ModbusTransport
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.phases import Phases
from fuseguard.model.samples import MeterSample
from fuseguard.wire.meters import MAX_READ_REGISTERS, Quantity
from fuseguard.wire.modbus import RegisterDecodeError
from fuseguard.wire.sunspec import (
    BASE_ADDRESSES,
    COMMON_MODEL_ID,
    DER_AC_MODEL_ID,
    END_MODEL_ID,
    INVERTER_MODEL_IDS,
    METER_MODEL_IDS,
    MODEL_LENGTHS,
    SUNS_MARKER,
    ModelBlock,
)

log = structlog.get_logger(__name__)

MAX_MODELS = 64  #: a chain longer than this is not a SunSpec device


@dataclass(frozen=True, slots=True)
class ModelHeader:
    """One model of the chain: id, address of its id register, length ``L``."""

    model_id: int
    address: int
    length: int


class SunSpecClient:
    """Discovery and model reads of one SunSpec device."""

    def __init__(
        self, transport: ModbusTransport, *, base_addresses: tuple[int, ...] = BASE_ADDRESSES
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.base_addresses = base_addresses
        self.base_address: int | None = None
        self.models: tuple[ModelHeader, ...] = ()

    async def discover(self) -> tuple[ModelHeader, ...]:
        """Find the base address and walk the chain (cached until :meth:`forget`)."""
        if self.base_address is not None:
            return self.models
        for base in self.base_addresses:
            try:
                marker = await self.transport.request(3, base, 2)
            except DeviceResponseError:
                continue  # ILLEGAL DATA ADDRESS: not at this base
            if tuple(marker) == SUNS_MARKER:
                self.models = await self._walk(base + 2)
                self.base_address = base
                return self.models
        tried = ", ".join(str(b) for b in self.base_addresses)
        msg = f"{self.name}: no SunSpec marker 'SunS' at {tried}"
        raise DeviceResponseError(msg)

    async def _walk(self, address: int) -> tuple[ModelHeader, ...]:
        models: list[ModelHeader] = []
        for _ in range(MAX_MODELS):
            model_id, length = await self.transport.request(3, address, 2)
            if model_id == END_MODEL_ID:
                return tuple(models)
            known = MODEL_LENGTHS.get(model_id)
            if known is not None and length < known:
                raise garbage(
                    self.name, f"model {model_id} at {address} is {length} long, not {known}"
                )
            models.append(ModelHeader(model_id, address, length))
            address += 2 + length
            if address > 0xFFFF:
                break
        raise garbage(self.name, "the SunSpec model chain has no end marker")

    def forget(self) -> None:
        """Rediscover on the next read."""
        self.base_address = None
        self.models = ()

    def find(self, model_ids: frozenset[int] | set[int]) -> ModelHeader | None:
        """The first model of the chain with one of ``model_ids``."""
        return next((m for m in self.models if m.model_id in model_ids), None)

    async def read_model(self, header: ModelHeader) -> ModelBlock:
        """The model's registers (id, L and points), header checked."""
        total = header.length + 2
        words: list[int] = []
        while len(words) < total:
            count = min(MAX_READ_REGISTERS, total - len(words))
            words += await self.transport.request(3, header.address + len(words), count)
        if words[0] != header.model_id or words[1] != header.length:
            self.forget()
            raise garbage(
                self.name,
                f"model {header.model_id} at {header.address} now reads "
                f"id {words[0]} length {words[1]}",
            )
        return ModelBlock(header.model_id, header.address, tuple(words))


class _SunSpecReader:
    """Common lifecycle of the SunSpec meter and inverter."""

    def __init__(
        self, client: SunSpecClient, *, clock: Clock | None = None, name: str | None = None
    ) -> None:
        self.client = client
        self.name = name or client.name
        self._clock: Clock = clock or RealClock()

    async def start(self) -> None:
        """Discover, log the device's identity (common model), read once (fails early)."""
        models = await self.client.discover()
        common = self.client.find({COMMON_MODEL_ID})
        identity: dict[str, str] = {}
        if common is not None:
            block = await self.client.read_model(common)
            try:
                identity = {p: block.text(p) for p in ("Mn", "Md", "SN")}
            except RegisterDecodeError as err:
                raise garbage(self.name, f"common model: {err}") from err
        log.info(
            "sunspec device started",
            device=self.name,
            reason="start",
            base_address=self.client.base_address,
            models=[m.model_id for m in models],
            **identity,
        )
        await self.read()

    async def close(self) -> None:
        """Close the connection."""
        await self.client.transport.close()

    async def read(self) -> MeterSample:
        """One sample."""
        raise NotImplementedError

    async def _model(self, model_ids: frozenset[int] | set[int], what: str) -> ModelBlock:
        await self.client.discover()
        header = self.client.find(model_ids)
        if header is None:
            found = ", ".join(str(m.model_id) for m in self.client.models) or "none"
            msg = f"{self.name}: no SunSpec {what} model (found: {found})"
            raise DeviceResponseError(msg)
        return await self.client.read_model(header)

    def _get(self, block: ModelBlock, point: str, q: Quantity) -> float | None:
        try:
            value = block.value(point)
        except RegisterDecodeError as err:
            raise garbage(self.name, str(err)) from err
        return checked(self.name, q, f"model {block.model_id} {point}", value)

    def _phases(
        self, block: ModelBlock, points: tuple[str, str, str], q: Quantity
    ) -> Phases | None:
        values = [self._get(block, p, q) for p in points]
        if any(v is None for v in values):
            return None
        return Phases.of(v for v in values if v is not None)


#: phases a meter model has: 201 single phase, 202 split phase, 203/204 three phase
_METER_PHASES = {201: 1, 202: 2, 203: 3, 204: 3}


class SunSpecMeter(_SunSpecReader):
    """Implements ``GridMeter`` for a SunSpec meter (models 201-204)."""

    async def read(self) -> MeterSample:
        """One sample from the first meter model of the chain."""
        block = await self._model(METER_MODEL_IDS, "meter (201-204)")
        n = _METER_PHASES[block.model_id]
        power: list[float] = []
        current: list[float] = []
        for k, ph in enumerate(("A", "B", "C")):
            w = self._get(block, f"Wph{ph}", Quantity.ACTIVE_POWER_W)
            a = self._get(block, f"Aph{ph}", Quantity.CURRENT_A)
            if k >= n and w is None and a is None:
                w, a = 0.0, 0.0  # a phase the model does not have
            w = required(self.name, Quantity.ACTIVE_POWER_W, f"Wph{ph}", w)
            a = required(self.name, Quantity.CURRENT_A, f"Aph{ph}", a)
            power.append(w)
            current.append(signed_current(a, w))
        total = self._get(block, "W", Quantity.ACTIVE_POWER_W)
        return MeterSample(
            timestamp=self._clock.now(),
            power_w=math.fsum(power) if total is None else total,
            current_a=Phases.of(current),
            power_per_phase_w=Phases.of(power),
            voltage_v=self._phases(block, ("PhVphA", "PhVphB", "PhVphC"), Quantity.VOLTAGE_V),
            reactive_power_var=self._get(block, "VAR", Quantity.ACTIVE_POWER_W),
            frequency_hz=self._get(block, "Hz", Quantity.FREQUENCY_HZ),
            energy_import_wh=self._get(block, "TotWhImp", Quantity.ENERGY_IMPORT_WH),
            energy_export_wh=self._get(block, "TotWhExp", Quantity.ENERGY_EXPORT_WH),
        )


class SunSpecInverter(_SunSpecReader):
    """Implements ``GridMeter`` for a PV inverter's feed-in (701, else 101-103)."""

    async def read(self) -> MeterSample:
        """One sample; production is negative power."""
        await self.client.discover()
        if self.client.find({DER_AC_MODEL_ID}) is not None:
            return self._from_701(await self._model({DER_AC_MODEL_ID}, "DER AC"))
        return self._from_10x(await self._model(INVERTER_MODEL_IDS, "inverter (101-103, 701)"))

    def _from_701(self, block: ModelBlock) -> MeterSample:
        total = required(
            self.name, Quantity.ACTIVE_POWER_W, "W", self._get(block, "W", Quantity.ACTIVE_POWER_W)
        )
        per_phase = self._phases(block, ("WL1", "WL2", "WL3"), Quantity.ACTIVE_POWER_W)
        amps = self._phases(block, ("AL1", "AL2", "AL3"), Quantity.CURRENT_A)
        current = None
        if amps is not None:
            gen = per_phase if per_phase is not None else Phases.uniform(total)
            current = amps.zip_with(gen, lambda a, w: -signed_current(a, w))
        return MeterSample(
            timestamp=self._clock.now(),
            power_w=-total,
            current_a=current,
            power_per_phase_w=None if per_phase is None else -per_phase,
            voltage_v=self._phases(block, ("VL1", "VL2", "VL3"), Quantity.VOLTAGE_V),
            frequency_hz=self._get(block, "Hz", Quantity.FREQUENCY_HZ),
            energy_import_wh=self._get(block, "TotWhAbs", Quantity.ENERGY_IMPORT_WH),
            energy_export_wh=self._get(block, "TotWhInj", Quantity.ENERGY_EXPORT_WH),
        )

    def _from_10x(self, block: ModelBlock) -> MeterSample:
        total = required(
            self.name, Quantity.ACTIVE_POWER_W, "W", self._get(block, "W", Quantity.ACTIVE_POWER_W)
        )
        amps = self._phases(block, ("AphA", "AphB", "AphC"), Quantity.CURRENT_A)
        if block.model_id == 101 and amps is None:
            a = self._get(block, "A", Quantity.CURRENT_A)
            amps = None if a is None else Phases(a, 0.0, 0.0)
        return MeterSample(
            timestamp=self._clock.now(),
            power_w=-total,
            current_a=None if amps is None else amps.map(lambda a: -signed_current(a, total)),
            voltage_v=self._phases(block, ("PhVphA", "PhVphB", "PhVphC"), Quantity.VOLTAGE_V),
            frequency_hz=self._get(block, "Hz", Quantity.FREQUENCY_HZ),
            energy_export_wh=self._get(block, "WH", Quantity.ENERGY_EXPORT_WH),
        )


__all__ = ["ModelHeader", "SunSpecClient", "SunSpecInverter", "SunSpecMeter"]
