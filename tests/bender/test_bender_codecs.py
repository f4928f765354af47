"""Modbus encoding round-trips and the REST text parser (hypothesis), and the firmware fixtures."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.devices.bender import (
    BenderModbusState,
    BenderParseError,
    BenderRestState,
    parse_full_state,
    parse_single_key,
)
from fuseguard.model.clock import VirtualClock
from fuseguard.model.faults import DeviceFault
from fuseguard.model.phases import Phases
from fuseguard.model.status import AuthState, CpState, OcppState
from fuseguard.sim.bender import (
    REGISTER_RANGES,
    BenderController,
    BenderDeviceConfig,
    Firmware,
)
from fuseguard.sim.bender_rest import render_full_state
from fuseguard.sim.site import SiteModel
from fuseguard.sim.vehicle import SimVehicle
from fuseguard.wire.modbus import (
    NOT_AVAILABLE_U32,
    RegisterBlock,
    RegisterDecodeError,
    decode_ascii,
    decode_u32,
    encode_ascii,
    encode_u16,
    encode_u32,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bender"
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(st.integers(0, 0xFFFF_FFFF))
def test_u32_round_trip_high_word_first(value: int) -> None:
    words = encode_u32(value)
    assert words[0] == value >> 16
    assert decode_u32(words) == value


def test_u32_documented_example_and_bounds() -> None:
    assert decode_u32([0x0001, 0x1F40]) == 73536
    with pytest.raises(ValueError, match="32-bit"):
        encode_u32(-1)
    with pytest.raises(ValueError, match="16-bit"):
        encode_u16(0x10000)
    with pytest.raises(RegisterDecodeError):
        decode_u32([1])


@FAST
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20))
def test_ascii_round_trip(text: str) -> None:
    assert decode_ascii(encode_ascii(text, 10)) == text.rstrip(" ")


def test_ascii_too_long() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_ascii("12345", 2)
    assert encode_ascii("5.22", 2) == [0x352E, 0x3232]


def _blocks(regs: dict[int, int]) -> list[RegisterBlock]:
    def block(start: int, count: int) -> RegisterBlock:
        return RegisterBlock(start, [regs[a] for a in range(start, start + count)])

    return [block(104, 9), block(122, 1), block(200, 28), block(705, 15), block(1000, 1)]


async def test_sim_registers_decode_to_the_model_state() -> None:
    clock = VirtualClock()
    ctl = BenderController(clock)
    site = SiteModel(clock)
    c = ctl.connector(1)
    site.add(c)
    c.plug_in(SimVehicle(phases=2, max_current_a=13.5, response_delay_s=0))
    c.authorize()
    c.set_hems_limit(20)
    for _ in range(30):
        await clock.advance(1)
        site.tick()
    regs = c.modbus_registers()
    for first, last in REGISTER_RANGES:
        assert all(a in regs for a in range(first, last + 1))
    # session start 00:00:00 on the virtual clock's epoch day, as BCD 00hh mmss
    assert (regs[707], regs[708]) == (0x0000, 0x0000)
    state = BenderModbusState.decode(*_blocks(regs))
    assert state.cp_state is CpState.C
    assert state.ocpp_state is OcppState.CHARGING
    assert state.current_a == Phases(13.5, 13.5, 0.0)
    assert state.signalled_current_a == 20
    assert state.limit_a == 20
    assert state.power_w == round(2 * 13.5 * 230)
    assert state.session_energy_wh == int(c.transaction_wh)
    assert state.charging_duration_s == 30
    assert state.errors == ()


def test_meter_absent_reads_not_available() -> None:
    ctl = BenderController(VirtualClock(), BenderDeviceConfig(has_meter=False))
    regs = ctl.connector(1).modbus_registers()
    assert decode_u32([regs[218], regs[219]]) == NOT_AVAILABLE_U32
    state = BenderModbusState.decode(*_blocks(regs))
    assert state.current_a is None
    assert state.energy_wh is None
    assert state.power_w is None


def test_rcd_trip_sets_error_bits() -> None:
    ctl = BenderController(VirtualClock())
    c = ctl.connector(1)
    c.set_fault(DeviceFault.RCD_TRIP)
    state = BenderModbusState.decode(*_blocks(c.modbus_registers()))
    assert state.ocpp_state is OcppState.FAULTED
    assert {"rcmb_triggered", "rcd_triggered"} <= set(state.errors)


@FAST
@given(st.lists(st.integers(0, 0xFFFF), min_size=55, max_size=55))
def test_arbitrary_registers_decode_or_raise_decode_error(words: list[int]) -> None:
    blocks = [
        RegisterBlock(104, words[0:9]),
        RegisterBlock(122, words[9:10]),
        RegisterBlock(200, words[10:38]),
        RegisterBlock(705, words[38:53]),
        RegisterBlock(1000, words[53:54]),
    ]
    try:
        state = BenderModbusState.decode(*blocks)
    except RegisterDecodeError:
        return
    assert 0 <= state.signalled_current_a <= 1000


# --- REST text -----------------------------------------------------------------------------

_keys = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
_values = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"
    ),
    max_size=30,
).map(str.strip)


@FAST
@given(st.dictionaries(_keys, _values, min_size=1, max_size=12), st.booleans(), st.booleans())
def test_parser_round_trips_any_spacing_and_line_end(
    data: dict[str, str], spaced: bool, crlf: bool
) -> None:
    sep = ": " if spaced else ":"
    end = "\r\n" if crlf else "\n"
    text = end.join(f"{k}{sep}{v}" for k, v in data.items()) + end
    assert parse_full_state(text) == data


@FAST
@given(st.text(max_size=200))
def test_parser_never_raises_anything_else(text: str) -> None:
    try:
        parsed = parse_full_state(text)
    except BenderParseError:
        return
    assert parsed
    with contextlib.suppress(BenderParseError):
        BenderRestState.from_mapping(parsed)


def test_parser_is_by_key_not_by_line_index() -> None:
    text = (FIXTURES / "5.33" / "charging.txt").read_text()
    shuffled = "\n".join(reversed(text.splitlines()))
    assert BenderRestState.from_text(shuffled) == BenderRestState.from_text(text)


def test_single_key_either_format() -> None:
    assert parse_single_key("max_current", "max_current:32\n") == "32"
    assert parse_single_key("max_current", "32") == "32"
    assert parse_single_key("display_text", "display_text: a:b") == "a:b"


@pytest.mark.parametrize(
    "name", ["5.33/idle.txt", "5.33/charging.txt", "5.22/idle.txt", "5.22/charging.txt"]
)
def test_simulator_output_matches_fixture_key_order(name: str) -> None:
    fw = Firmware(name.split("/", maxsplit=1)[0])
    fixture = parse_full_state((FIXTURES / name).read_text())
    ctl = BenderController(VirtualClock(), BenderDeviceConfig(firmware=fw))
    assert list(ctl.full_state()) == list(fixture)


def test_idle_fixture_is_exactly_what_the_simulator_serves() -> None:
    for fw in Firmware:
        ctl = BenderController(VirtualClock(), BenderDeviceConfig(firmware=fw))
        assert render_full_state(ctl.full_state()) == (FIXTURES / fw.value / "idle.txt").read_text()


def test_fixtures_5_22_observed_and_5_33_doc_example() -> None:
    observed = BenderRestState.from_text((FIXTURES / "5.22" / "observed.txt").read_text())
    assert observed.ocpp_state is OcppState.AVAILABLE
    assert observed.max_current_a == 16
    assert observed.rcmb_max == (0.0, 0.0)  # from rcmb_max_values
    assert observed.manuf_serial_n is None
    assert observed.voltage_v is None
    assert observed.firmware_ver == "5.22.1-13295"

    doc = BenderRestState.from_text((FIXTURES / "5.33" / "doc_example_spaced.txt").read_text())
    assert doc.auth_state is AuthState.AUTHORIZED_FOR_CHARGING
    assert doc.cp_state is CpState.C
    assert doc.current_a == Phases(14.0, 14.5, 14.1)
    assert doc.cable_rating_a == 20
    assert doc.errors == ("plug_locking_failed", "rfid_reader_not_communicating")
    assert doc.voltage_v == Phases.uniform(230.0)
    assert doc.slave_state is OcppState.AVAILABLE
    assert doc.rcmb_values == (0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no key:value"),
        ("<html>oops</html>", "not key:value"),
        ("conn_state:no_vehicle_connected\n", "missing keys"),
        (
            "conn_state:teleporting\nauth_state:wait_for_auth\nocpp_state:available\n"
            "type2_state:a\nsig_current:0\n",
            "value set",
        ),
        (
            "conn_state:no_vehicle_connected\nauth_state:wait_for_auth\nocpp_state:available\n"
            "type2_state:a\nsig_current:lots\n",
            "not a number",
        ),
    ],
)
def test_garbage_text_is_rejected_with_reason(text: str, reason: str) -> None:
    with pytest.raises(BenderParseError, match=reason):
        BenderRestState.from_text(text)
