"""Status vocabularies, spelled exactly as the devices spell them, and the mappings between them.

Sources: seed 002 (CLEMAP plug status), seed 003 (Bender legacy REST keys), IEC 61851-1 (control
pilot states), OCPP 1.6 (charge point status). The mapping rules are documented in
``docs/architecture.md`` ("Status vocabularies") and tested in ``tests/model/test_status.py``.
"""

from __future__ import annotations

from enum import StrEnum


class PlugStatus(StrEnum):
    """The 13 plug status values of the CLEMAP EVSE status API (seed 002)."""

    CHARGING = "charging"
    RECENTLY_STARTED_CHARGING = "recently_started_charging"
    IDLE = "idle"
    CONNECTED = "connected"
    DISCHARGING = "discharging"
    ERROR = "error"
    OFFLINE = "offline"
    CLOUD_OFFLINE = "cloud_offline"
    INIT = "init"
    STOPPED = "stopped"
    STARTING = "starting"
    PRODUCING = "producing"
    UNKNOWN = "unknown"


class CpState(StrEnum):
    """IEC 61851-1 control pilot states."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not charging
    C = "C"  # +6 V: charging
    D = "D"  # +3 V: charging, ventilation required
    E = "E"  # 0 V: short circuit / no supply
    F = "F"  # -12 V: EVSE not available / fault

    @property
    def vehicle_connected(self) -> bool:
        """True in B, C and D."""
        return self in _CONNECTED

    @property
    def charging(self) -> bool:
        """True in C and D (the vehicle requests energy)."""
        return self in _CHARGING

    @property
    def fault(self) -> bool:
        """True in E and F."""
        return self in _FAULT


# the predicates' sets, built once (a tuple of members built per call cost ~16x as much: the
# simulator asks them several times per plug per decision)
_CONNECTED = frozenset((CpState.B, CpState.C, CpState.D))
_CHARGING = frozenset((CpState.C, CpState.D))
_FAULT = frozenset((CpState.E, CpState.F))


# --- Bender legacy REST value sets (seed 003) -------------------------------------------------


class ConnState(StrEnum):
    """``conn_state``."""

    NO_VEHICLE_CONNECTED = "no_vehicle_connected"
    VEHICLE_CONNECTED_SCHUKO = "vehicle_connected_schuko"
    VEHICLE_CHARGING_SCHUKO = "vehicle_charging_schuko"
    VEHICLE_CONNECTED_TYPE2 = "vehicle_connected_type2"
    VEHICLE_CHARGING_TYPE2 = "vehicle_charging_type2"
    VEHICLE_CONNECTOR_ERROR = "vehicle_connector_error"


class AuthState(StrEnum):
    """``auth_state``."""

    NOT_AUTHORIZED_FOR_CHARGING = "not_authorized_for_charging"
    WAIT_FOR_AUTH = "wait_for_auth"
    AUTHORIZED_FOR_CHARGING = "authorized_for_charging"
    AUTH_TIMEOUT = "auth_timeout"


class OcppState(StrEnum):
    """``ocpp_state`` and ``slave_state``; the order is the Modbus register 104 ordinal."""

    AVAILABLE = "available"
    OCCUPIED = "occupied"
    RESERVED = "reserved"
    UNAVAILABLE = "unavailable"
    FAULTED = "faulted"
    PREPARING = "preparing"
    CHARGING = "charging"
    SUSPENDEDEVSE = "suspendedevse"
    SUSPENDEDEV = "suspendedev"
    FINISHING = "finishing"

    @property
    def ordinal(self) -> int:
        """Value of Modbus register 104."""
        return _OCPP_ORDER.index(self)

    @classmethod
    def from_ordinal(cls, value: int) -> OcppState:
        """Inverse of :attr:`ordinal`; raises ValueError when out of range."""
        if not 0 <= value < len(_OCPP_ORDER):
            msg = f"OCPP state ordinal {value} out of range 0..{len(_OCPP_ORDER) - 1}"
            raise ValueError(msg)
        return _OCPP_ORDER[value]


_OCPP_ORDER: tuple[OcppState, ...] = tuple(OcppState)


class Type2State(StrEnum):
    """``type2_state``: the IEC 61851 CP state as the Bender REST API writes it (a..e)."""

    A = "a"
    B = "b"
    C = "c"
    D = "d"
    E = "e"


class Type2Proximity(StrEnum):
    """``type2_proximity``: cable rating in A, a fixed cable, or a fault."""

    NO_CABLE = "no_cable"
    A13 = "13"
    A20 = "20"
    A32 = "32"
    A63 = "63"
    CABLE_ATTACHED = "cable_attached"
    SHORT_CIRCUIT = "short_circuit"

    @property
    def cable_rating_a(self) -> int | None:
        """Current rating of a detachable cable; None when not a rating."""
        return int(self.value) if self.value.isdigit() else None


class SchukoState(StrEnum):
    """``schuko_state``."""

    IDLE = "idle"
    CONNECTED = "connected"
    POWER_ON = "power_on"


class BackendConnState(StrEnum):
    """``backend_conn_state`` (``not_reacheable`` is the device's own spelling)."""

    NOT_CONNECTED = "not_connected"
    CONNECTING = "connecting"
    CONNECTING_PROXY_OK = "connecting_proxy_ok"
    CONNECTED = "connected"
    NOT_REACHEABLE = "not_reacheable"
    REJECTED = "rejected"
    PENDING = "pending"


class OnOff(StrEnum):
    """``free_charging``, ``cable_attached``."""

    OFF = "off"
    ON = "on"


class EnableDisable(StrEnum):
    """``schuko_cfg``."""

    DISABLE = "disable"
    ENABLE = "enable"


class RcmbState(StrEnum):
    """``rcmb_state``."""

    TRIGGERED = "triggered"
    OKAY = "okay"


class ProtectionState(StrEnum):
    """``rcd_state``, ``mcb_type2_state``, ``mcb_schuko_state``."""

    DISABLE = "disable"
    TRIGGERED = "triggered"
    OKAY = "okay"


class WlanState(StrEnum):
    """``wlan_state`` (firmware 5.33)."""

    WLAN_DISCONNECTED = "wlan_disconnected"
    WLAN_CONNECTED = "wlan_connected"


class OcppMeterCfg(StrEnum):
    """``ocpp_meter_cfg``: the meter type configured in the charge controller (seed 003)."""

    EHZ_METER_RS232 = "ehz_meter_rs232"
    S0_METER_OPTO_1 = "s0_meter_opto_1"
    S0_METER_OPTO_2 = "s0_meter_opto_2"
    NO_METER = "no_meter"
    S0_METER_DEDICATED_INPUT = "s0_meter_dedicated_input"
    INTERNAL_METER = "internal_meter"
    MODBUS_METER_ABB = "modbus_meter_abb"
    MODBUS_METER_EASTRON_SDM630 = "modbus_meter_eastron_sdm630"
    MODBUS_METER_EASTRON_SDM120_220 = "modbus_meter_eastron_sdm120_220"
    MODBUS_METER_GARO_GNM3D = "modbus_meter_garo_gnm3d"
    MODBUS_METER_GARO_GNM1D = "modbus_meter_garo_gnm1d"
    MODBUS_METER_GARO_GM3T = "modbus_meter_garo_gm3t"
    MODBUS_METER_GARO_EM270 = "modbus_meter_garo_EM270"
    MODBUS_METER_FINDER = "modbus_meter_finder"
    MODBUS_METER_SAIA_ALE3 = "modbus_meter_saia_ale3"
    MODBUS_METER_INEPRO_PRO1_2 = "modbus_meter_inepro_pro1_2"
    MODBUS_METER_INEPRO_PRO380 = "modbus_meter_inepro_pro380"
    MODBUS_METER_OPTEC = "modbus_meter_optec"
    MODBUS_METER_NZR = "modbus_meter_nzr"
    MODBUS_METER_TQ_EM300LR = "modbus_meter_tq_em300lr"
    MODBUS_METER_CARLO_GAVAZZI_EM200 = "modbus_meter_carlo_gavazzi_em200"
    MODBUS_METER_CARLO_GAVAZZI_EM340 = "modbus_meter_carlo_gavazzi_em340"
    MODBUS_METER_GARO_GNM3T = "modbus_meter_garo_gnm3t"
    MODBUS_METER_IME_CE4DMID31 = "modbus_meter_ime_ce4dmid31"
    MODBUS_METER_SIEMENS7KT1666 = "modbus_meter_siemens7kt1666"
    MODBUS_METER_TQ_EM300LR_TCP = "modbus_meter_tq_em300lr_tcp"
    MODBUS_METER_SIEMENS7KM2200_TCP = "modbus_meter_siemens7km2200_tcp"
    MODBUS_METER_HAGER_ECR380D = "modbus_meter_hager_ecr380d"
    MODBUS_METER_GARO_GNM3TD = "modbus_meter_garo_gnm3td"
    MODBUS_METER_CARLO_GAVAZZI_EM210 = "modbus_meter_carlo_gavazzi_em210"
    MODBUS_METER_PHOENIXCONTACT_EEM_MB371_TCP = "modbus_meter_phoenixcontact_eem_mb371_tcp"
    MODBUS_METER_SCHNEIDER_IEM3555 = "modbus_meter_schneider_iem3555"
    MODBUS_METER_ECS_M3PRO = "modbus_meter_ecs_m3pro"
    MODBUS_METER_JANITZA_UMG_512_PRO = "modbus_meter_janitza_umg_512_pro"
    MODBUS_METER_JANITZA_UMG_512_PRO_TCP = "modbus_meter_janitza_umg_512_pro_tcp"
    MODBUS_METER_JANITZA_UMG_605_PRO = "modbus_meter_janitza_umg_605_pro"
    MODBUS_METER_JANITZA_UMG_605_PRO_TCP = "modbus_meter_janitza_umg_605_pro_tcp"
    MODBUS_METER_DZG_DVH4013 = "modbus_meter_dzg_dvh4013"
    MODBUS_METER_GOSSEN_METRAWATT_EM2289 = "modbus_meter_gossen_metrawatt_em2289"
    MODBUS_METER_EASTRON_SDM72D = "modbus_meter_eastron_sdm72d"
    MODBUS_METER_ISKRA_WM3M6 = "modbus_meter_iskra_wm3m6"
    MODBUS_METER_TQ_EM410420 = "modbus_meter_tq_em410420"
    MODBUS_METER_TQ_EM410420_TCP = "modbus_meter_tq_em410420_tcp"
    MODBUS_BERG_BME_461 = "modbus_berg_bme_461"
    MODBUS_BERG_B23 = "modbus_berg_b23"
    MODBUS_METER_PHOENIXCONTACT_EEM_EM357 = "modbus_meter_phoenixcontact_eem_em357"
    MODBUS_METER_NZR_ECOCOUNT_Q4 = "modbus_meter_nzr_ecocount_q4"
    MODBUS_METER_ABB_EV3 = "modbus_meter_abb_ev3"
    DC_DZG_GSH01 = "dc_dzg_gsh01"
    MODBUS_METER_YTL_DTS353F = "modbus_meter_ytl_dts353f"
    INTERNAL_AC_METER = "internal_ac_meter"
    INTERNAL_DC_METER = "internal_dc_meter"
    MODBUS_EICHRECHT = "modbus_eichrecht"
    EHZ_METER_USB = "ehz_meter_usb"


class ChargeMode(StrEnum):
    """How a plug is charged (anchors: evcc ``now``/``pv``/``minpv``/``off``)."""

    FAST = "fast"
    PV = "pv"
    MINPV = "minpv"
    OFF = "off"


# --- Mappings ---------------------------------------------------------------------------------

_TYPE2_TO_CP = {
    Type2State.A: CpState.A,
    Type2State.B: CpState.B,
    Type2State.C: CpState.C,
    Type2State.D: CpState.D,
    Type2State.E: CpState.E,
}

# Modbus register 122 of the Bender controller: 1=A .. 5=E, 6=F (one SGr draft).
_CP_TO_REG122 = {
    CpState.A: 1,
    CpState.B: 2,
    CpState.C: 3,
    CpState.D: 4,
    CpState.E: 5,
    CpState.F: 6,
}


def cp_from_type2_state(state: Type2State) -> CpState:
    """``type2_state`` a..e -> IEC 61851 CP state."""
    return _TYPE2_TO_CP[state]


def type2_state_from_cp(cp: CpState) -> Type2State:
    """CP state -> ``type2_state``; F has no REST letter and is reported as ``e``."""
    if cp is CpState.F:
        return Type2State.E
    return Type2State(cp.value.lower())


def cp_to_register_122(cp: CpState) -> int:
    """CP state -> Bender Modbus register 122."""
    return _CP_TO_REG122[cp]


def cp_from_register_122(value: int) -> CpState:
    """Bender Modbus register 122 -> CP state; raises ValueError when unknown."""
    for cp, reg in _CP_TO_REG122.items():
        if reg == value:
            return cp
    msg = f"register 122 value {value} is not a CP state (1..6)"
    raise ValueError(msg)


def conn_state_from_cp(cp: CpState) -> ConnState:
    """CP state -> ``conn_state`` for the Type 2 socket."""
    if cp is CpState.A:
        return ConnState.NO_VEHICLE_CONNECTED
    if cp is CpState.B:
        return ConnState.VEHICLE_CONNECTED_TYPE2
    if cp.charging:
        return ConnState.VEHICLE_CHARGING_TYPE2
    return ConnState.VEHICLE_CONNECTOR_ERROR


def plug_status(
    *,
    online: bool,
    cp: CpState | None,
    ocpp: OcppState | None = None,
    offered_current_a: float = 0.0,
    has_errors: bool = False,
    charging_for_s: float | None = None,
    recently_started_window_s: float = 60.0,
) -> PlugStatus:
    """Derive the seed-002 plug status from what a charge controller reports.

    Rules, first match wins:

    1. not ``online`` (no answer, or garbage) -> ``offline``
    2. ``cp`` is None (no reading yet since start) -> ``init``
    3. CP E/F, OCPP ``faulted`` or an active error list -> ``error``
    4. OCPP ``unavailable`` or ``finishing`` -> ``stopped``
    5. CP C/D: ``recently_started_charging`` while ``charging_for_s`` < the window, else
       ``charging``
    6. CP B: ``starting`` when current is offered (> 0 A) and OCPP is ``preparing`` (the car has
       not started drawing yet); otherwise ``connected``
    7. CP A -> ``idle``

    ``discharging`` and ``producing`` belong to bidirectional/PV devices and ``cloud_offline`` to
    the cloud; an AC charge controller never yields them.
    """
    if not online:
        return PlugStatus.OFFLINE
    if cp is None:
        return PlugStatus.INIT
    if cp.fault or ocpp is OcppState.FAULTED or has_errors:
        return PlugStatus.ERROR
    if ocpp in _STOPPED:
        return PlugStatus.STOPPED
    if cp.charging:
        if charging_for_s is not None and charging_for_s < recently_started_window_s:
            return PlugStatus.RECENTLY_STARTED_CHARGING
        return PlugStatus.CHARGING
    if cp is CpState.B:
        if offered_current_a > 0 and ocpp is OcppState.PREPARING:
            return PlugStatus.STARTING
        return PlugStatus.CONNECTED
    return PlugStatus.IDLE


_STOPPED = frozenset((OcppState.UNAVAILABLE, OcppState.FINISHING))
