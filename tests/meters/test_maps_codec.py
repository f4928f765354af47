"""Meter register maps as data: every built-in map loads, and decode(encode(x)) == x per entry."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuseguard.wire.meters import (
    MapEntry,
    MeterMap,
    MeterMapError,
    Quantity,
    builtin_map,
    builtin_map_names,
    decode_entry,
    encode_entry,
    encode_missing,
    load_map_file,
)
from fuseguard.wire.modbus import NumberType, WordOrder, decode_number, encode_number

BUILTIN = ("abb_b23", "em24", "em340", "sdm630", "umg604")
ALL_ENTRIES = [(name, i) for name in BUILTIN for i in range(len(builtin_map(name).entries))]
#: entries with a "not available" encoding: every float (NaN) and integers with declared markers
MARKED_ENTRIES = [
    (name, i)
    for name, i in ALL_ENTRIES
    if builtin_map(name).entries[i].type.is_float or builtin_map(name).entries[i].not_available
]


def test_the_five_models_ship() -> None:
    assert builtin_map_names() == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_map_is_complete_and_blocks_cover_every_entry(name: str) -> None:
    m = builtin_map(name)
    for phase in ("L1", "L2", "L3"):
        assert m.entry(Quantity.CURRENT_A, phase) is not None
        assert m.entry(Quantity.ACTIVE_POWER_W, phase) is not None
        assert m.entry(Quantity.VOLTAGE_V, phase) is not None
    for q in (Quantity.FREQUENCY_HZ, Quantity.ENERGY_IMPORT_WH, Quantity.ENERGY_EXPORT_WH):
        assert m.entry(q) is not None
    blocks = m.blocks()
    assert all(b.count <= m.max_block for b in blocks)
    for e in m.entries:
        assert any(
            b.function_code == m.fc_of(e) and b.start <= e.address and e.address + e.count <= b.stop
            for b in blocks
        ), e


def _raw_range(entry: MapEntry) -> tuple[int, int]:
    lo, hi = entry.type.int_range
    b_lo, b_hi = entry.quantity.bounds
    s = abs(entry.scale)
    return max(lo, math.ceil(b_lo / s)), min(hi, math.floor(b_hi / s))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize(("name", "index"), ALL_ENTRIES)
def test_decode_encode_round_trip(name: str, index: int, data: st.DataObject) -> None:
    m = builtin_map(name)
    entry = m.entries[index]
    if entry.type.is_float:
        lo, hi = (_f32(0.999 * b / entry.scale) for b in entry.quantity.bounds)
        f = data.draw(st.floats(min(lo, hi), max(lo, hi), width=32))
        x = f * entry.scale
    else:
        lo, hi = _raw_range(entry)
        raw = data.draw(st.integers(lo, hi).filter(lambda r: r not in entry.not_available))
        x = raw * entry.scale
    words = encode_entry(m, entry, x)
    assert len(words) == entry.count
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_entry(m, entry, words) == x


def _f32(x: float) -> float:
    return float(decode_number(encode_number(x, NumberType.FLOAT32), NumberType.FLOAT32))


@pytest.mark.parametrize(("name", "index"), MARKED_ENTRIES)
def test_not_available_decodes_as_missing(name: str, index: int) -> None:
    m = builtin_map(name)
    entry = m.entries[index]
    words = encode_missing(m, entry)
    value = decode_entry(m, entry, words)
    if entry.type.is_float:
        assert value is not None and math.isnan(value)  # refused later by the finite check
    else:
        assert value is None


def test_entries_without_a_marker_cannot_encode_missing() -> None:
    em24 = builtin_map("em24")
    with pytest.raises(ValueError, match="no 'not available' marker"):
        encode_missing(em24, em24.entries[0])


def test_word_order_and_scale_are_applied() -> None:
    em24 = builtin_map("em24")
    current = em24.entry(Quantity.CURRENT_A, "L1")
    assert current is not None
    # 12.345 A = 12345 mA = 0x00003039, LSW first
    assert encode_entry(em24, current, 12.345) == [0x3039, 0x0000]
    assert decode_entry(em24, current, [0x3039, 0x0000]) == pytest.approx(12.345)
    abb = builtin_map("abb_b23")
    power = abb.entry(Quantity.ACTIVE_POWER_W, "L1")
    assert power is not None
    assert encode_entry(abb, power, -1.5) == [0xFFFF, 0xFF6A]  # -150, high word first
    sdm = builtin_map("sdm630")
    energy = sdm.entry(Quantity.ENERGY_IMPORT_WH)
    assert energy is not None
    assert encode_entry(sdm, energy, 1500.0) == encode_number(1.5, NumberType.FLOAT32)


@given(
    kind=st.sampled_from(list(NumberType)),
    order=st.sampled_from(list(WordOrder)),
    data=st.data(),
)
def test_number_codec_round_trip(kind: NumberType, order: WordOrder, data: st.DataObject) -> None:
    if kind.is_float:
        value: float = data.draw(st.floats(width=32, allow_nan=False))
    else:
        value = data.draw(st.integers(*kind.int_range))
    words = encode_number(value, kind, order)
    assert len(words) == kind.register_count
    assert decode_number(words, kind, order) == value


def test_out_of_range_integer_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_number(70000, NumberType.U16)
    with pytest.raises(ValueError, match="does not fit"):
        encode_number(-1, NumberType.U32)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mine.toml"
    p.write_text(text)
    return p


def test_a_user_map_file_loads(tmp_path: Path) -> None:
    source = (Path(__file__).parents[2] / "src/fuseguard/wire/meters/maps/sdm630.toml").read_text()
    m = load_map_file(_write(tmp_path, source.replace('name = "sdm630"', 'name = "my-meter"')))
    assert isinstance(m, MeterMap)
    assert m.name == "my-meter"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('unit = "A"', 'unit = "mA"', 1), "current_a is in A"),
        (('phase = "L3"\naddress = 0x000A', "address = 0x000A", 1), "needs a phase"),
        (("address = 0x0008", "address = 0x0007", 1), "overlap"),
        (("function_code = 4", "function_code = 5", 1), "function_code"),
        (('type = "float32"', 'type = "float16"', 1), "type"),
    ],
)
def test_invalid_maps_name_the_problem(
    tmp_path: Path, edit: tuple[str, str, int], message: str
) -> None:
    source = (Path(__file__).parents[2] / "src/fuseguard/wire/meters/maps/sdm630.toml").read_text()
    old, new, count = edit
    assert old in source
    with pytest.raises(MeterMapError, match=message) as err:
        load_map_file(_write(tmp_path, source.replace(old, new, count)))
    assert "mine.toml" in str(err.value)


def test_missing_phase_power_is_refused(tmp_path: Path) -> None:
    source = (Path(__file__).parents[2] / "src/fuseguard/wire/meters/maps/sdm630.toml").read_text()
    cut = source.replace(
        'quantity = "active_power_w"\nphase = "L2"', 'quantity = "active_power_w"', 1
    )
    with pytest.raises(MeterMapError, match=r"mapped twice|missing: active_power_w L2"):
        load_map_file(_write(tmp_path, cut))


def test_unknown_model_and_file() -> None:
    with pytest.raises(MeterMapError, match="unknown meter model 'sdm999'"):
        builtin_map("sdm999")
    with pytest.raises(MeterMapError, match="cannot read"):
        load_map_file(Path("/nonexistent/x.toml"))
