"""Bender CC612/CC613 wire format, shared by the driver and the virtual device (no I/O).

The "Ebee / Bender / MENNEKES" Modbus TCP address set (devices.md section 4.3) and the legacy REST
``/rest/full_state`` key sets of firmware 5.33 and 5.22 (seed 003, devices.md section 4.1). The
driver (:mod:`fuseguard.devices.bender`) reads with these numbers and the virtual device
(:mod:`fuseguard.sim.bender`) serves them, so the two cannot drift apart.
"""

from __future__ import annotations


class BenderRegister:
    """Register numbers of the "Ebee / Bender / MENNEKES" Modbus address set (devices.md §4.3)."""

    FIRMWARE = 100  # 2 regs, 4 ASCII
    OCPP_STATE = 104
    ERROR_CODES = 105  # 105..112 bitfields
    ERROR_CODES_LAST = 112
    PROTOCOL_VERSION = 120  # 2 regs, 4 ASCII
    CP_STATE = 122
    AVAILABILITY = 124
    SAFE_CURRENT = 131
    COMM_TIMEOUT = 132
    OPERATOR_CURRENT_LIMIT = 134
    RELAY_STATE = 140
    MODEL = 142  # 10 regs, 20 ASCII
    ENERGY_L1 = 200  # u32 Wh each: 200, 202, 204
    POWER_L1 = 206  # u32 W each: 206, 208, 210
    CURRENT_L1 = 212  # u32 mA each: 212, 214, 216
    ENERGY_TOTAL = 218  # u32 Wh
    POWER_TOTAL = 220  # u32 W
    VOLTAGE_L1 = 222  # u32 V each: 222, 224, 226
    SESSION_ENERGY_16 = 705  # first register of the session block 705..719
    SIGNALLED_CURRENT = 706
    SESSION_START_BCD = 707  # 2 regs hhmmss
    CHARGING_DURATION_16 = 709
    SESSION_END_BCD = 710  # 2 regs
    MIN_CURRENT = 712
    MAX_CURRENT = 715
    SESSION_ENERGY = 716  # u32 Wh
    CHARGING_DURATION = 718  # u32 s
    USER_ID = 720  # 10 regs, 20 ASCII
    EV_SOC = 730
    SMART_VEHICLE = 740
    EVCCID = 741  # 6 regs, 12 ASCII
    HEMS_CURRENT_LIMIT = 1000
    HEMS_CURRENT_LIMIT_DECI = 1001  # 0.1 A


#: Defined register ranges (inclusive) of one connector's Modbus server.
REGISTER_RANGES: tuple[tuple[int, int], ...] = (
    (100, 101),
    (104, 112),
    (120, 122),
    (124, 124),
    (131, 134),
    (140, 140),
    (142, 151),
    (200, 227),
    (705, 746),
    (1000, 1001),
)
#: Registers an energy manager may write.
WRITABLE_REGISTERS = frozenset(
    {
        BenderRegister.AVAILABILITY,
        BenderRegister.SAFE_CURRENT,
        BenderRegister.COMM_TIMEOUT,
        BenderRegister.HEMS_CURRENT_LIMIT,
        BenderRegister.HEMS_CURRENT_LIMIT_DECI,
    }
)
MODBUS_PROTOCOL_VERSION = "0.14"

# Error bits (devices.md §4.3, after OpenEMS): register 112.
ERR112_RCMB = 1 << 0
ERR112_VEHICLE_E = 1 << 1
ERR112_RCD = 1 << 5
ERR112_CONTACTOR_WELD = 1 << 6

#: ``errors`` entries the virtual device writes (names inferred; the seed only shows examples).
ERROR_RCMB = "rcmb_triggered"
ERROR_RCD = "rcd_triggered"
ERROR_WELD = "contactor_welded"

KEYS_5_33: tuple[str, ...] = (
    "conn_state",
    "auth_state",
    "auth_uid",
    "time_since_charging_start",
    "meter_wh",
    "power_w",
    "transaction_wh",
    "display_text",
    "cp_id",
    "ocpp_state",
    "type2_state",
    "type2_proximity",
    "sig_current",
    "schuko_state",
    "backend_conn_state",
    "free_charging",
    "slave_state",
    "ocpp_meter_cfg",
    "ocpp_meter_serial",
    "current_a",
    "energy_man_current",
    "ambient_temp",
    "firmware_ver",
    "cc_serial_n",
    "manuf_serial_n",
    "con_cycles_schuko",
    "con_cycles_type2",
    "max_current",
    "rcmb_state",
    "rcmb_max",
    "rcmb_values",
    "rcmb_max_values",
    "rcmb_current_values",
    "cable_attached",
    "schuko_cfg",
    "rcd_state",
    "mcb_type2_state",
    "mcb_schuko_state",
    "cp_vendor",
    "errors",
    "cp_model",
    "voltage_v",
    "wlan_state",
)
"""Key order on firmware 5.33: the documented order (seed 003), plus the 5.22 rcmb spellings."""

KEYS_5_22: tuple[str, ...] = (
    "conn_state",
    "auth_state",
    "auth_uid",
    "time_since_charging_start",
    "meter_wh",
    "power_w",
    "transaction_wh",
    "cp_id",
    "ocpp_state",
    "type2_state",
    "type2_proximity",
    "sig_current",
    "schuko_state",
    "backend_conn_state",
    "free_charging",
    "slave_state",
    "ocpp_meter_cfg",
    "ocpp_meter_serial",
    "current_a",
    "energy_man_current",
    "ambient_temp",
    "firmware_ver",
    "cc_serial_n",
    "con_cycles_schuko",
    "con_cycles_type2",
    "max_current",
    "rcmb_state",
    "rcmb_max_values",
    "rcmb_current_values",
    "cable_attached",
    "schuko_cfg",
    "rcd_state",
    "mcb_type2_state",
    "mcb_schuko_state",
    "cp_vendor",
    "errors",
    "cp_model",
    "display_text",
)
"""Key order observed on firmware 5.22.1 (devices.md §4.1)."""

#: Names for the documented error bits ((register, bit) -> name; register 112 / 111).
ERROR_BITS: dict[tuple[int, int], str] = {
    (112, 0): "rcmb_triggered",
    (112, 1): "vehicle_state_e",
    (112, 2): "diode_check_failed",
    (112, 5): "rcd_triggered",
    (112, 6): "contactor_welded",
    (112, 7): "backend_disconnected",
    (111, 5): "no_power",
}

#: The contiguous ranges the driver reads in one request each (first register, count).
READ_STATUS = (BenderRegister.OCPP_STATE, 9)  # 104..112
READ_CP = (BenderRegister.CP_STATE, 1)  # 122
READ_METER = (BenderRegister.ENERGY_L1, 28)  # 200..227
READ_SESSION = (BenderRegister.SESSION_ENERGY_16, 15)  # 705..719
READ_LIMIT = (BenderRegister.HEMS_CURRENT_LIMIT, 1)  # 1000
