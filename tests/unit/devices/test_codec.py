"""Register codecs (gateway.devices.codec): known vectors, round trips, pymodbus agreement."""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from gateway.devices.codec import BlockDecoder, CodecError, decode_point, encode_point
from gateway.devices.plan import plan_reads
from gateway.devices.profile import ModbusPoint, ModbusSettings, PointType, Profile, load_profiles

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.devices.codec import Value

DEFAULTS = ModbusSettings()
# Each sweep below runs once per type x byte order x word order; 50 examples per combination
# keeps the whole file within a few seconds while hypothesis still reaches the range edges.
SWEEP = settings(max_examples=50)
ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]
INT_RANGES = {
    PointType.U16: (0, 0xFFFF),
    PointType.I16: (-0x8000, 0x7FFF),
    PointType.U32: (0, 0xFFFF_FFFF),
    PointType.I32: (-0x8000_0000, 0x7FFF_FFFF),
}
INTS = list(INT_RANGES)
FLOATS = [PointType.F32, PointType.F64]
NUMERIC = INTS + FLOATS
F32_MAX = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]
DT = ModbusClientMixin.DATATYPE
PYMODBUS_TYPES = {
    PointType.U16: DT.UINT16,
    PointType.I16: DT.INT16,
    PointType.U32: DT.UINT32,
    PointType.I32: DT.INT32,
    PointType.F32: DT.FLOAT32,
    PointType.F64: DT.FLOAT64,
}


def point(
    type_: PointType = PointType.U16,
    orders: tuple[str, str] | None = None,
    **kw: Any,
) -> ModbusPoint:
    byte, word = orders or (None, None)
    fields: dict[str, Any] = {"id": "p", "name": "P", "table": "holding", "address": 0}
    fields |= {"type": type_, "byte_order": byte, "word_order": word, **kw}
    return ModbusPoint.model_validate(fields)


def words_of(p: ModbusPoint) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 0xFFFF), min_size=p.registers, max_size=p.registers)


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- known vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "orders", "value", "words"),
    [
        (PointType.F32, ("big", "big"), 123.456, [0x42F6, 0xE979]),
        (PointType.F32, ("big", "little"), 123.456, [0xE979, 0x42F6]),
        (PointType.F32, ("little", "big"), 123.456, [0xF642, 0x79E9]),
        (PointType.F32, ("little", "little"), 123.456, [0x79E9, 0xF642]),
        (PointType.I16, ("big", "big"), -1, [0xFFFF]),
        (PointType.I16, ("big", "big"), -32768, [0x8000]),
        (PointType.U16, ("big", "big"), 0x1234, [0x1234]),
        (PointType.U16, ("little", "big"), 0x1234, [0x3412]),
        (PointType.U32, ("big", "big"), 0x12345678, [0x1234, 0x5678]),
        (PointType.U32, ("big", "little"), 0x12345678, [0x5678, 0x1234]),
        (PointType.U32, ("little", "little"), 0x12345678, [0x7856, 0x3412]),
        (PointType.I32, ("big", "big"), -2, [0xFFFF, 0xFFFE]),
        (PointType.F64, ("big", "big"), 1.0, [0x3FF0, 0, 0, 0]),
        (PointType.F64, ("big", "little"), 1.0, [0, 0, 0, 0x3FF0]),
        (PointType.F64, ("little", "big"), -2.5, [0x04C0, 0, 0, 0]),
    ],
)
def test_known_vectors(
    type_: PointType, orders: tuple[str, str], value: float, words: list[int]
) -> None:
    p = point(type_, orders)
    assert encode_point(p, value, DEFAULTS) == words
    decoded = decode_point(p, words, DEFAULTS)
    if type_ is PointType.F32:
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value


def test_profile_defaults_apply_when_the_point_names_no_order() -> None:
    cdab = ModbusSettings(word_order="little")
    p = point(PointType.U32)
    assert encode_point(p, 0x12345678, cdab) == [0x5678, 0x1234]
    assert decode_point(p, [0x5678, 0x1234], cdab) == 0x12345678
    # the point's own order wins over the profile's
    assert encode_point(point(PointType.U32, ("big", "big")), 0x12345678, cdab) == [0x1234, 0x5678]


def test_scale_and_offset() -> None:
    temp = point(PointType.I16, scale=0.1)
    assert encode_point(temp, -12.3, DEFAULTS) == [0xFF85]  # raw -123
    assert decode_point(temp, [0xFF85], DEFAULTS) == pytest.approx(-12.3)
    kelvin = point(PointType.U16, scale=0.1, offset=-40)
    assert encode_point(kelvin, 25.0, DEFAULTS) == [650]
    assert decode_point(kelvin, [650], DEFAULTS) == pytest.approx(25.0)
    # round((18.06 - 0) / 0.1) = 181 even though 18.06 / 0.1 is 180.59999999999997
    assert encode_point(point(scale=0.1), 18.06, DEFAULTS) == [181]


def test_decoded_python_types() -> None:
    assert type(decode_point(point(PointType.U16), [7], DEFAULTS)) is int
    assert type(decode_point(point(PointType.U16, scale=2), [7], DEFAULTS)) is float
    assert type(decode_point(point(PointType.U16, offset=1), [7], DEFAULTS)) is float
    assert type(decode_point(point(PointType.F32), [0, 0], DEFAULTS)) is float
    assert type(decode_point(point(PointType.STRING, length=2), [0, 0], DEFAULTS)) is str


def test_integer_rounding_is_half_to_even() -> None:
    # documented: raw = round(...) with Python's rounding, so ties go to the even raw value
    assert encode_point(point(), 2.5, DEFAULTS) == [2]
    assert encode_point(point(), 3.5, DEFAULTS) == [4]
    assert encode_point(point(), 3.4999, DEFAULTS) == [3]


def test_strings() -> None:
    p = point(PointType.STRING, length=3)
    assert encode_point(p, "ABC", DEFAULTS) == [0x4142, 0x4300, 0x0000]
    assert decode_point(p, [0x4142, 0x4300, 0x0000], DEFAULTS) == "ABC"
    swapped = point(PointType.STRING, ("little", "big"), length=2)
    assert encode_point(swapped, "ABC", DEFAULTS) == [0x4241, 0x0043]
    # word order does not reverse a string: the first characters stay at the lowest address
    cdab = point(PointType.STRING, ("big", "little"), length=2)
    assert encode_point(cdab, "ABCD", DEFAULTS) == [0x4142, 0x4344]
    # decoding stops at the first NUL: what follows the terminator is garbage
    assert decode_point(p, [0x4142, 0x0043, 0x4445], DEFAULTS) == "AB"
    # a byte outside ASCII does not stop the poll: it becomes U+FFFD
    assert decode_point(p, [0x41FF, 0, 0], DEFAULTS) == "A\ufffd"
    assert encode_point(p, "", DEFAULTS) == [0, 0, 0]


def test_bits() -> None:
    coil = point(PointType.BIT, table="coil")
    assert encode_point(coil, value=True, settings=DEFAULTS) == [1]
    assert encode_point(coil, 0, DEFAULTS) == [0]
    assert encode_point(coil, 1.0, DEFAULTS) == [1]
    assert decode_point(coil, [True], DEFAULTS) is True
    assert decode_point(point(PointType.BIT, table="discrete"), [0], DEFAULTS) is False
    b3 = point(PointType.BIT, bit=3)
    assert decode_point(b3, [0b1000], DEFAULTS) is True
    assert decode_point(point(PointType.BIT, bit=2), [0b1000], DEFAULTS) is False
    # byte order applies before the bit is taken: bit 3 of 0x0008 arrives as 0x0800
    assert decode_point(point(PointType.BIT, ("little", "big"), bit=3), [0x0800], DEFAULTS) is True
    assert decode_point(point(PointType.BIT, bit=15), [0x8000], DEFAULTS) is True


@pytest.mark.parametrize(
    ("p", "value", "words"),
    [
        (point(PointType.U16), 70_000, None),
        (point(PointType.U16), -1, None),
        (point(PointType.I16), 32_768, None),
        (point(PointType.U32), 2**32, None),
        (point(PointType.I32), -(2**31) - 1, None),
        (point(PointType.U16, scale=0.1), 6553.6, None),  # raw 65536
        (point(PointType.U16), math.nan, None),
        (point(PointType.I32), math.inf, None),
        (point(PointType.U16), True, None),
        (point(PointType.F32), "1.0", None),
        (point(PointType.F32), 1e39, None),
        (point(PointType.F32), -1e39, None),
        (point(PointType.STRING, length=1), "é", None),
        (point(PointType.STRING, length=1), "ABC", None),
        (point(PointType.STRING, length=2), "A\0B", None),
        (point(PointType.STRING, length=2), 12, None),
        (point(PointType.BIT, table="coil"), 2, None),
        (point(PointType.BIT, table="coil"), "on", None),
        (point(PointType.BIT, bit=4), True, None),  # needs a read-modify-write
        (point(PointType.U32), None, [1]),  # wrong word count
        (point(PointType.U16), None, [0x10000]),  # not a 16-bit word
        (point(PointType.U16), None, [-1]),
    ],
)
def test_codec_errors(p: ModbusPoint, value: Any, words: list[int] | None) -> None:
    def call() -> object:
        if words is None:
            return encode_point(p, value, DEFAULTS)
        return decode_point(p, words, DEFAULTS)

    with pytest.raises(CodecError) as err:
        call()
    assert err.value.point == "p"
    assert isinstance(err.value, ValueError)


def test_float_specials_are_encoded_as_ieee() -> None:
    f32 = point(PointType.F32)
    assert encode_point(f32, math.inf, DEFAULTS) == [0x7F80, 0]
    assert encode_point(f32, -math.inf, DEFAULTS) == [0xFF80, 0]
    assert math.isnan(decode_point(f32, encode_point(f32, math.nan, DEFAULTS), DEFAULTS))  # type: ignore[arg-type]
    assert decode_point(f32, [0x7F80, 0], DEFAULTS) == math.inf
    assert encode_point(f32, F32_MAX, DEFAULTS) == [0x7F7F, 0xFFFF]


# --- round trips, for every type x byte order x word order ------------------------------------


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("type_", INTS)
@SWEEP
@given(data=st.data())
def test_integer_round_trip_is_exact(
    type_: PointType, orders: tuple[str, str], data: st.DataObject
) -> None:
    p = point(type_, orders)
    value = data.draw(st.integers(*INT_RANGES[type_]))
    words = encode_point(p, value, DEFAULTS)
    assert len(words) == p.registers
    assert all(0 <= w <= 0xFFFF for w in words)
    decoded = decode_point(p, words, DEFAULTS)
    assert decoded == value
    assert type(decoded) is int


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("type_", INTS)
@SWEEP
@given(data=st.data())
def test_scaled_integer_round_trip_is_within_resolution(
    type_: PointType, orders: tuple[str, str], data: st.DataObject
) -> None:
    scale = data.draw(st.sampled_from([0.1, 0.01, 0.5, 2.0, -0.1, 10.0]))
    offset = data.draw(st.sampled_from([0.0, -40.0, 273.15]))
    p = point(type_, orders, scale=scale, offset=offset)
    raw = data.draw(st.integers(*INT_RANGES[type_]))
    # anywhere within half a step of a representable value
    value = (raw + data.draw(st.floats(-0.49, 0.49))) * scale + offset
    decoded = decode_point(p, encode_point(p, value, DEFAULTS), DEFAULTS)
    assert isinstance(decoded, float)
    assert abs(decoded - value) <= abs(scale) / 2 + 1e-9 * max(abs(value), 1.0)


@pytest.mark.parametrize("orders", ORDERS)
@SWEEP
@given(value=st.floats())
def test_f64_round_trip_is_exact(orders: tuple[str, str], value: float) -> None:
    p = point(PointType.F64, orders)
    assert same_float(decode_point(p, encode_point(p, value, DEFAULTS), DEFAULTS), value)  # type: ignore[arg-type]


@pytest.mark.parametrize("orders", ORDERS)
@SWEEP
@given(value=st.floats(-F32_MAX, F32_MAX) | st.sampled_from([math.inf, -math.inf, math.nan]))
def test_f32_round_trip_is_within_f32_precision(orders: tuple[str, str], value: float) -> None:
    p = point(PointType.F32, orders)
    decoded = decode_point(p, encode_point(p, value, DEFAULTS), DEFAULTS)
    assert isinstance(decoded, float)
    if not math.isfinite(value):
        assert same_float(decoded, value)
    elif abs(value) >= 2**-126:  # normal f32: half an ulp of 24 bits
        assert math.isclose(decoded, value, rel_tol=2**-24)
    else:  # subnormal f32: absolute precision of 2**-149
        assert abs(decoded - value) <= 2**-150


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("type_", FLOATS)
@SWEEP
@given(data=st.data())
def test_scaled_float_round_trip(
    type_: PointType, orders: tuple[str, str], data: st.DataObject
) -> None:
    scale = data.draw(st.sampled_from([0.1, 0.5, -2.0, 1e-3]))
    offset = data.draw(st.sampled_from([0.0, -40.0, 273.15]))
    p = point(type_, orders, scale=scale, offset=offset)
    value = data.draw(st.floats(-1e6, 1e6))
    decoded = decode_point(p, encode_point(p, value, DEFAULTS), DEFAULTS)
    assert isinstance(decoded, float)
    precision = 2**-23 if type_ is PointType.F32 else 2**-51
    assert abs(decoded - value) <= abs(value - offset) * precision + 1e-9 * (abs(offset) + 1)


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("length", [1, 3, 8])
@SWEEP
@given(data=st.data())
def test_string_round_trip_is_exact(
    length: int, orders: tuple[str, str], data: st.DataObject
) -> None:
    p = point(PointType.STRING, orders, length=length)
    ascii_no_nul = st.characters(codec="ascii", exclude_characters="\0")
    text = data.draw(st.text(ascii_no_nul, max_size=2 * length))
    words = encode_point(p, text, DEFAULTS)
    assert len(words) == length
    assert decode_point(p, words, DEFAULTS) == text


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("table", ["coil", "discrete"])
@SWEEP
@given(value=st.booleans())
def test_bit_table_round_trip(orders: tuple[str, str], table: str, value: bool) -> None:
    p = point(PointType.BIT, orders, table=table)
    assert decode_point(p, encode_point(p, value, DEFAULTS), DEFAULTS) is value


@pytest.mark.parametrize("orders", ORDERS)
@SWEEP
@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_register_bit_is_that_bit_of_the_u16(orders: tuple[str, str], word: int, bit: int) -> None:
    as_u16 = decode_point(point(PointType.U16, orders), [word], DEFAULTS)
    assert isinstance(as_u16, int)
    got = decode_point(point(PointType.BIT, orders, bit=bit), [word], DEFAULTS)
    assert got is bool(as_u16 >> bit & 1)


# --- decode never raises for words of the right count -----------------------------------------


@pytest.mark.parametrize("orders", ORDERS)
@pytest.mark.parametrize("type_", NUMERIC)
@SWEEP
@given(data=st.data())
def test_decode_any_words_and_reencode(
    type_: PointType, orders: tuple[str, str], data: st.DataObject
) -> None:
    p = point(type_, orders)
    words = data.draw(words_of(p))
    value = decode_point(p, words, DEFAULTS)
    assert isinstance(value, int if type_ in INTS else float)
    if not (isinstance(value, float) and math.isnan(value)):  # NaN payload bits are not kept
        assert encode_point(p, value, DEFAULTS) == words


@pytest.mark.parametrize("orders", ORDERS)
@SWEEP
@given(data=st.data())
def test_decode_any_words_of_a_string(orders: tuple[str, str], data: st.DataObject) -> None:
    p = point(PointType.STRING, orders, length=data.draw(st.integers(1, 8)))
    value = decode_point(p, data.draw(words_of(p)), DEFAULTS)
    assert isinstance(value, str)
    assert "\0" not in value
    assert all(c.isascii() or c == "\ufffd" for c in value)


# --- agreement with pymodbus (what device makers using pymodbus produce) -----------------------


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("type_", NUMERIC)
@SWEEP
@given(data=st.data())
def test_agrees_with_pymodbus(type_: PointType, word_order: str, data: st.DataObject) -> None:
    # pymodbus has no byte swap: its registers are always big-endian inside
    p = point(type_, ("big", word_order))
    words = data.draw(words_of(p))
    theirs = ModbusClientMixin.convert_from_registers(
        words,
        PYMODBUS_TYPES[type_],
        word_order=word_order,  # type: ignore[arg-type]
    )
    ours = decode_point(p, words, DEFAULTS)
    assert isinstance(theirs, (int, float))
    assert same_float(ours, theirs)  # type: ignore[arg-type]
    if not (isinstance(ours, float) and math.isnan(ours)):
        assert encode_point(p, ours, DEFAULTS) == ModbusClientMixin.convert_to_registers(
            theirs,
            PYMODBUS_TYPES[type_],
            word_order=word_order,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(("type_", "value"), [(PointType.F32, 123.456), (PointType.I32, -70_000)])
def test_known_vectors_match_pymodbus(type_: PointType, value: float) -> None:
    for word_order in ("big", "little"):
        ours = encode_point(point(type_, ("big", word_order)), value, DEFAULTS)
        theirs = ModbusClientMixin.convert_to_registers(
            value, PYMODBUS_TYPES[type_], word_order=word_order
        )
        assert ours == theirs


@given(text=st.text(st.characters(codec="ascii", exclude_characters="\0"), max_size=16))
def test_strings_agree_with_pymodbus_in_big_word_order(text: str) -> None:
    p = point(PointType.STRING, ("big", "big"), length=8)
    ours = encode_point(p, text, DEFAULTS)
    theirs = ModbusClientMixin.convert_to_registers(text, DT.STRING)
    # pymodbus pads to a whole register only; we pad to the point's length with NULs
    assert ours == theirs + [0] * (8 - len(theirs))
    assert decode_point(p, ours, DEFAULTS) == ModbusClientMixin.convert_from_registers(
        ours, DT.STRING
    )


# --- the shipped profiles -------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile", [p for p in load_profiles().values() if p.points], ids=lambda p: p.profile.id
)
def test_every_shipped_write_range_is_encodable(profile: Profile) -> None:
    # a write range whose ends do not fit the register would make every write at the edge fail
    for p in profile.points:
        if p.write is None:
            continue
        for value in (p.write.min, p.write.max):
            words = encode_point(p, value, profile.settings)
            back = decode_point(p, words, profile.settings)
            assert isinstance(back, (int, float))
            assert back == pytest.approx(value, rel=1e-6, abs=abs(p.scale) / 2), p.id


# --- whole reads at once (BlockDecoder) against decode_point point by point --------------------

ALL_TYPES = [*NUMERIC, PointType.BIT, PointType.STRING]
ORDER_OR_DEFAULT = st.sampled_from([None, "big", "little"])


@st.composite
def register_points(draw: st.DrawFn, type_: PointType | None = None) -> ModbusPoint:
    t = type_ or draw(st.sampled_from(ALL_TYPES))
    kw: dict[str, Any] = {"id": f"p{draw(st.integers(0, 10**6))}", "name": "P"}
    kw |= {
        "table": draw(st.sampled_from(["holding", "input"])),
        "address": draw(st.integers(0, 12)),
    }
    kw |= {"type": t, "byte_order": draw(ORDER_OR_DEFAULT), "word_order": draw(ORDER_OR_DEFAULT)}
    if t is PointType.BIT:
        kw["bit"] = draw(st.integers(0, 15))
    elif t is PointType.STRING:
        kw["length"] = draw(st.integers(1, 4))
    elif draw(st.booleans()):
        kw["scale"] = draw(st.sampled_from([0.1, 0.01, -2.0, 10.0, 1.0]))
        kw["offset"] = draw(st.sampled_from([0.0, -40.0, 273.15]))
    return ModbusPoint.model_validate(kw)


def per_point(
    points: Sequence[tuple[ModbusPoint, int]], words: Sequence[int], s: ModbusSettings
) -> tuple[dict[str, Value], list[str]]:
    values: dict[str, Value] = {}
    failed = []
    for p, first in points:
        try:
            values[p.id] = decode_point(p, words[first : first + p.registers], s)
        except CodecError:
            failed.append(p.id)
    return values, failed


def assert_same(got: dict[str, Value], want: dict[str, Value]) -> None:
    assert list(got) == list(want)  # same points, reported in the same order
    for key, value in want.items():
        assert type(got[key]) is type(value), key
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key])  # type: ignore[arg-type]
        else:
            assert got[key] == value, key


def block_of(points: list[ModbusPoint]) -> tuple[list[tuple[ModbusPoint, int]], int]:
    # as plan_reads lays a block out: address order, ties by id; the read spans them all
    ordered = sorted({p.id: p for p in points}.values(), key=lambda p: (p.address, p.id))
    start = min(p.address for p in ordered)
    count = max(p.address + p.registers for p in ordered) - start
    return [(p, p.address - start) for p in ordered], count


@pytest.mark.parametrize("orders", [(None, None), *ORDERS])
@pytest.mark.parametrize("type_", ALL_TYPES)
@SWEEP
@given(data=st.data())
def test_block_decoder_equals_decode_point_for_every_type_and_order(
    type_: PointType, orders: tuple[str | None, str | None], data: st.DataObject
) -> None:
    # several points of one type and order, at random (often overlapping) addresses, and the
    # profile's default orders drawn too
    defaults = ModbusSettings(byte_order=data.draw(st.sampled_from(["big", "little"])),
                              word_order=data.draw(st.sampled_from(["big", "little"])))  # fmt: skip
    drawn = data.draw(st.lists(register_points(type_), min_size=1, max_size=6))
    fixed = [p.model_copy(update={"byte_order": orders[0], "word_order": orders[1]}) for p in drawn]
    points, count = block_of(fixed)
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count))
    got: dict[str, Value] = {}
    assert BlockDecoder(points, count, defaults).decode_into(words, got) == ()
    assert_same(got, per_point(points, words, defaults)[0])


@SWEEP
@given(data=st.data())
def test_block_decoder_equals_decode_point_for_mixed_blocks(data: st.DataObject) -> None:
    defaults = ModbusSettings(byte_order=data.draw(st.sampled_from(["big", "little"])),
                              word_order=data.draw(st.sampled_from(["big", "little"])))  # fmt: skip
    points, count = block_of(data.draw(st.lists(register_points(), min_size=1, max_size=12)))
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count + 3))
    got: dict[str, Value] = {}
    assert BlockDecoder(points, count, defaults).decode_into(words, got) == ()
    assert_same(got, per_point(points, words, defaults)[0])


@SWEEP
@given(data=st.data())
def test_block_decoder_fails_exactly_the_points_decode_point_fails(data: st.DataObject) -> None:
    points, count = block_of(data.draw(st.lists(register_points(), min_size=1, max_size=8)))
    word = st.integers(0, 0xFFFF) | st.sampled_from([-1, 0x10000, 2**40])
    words = data.draw(st.lists(word, min_size=0, max_size=count + 2))
    got: dict[str, Value] = {}
    errors = BlockDecoder(points, count, DEFAULTS).decode_into(words, got)
    want, failed = per_point(points, words, DEFAULTS)
    assert_same(got, want)
    assert [e.point for e in errors] == failed


@pytest.mark.parametrize("table", ["coil", "discrete"])
@SWEEP
@given(data=st.data())
def test_block_decoder_equals_decode_point_for_bit_tables(table: str, data: st.DataObject) -> None:
    addresses = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=10, unique=True))
    drawn = [point(PointType.BIT, id=f"b{a}", table=table, address=a) for a in addresses]
    points, count = block_of(drawn)
    bits = st.booleans() | st.integers(0, 1)
    words = data.draw(st.lists(bits, min_size=count - 1, max_size=count + 7))  # padded, or short
    got: dict[str, Value] = {}
    errors = BlockDecoder(points, count, DEFAULTS).decode_into(words, got)
    want, failed = per_point(points, words, DEFAULTS)
    assert_same(got, want)
    assert [e.point for e in errors] == failed


@pytest.mark.parametrize(
    "profile", [p for p in load_profiles().values() if p.points], ids=lambda p: p.profile.id
)
@settings(max_examples=25)
@given(data=st.data())
def test_block_decoder_agrees_on_every_shipped_profile(
    profile: Profile, data: st.DataObject
) -> None:
    s = profile.settings
    for block in plan_reads(profile.points, s):
        points = [(p, p.address - block.start) for p in block.points]
        words = data.draw(
            st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count)
        )
        got: dict[str, Value] = {}
        assert BlockDecoder(points, block.count, s).decode_into(words, got) == ()
        assert_same(got, per_point(points, words, s)[0])
