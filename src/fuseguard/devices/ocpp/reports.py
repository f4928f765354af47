"""What one charge point reported: connector states, meter values, transactions.

:class:`Reports` is the part of a :class:`~fuseguard.devices.ocpp.station.Station` that only
listens: the session's handlers feed it, every value passes the closed tables and bounds of
:mod:`fuseguard.devices.ocpp.wire` first, and nothing here sends anything.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from fuseguard.devices.ocpp.wire import (
    OcppValueError,
    connector_id_of,
    energy_wh_of,
    parse_meter_values,
    status_of,
)
from fuseguard.model.clock import Clock
from fuseguard.model.phases import Phases
from fuseguard.model.status import CpState, OcppState

log = structlog.get_logger(__name__)

#: OCPP 1.6 IdToken is a CiString20Type
ID_TAG_MAX_LEN = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class StationConfig:
    """How fuseguard drives one charge point."""

    identity: str
    password: str | None
    connectors: int = 1
    safe_current_a: int = 6
    phases: int | None = None
    voltage_v: float = 230.0
    lease_s: float = 60.0
    meter_interval_s: int = 10
    heartbeat_s: int = 60
    boot_wait_s: float = 5.0
    call_timeout_s: float = 10.0
    setup_retry_s: float = 30.0
    #: id tags accepted locally (None: accept every id tag)
    allowed_id_tags: frozenset[str] | None = None
    #: local controller mode: caps as ChargePointMaxProfile on connector 0 (an operator's backend
    #: keeps its own Tx/TxDefault profiles; the charge point takes the minimum)
    local_controller: bool = False

    @property
    def renew_every_s(self) -> float:
        """The lease is renewed this often (a third of it: two renewals may fail)."""
        return max(1.0, self.lease_s / 3)


@dataclass(kw_only=True)
class ConnectorState:
    """One connector as the charge point reported it, and the profiles on it."""

    connector_id: int
    ocpp_state: OcppState | None = None
    cp_state: CpState | None = None
    error_code: str = "NoError"
    current_a: Phases = field(default_factory=Phases)
    offered_a: float | None = None
    power_w: float | None = None
    energy_wh: float | None = None
    meter_at: float = -math.inf
    transaction_id: int | None = None
    meter_start_wh: float | None = None
    id_tag: str | None = None
    desired_a: int | None = None
    installed_a: int | None = None
    installed_at: float = -math.inf
    renewed_at: float = -math.inf
    lease_until: datetime | None = None
    safe_installed: bool = False
    profile_error: str | None = None
    #: when a profile was last refused (a refusal is retried after ``setup_retry_s``)
    refused_at: float = -math.inf
    #: consecutive MeterValues with Current.Offered above the installed limit
    offered_over: int = 0


class Reports:
    """The reported state of one charge point identity (base of ``Station``)."""

    def __init__(self, config: StationConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.connectors = {
            n: ConnectorState(connector_id=n) for n in range(1, config.connectors + 1)
        }
        self.vendor: str | None = None
        self.model: str | None = None
        self.firmware: str | None = None
        self.main_status: OcppState | None = None
        self._next_tx = int(clock.now().timestamp()) % 1_000_000_000

    @property
    def name(self) -> str:
        """For logs."""
        return f"ocpp:{self.config.identity}"

    @property
    def heartbeat_s(self) -> int:
        """The heartbeat interval given at boot."""
        return self.config.heartbeat_s

    def now(self) -> datetime:
        """The injected clock's UTC time."""
        return self.clock.now()

    def on_boot(self, vendor: str, model: str, extra: dict[str, Any]) -> None:
        """BootNotification: remember who it is."""
        self.vendor, self.model = vendor[:20], model[:20]
        firmware = extra.get("firmware_version")
        self.firmware = firmware[:50] if isinstance(firmware, str) else None
        log.info("ocpp_boot", device=self.name, reason="BootNotification", vendor=self.vendor,
                 model=self.model, firmware=self.firmware)  # fmt: skip

    def set_transaction(self, connector_id: int, transaction_id: int) -> None:
        """Local controller mode: the backend's transaction id for a running transaction."""
        c = self.connectors.get(connector_id)
        if c is not None:
            c.transaction_id = transaction_id

    # --- what the charge point reports -----------------------------------------------------

    def _connector(self, connector_id: object, what: str) -> ConnectorState | None:
        try:
            n = connector_id_of(connector_id)
        except OcppValueError as err:
            log.warning("ocpp_value_refused", device=self.name, reason=f"{what}: {err}")
            return None
        return self.connectors.get(n)

    def on_status(self, connector_id: int, status: str, error_code: str, _: object) -> None:
        """StatusNotification."""
        try:
            ocpp_state, cp = status_of(status)
        except OcppValueError as err:
            log.warning("ocpp_value_refused", device=self.name, reason=str(err))
            return
        if connector_id == 0:
            self.main_status = ocpp_state
            return
        c = self._connector(connector_id, "StatusNotification")
        if c is None:
            return
        if c.ocpp_state is not ocpp_state:
            log.info("ocpp_status", device=self.name, connector=c.connector_id, reason=status,
                     error_code=error_code)  # fmt: skip
        if not cp.charging:
            c.current_a, c.power_w = Phases(), 0.0  # no draw outside Charging
        c.ocpp_state, c.cp_state, c.error_code = ocpp_state, cp, error_code[:30]

    def on_meter_values(self, connector_id: int, meter_value: object) -> None:
        """MeterValues: the newest value of each measurand control needs."""
        c = self._connector(connector_id, "MeterValues")
        if c is None:
            return
        reading = parse_meter_values(meter_value)
        for reason in reading.refused:
            log.warning("ocpp_value_refused", device=self.name, reason=reason)
        if reading.current_a is not None:
            c.current_a = reading.current_a
        if reading.offered_a is not None:
            c.offered_a = reading.offered_a
        if reading.power_w is not None:
            c.power_w = reading.power_w
        if reading.energy_wh is not None:
            c.energy_wh = reading.energy_wh
        c.meter_at = self.clock.monotonic()

    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int) -> int:
        """StartTransaction: a new transaction id."""
        self._next_tx = self._next_tx % 2_000_000_000 + 1
        c = self._connector(connector_id, "StartTransaction")
        if c is not None:
            c.transaction_id = self._next_tx
            valid_tag = 0 < len(id_tag) <= ID_TAG_MAX_LEN and id_tag.isprintable()
            c.id_tag = id_tag if valid_tag else None
            try:
                c.meter_start_wh = energy_wh_of(meter_start, "meterStart")
            except OcppValueError as err:
                log.warning("ocpp_value_refused", device=self.name, reason=str(err))
                c.meter_start_wh = None
        return self._next_tx

    def on_stop_transaction(self, transaction_id: int, meter_stop: int) -> None:
        """StopTransaction."""
        for c in self.connectors.values():
            if c.transaction_id == transaction_id:
                c.transaction_id = None
                c.id_tag = None
                with contextlib.suppress(OcppValueError):
                    c.energy_wh = energy_wh_of(meter_stop, "meterStop")

    def authorize(self, id_tag: str) -> str:
        """Local authorisation policy: accept all, or only the allow-list."""
        allowed = self.config.allowed_id_tags
        return "Accepted" if allowed is None or id_tag in allowed else "Invalid"


def phases_in_use(c: ConnectorState) -> int | None:
    """Phases a charging car draws on (> 1 A), when per-phase currents are known."""
    if c.cp_state is None or not c.cp_state.charging:
        return None
    count = sum(1 for a in c.current_a if a > 1.0)
    return count or None


__all__ = ["ConnectorState", "Reports", "StationConfig", "phases_in_use"]
