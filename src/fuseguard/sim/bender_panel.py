"""The virtual Bender's REST key sets and its device-panel states (no I/O).

Key sets (``/rest/full_state`` on firmware 5.33):

* ``firmware`` (default): the 41 keys of seed 003 **plus** the 5.22 spellings ``rcmb_max_values``
  and ``rcmb_current_values`` (43 keys). Field clients written against 5.22 firmware read the
  5.22 spelling, and a 5.33 device that was updated from 5.22 keeps answering it; serving both
  lets one virtual device test both kinds of client.
* ``seed``: exactly the 41 keys seed 003 documents, in its order.

On firmware 5.22 both key sets are the observed 5.22 set (the seed documents 5.33 only).

Panel states: the parts of ``full_state`` that do not follow from the electrical model — the
Schuko socket (``schuko_cfg``, ``schuko_state``, ``mcb_schuko_state``, ``con_cycles_schuko`` and
the ``conn_state`` values ``vehicle_connected_schuko`` / ``vehicle_charging_schuko``), the OCPP
backend connection (``backend_conn_state``), ``wlan_state`` and the ``display_text``. They are set
through the admin API (``PATCH /sim/panel``) or, for the backend, by the ``backend_lost`` fault
(``backend_conn_state`` ``not_reacheable``, spelt as the seed spells it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fuseguard.model.status import BackendConnState, SchukoState, WlanState
from fuseguard.wire.bender import KEYS_5_33

#: The 5.22 spellings a 5.33 device also answers (not in seed 003).
RCMB_5_22_KEYS: Final = ("rcmb_max_values", "rcmb_current_values")
#: Exactly the keys of seed 003 (firmware 5.33), in its order.
KEYS_5_33_SEED: Final = tuple(k for k in KEYS_5_33 if k not in RCMB_5_22_KEYS)
#: Register 112 bit 7, "backend_disconnected" in ``wire.bender.ERROR_BITS``.
ERR112_BACKEND: Final = 1 << 7
#: Longest ``display_text`` the virtual device keeps (the seed's tariff XML example fits).
MAX_DISPLAY_TEXT: Final = 2048


class KeySet(StrEnum):
    """Which ``full_state`` key set a 5.33 device answers."""

    FIRMWARE = "firmware"  #: seed 003's 41 keys + the two 5.22 rcmb spellings (43)
    SEED = "seed"  #: exactly seed 003's 41 keys

    def select(self, firmware_keys: tuple[str, ...]) -> tuple[str, ...]:
        """The keys to serve out of the firmware's own order."""
        if self is KeySet.SEED and "rcmb_max" in firmware_keys:
            return tuple(k for k in firmware_keys if k not in RCMB_5_22_KEYS)
        return firmware_keys


def check_display_text(text: str) -> str:
    """A ``display_text`` the line-based REST format can carry; ValueError otherwise."""
    if len(text) > MAX_DISPLAY_TEXT:
        msg = f"display_text is longer than {MAX_DISPLAY_TEXT} characters"
        raise ValueError(msg)
    if any(ch in text for ch in "\r\n\x00"):
        msg = "display_text cannot contain line breaks or NUL (one key:value per line)"
        raise ValueError(msg)
    return text


@dataclass
class BenderPanel:
    """Device-panel state of one controller (see the module docstring)."""

    schuko_cfg: bool = False
    schuko_state: SchukoState = SchukoState.IDLE
    backend_conn_state: BackendConnState = BackendConnState.PENDING
    wlan_state: WlanState = WlanState.WLAN_DISCONNECTED
    display_text: str = ""
    con_cycles_schuko: int = 0

    def set_schuko(self, *, enabled: bool | None = None, state: SchukoState | None = None) -> None:
        """Enable/disable the Schuko socket or change its state (counts connection cycles)."""
        if enabled is not None:
            self.schuko_cfg = enabled
            if not enabled:
                self.schuko_state = SchukoState.IDLE
        if state is None:
            return
        if state is not SchukoState.IDLE and not self.schuko_cfg:
            msg = "the Schuko socket is disabled (schuko_cfg = disable)"
            raise ValueError(msg)
        if self.schuko_state is SchukoState.IDLE and state is not SchukoState.IDLE:
            self.con_cycles_schuko += 1
        self.schuko_state = state

    def apply(self, values: dict[str, str], *, backend_lost: bool, type2_busy: bool) -> None:
        """Write the panel's keys into ``full_state`` values (in place).

        ``backend_lost``: the ``backend_lost`` fault is active; ``type2_busy``: a vehicle is on
        the Type 2 connector (its ``conn_state`` wins over the Schuko socket's).
        """
        values["schuko_cfg"] = "enable" if self.schuko_cfg else "disable"
        values["mcb_schuko_state"] = "okay" if self.schuko_cfg else "disable"
        values["schuko_state"] = self.schuko_state.value
        values["con_cycles_schuko"] = str(self.con_cycles_schuko)
        backend = BackendConnState.NOT_REACHEABLE if backend_lost else self.backend_conn_state
        values["backend_conn_state"] = backend.value
        values["wlan_state"] = self.wlan_state.value
        values["display_text"] = self.display_text
        if not type2_busy and values.get("conn_state") == "no_vehicle_connected":
            if self.schuko_state is SchukoState.CONNECTED:
                values["conn_state"] = "vehicle_connected_schuko"
            elif self.schuko_state is SchukoState.POWER_ON:
                values["conn_state"] = "vehicle_charging_schuko"


__all__ = [
    "ERR112_BACKEND",
    "KEYS_5_33_SEED",
    "MAX_DISPLAY_TEXT",
    "RCMB_5_22_KEYS",
    "BackendConnState",
    "BenderPanel",
    "KeySet",
    "SchukoState",
    "WlanState",
    "check_display_text",
]
