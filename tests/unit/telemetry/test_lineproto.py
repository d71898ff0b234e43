"""Line protocol (gateway.telemetry.lineproto): influxdb-client agreement, parse-back, examples.

influxdb-client's ``Point.to_line_protocol()`` is the oracle. Where the module deliberately
differs from it (its docstring lists each difference), the tests below apply that difference to
the client's output explicitly, so any other disagreement fails.
"""

from __future__ import annotations

import ast
import math
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from gateway.telemetry import lineproto
from gateway.telemetry.lineproto import SeriesPrefix, escape_key, escape_measurement, field_value

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devices.codec import Value

TS = 1_733_333_333_123_456_789
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Everything line protocol escapes or quotes, the comment sign, and some non-ASCII, drawn often;
# any other character (no surrogates: they cannot be sent as UTF-8) now and then.
_SPECIAL = st.sampled_from(' ,="\\\n\t\r#_éß€🍭')
_CHARS = st.one_of(_SPECIAL, st.characters(exclude_categories=("Cs",)))
TEXTS = st.text(_CHARS, max_size=8)
KEYS = st.text(_CHARS, min_size=1, max_size=8)
# A measurement starting with '#' is refused (test_a_comment_measurement_is_refused).
MEASUREMENTS = KEYS.filter(lambda t: not t.startswith("#"))
VALUES = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(),  # NaN, +/-inf, -0.0, subnormals and the largest floats included
    TEXTS,
)
TAGS = st.dictionaries(TEXTS, TEXTS, max_size=4)  # empty keys and values included
FIELDS = st.dictionaries(KEYS, VALUES, max_size=5)
TIMESTAMPS = st.integers(INT64_MIN + 2, INT64_MAX - 1)  # InfluxDB's timestamp range


# --- influxdb-client, through its public API only --------------------------------------------


def client_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, Value], ts: int = TS
) -> str:
    point = Point(measurement)
    for tag_key, tag_value in tags.items():
        point.tag(tag_key, tag_value)
    for field_key, value in fields.items():
        point.field(field_key, value)
    return str(point.time(ts, WritePrecision.NS).to_line_protocol())


def _between(text: str, head: str, tail: str) -> str:
    assert text.startswith(head), (text, head)
    assert text.endswith(tail), (text, tail)
    return text[len(head) : len(text) - len(tail)]


def client_measurement(name: str) -> str:
    return _between(client_line(name, {}, {"f": True}), "", f" f=true {TS}")


def client_key(key: str) -> str:
    return _between(client_line("m", {}, {key: True}), "m ", f"=true {TS}")


def client_tag_value(value: str) -> str:
    return _between(client_line("m", {"t": value}, {"f": True}), "m,t=", f" f=true {TS}")


def client_field_value(value: Value) -> str | None:
    line = client_line("m", {}, {"f": value})
    return None if line == "" else _between(line, "m f=", f" {TS}")


# --- the documented differences, applied to what the client writes ---------------------------


def with_trailing_space(escaped: str) -> str:
    """A name ending with a backslash gets a space after it (the client does it for tag values)."""
    return escaped + " " if escaped.endswith("\\") else escaped


def ours_from_client(value: Value) -> str | None:
    """A field value as this module writes it, from the client's text of it."""
    text = client_field_value(value)
    # The client writes str(float) with a trailing ".0" cut off; this module keeps repr() whole.
    if text is not None and type(value) is float and repr(value).endswith(".0"):
        return text + ".0"
    return text


# --- a test-only parser, reading escapes as InfluxDB 2 does ----------------------------------
# A separator is escaped when a backslash precedes it; only backslash + comma, equals sign or space
# (just comma or space in a measurement) turn back into the character; any other backslash is
# literal. In a string field value, backslash + backslash or double quote is the second character.


def _next(line: str, start: int, separators: str) -> int:
    """Index of the first separator at or after ``start`` that no backslash precedes."""
    for i in range(start, len(line)):
        if line[i] in separators and (i == 0 or line[i - 1] != "\\"):
            return i
    return len(line)


def _unescape(token: str, escaped: str) -> str:
    for char in escaped:
        token = token.replace("\\" + char, char)
    return token


def _number_or_bool(token: str) -> Value:
    if token in {"true", "false"}:
        return token == "true"
    if token.endswith("i"):
        return int(token[:-1])
    return float(token)


def _string(line: str, start: int) -> tuple[str, int]:
    """The string field value whose opening quote is at ``start``, and the index after it."""
    chars: list[str] = []
    i = start + 1
    while line[i] != '"':
        if line[i] == "\\" and line[i + 1] in '\\"':
            i += 1
        chars.append(line[i])
        i += 1
    return "".join(chars), i + 1


def parse(line: str) -> tuple[str, list[tuple[str, str]], list[tuple[str, Value]], int]:
    """Measurement, tags, fields and timestamp of one line; AssertionError if it is malformed."""
    end = _next(line, 0, ", ")
    measurement = _unescape(line[:end], ", ")
    tags = []
    i = end
    while line[i] == ",":
        eq = _next(line, i + 1, ",= ")
        assert line[eq] == "=", f"tag key without value: {line!r}"
        end = _next(line, eq + 1, ",= ")
        assert line[end] in ", ", f"unescaped '=' in a tag value: {line!r}"
        tag_key, tag_value = line[i + 1 : eq], line[eq + 1 : end]
        assert tag_key, f"empty tag key: {line!r}"
        assert tag_value, f"empty tag value: {line!r}"
        tags.append((_unescape(tag_key, ",= "), _unescape(tag_value, ",= ")))
        i = end
    assert line[i] == " "
    fields: list[tuple[str, Value]] = []
    while line[i] != " " or not fields:
        eq = _next(line, i + 1, ",= ")
        assert line[eq] == "=", f"field key without value: {line!r}"
        assert eq > i + 1, f"empty field key: {line!r}"
        key = _unescape(line[i + 1 : eq], ",= ")
        value: Value
        if line[eq + 1] == '"':
            value, i = _string(line, eq + 1)
        else:
            i = _next(line, eq + 1, ", ")
            value = _number_or_bool(line[eq + 1 : i])
        fields.append((key, value))
        assert line[i] in ", ", f"field value not followed by ',' or ' ': {line!r}"
    ts = line[i + 1 :]
    assert ts.lstrip("-").isdigit(), f"bad timestamp: {line!r}"
    return measurement, tags, fields, int(ts)


_CONTROL = str.maketrans({"\n": r"\n", "\t": r"\t", "\r": r"\r"})


def stored(text: str) -> str:
    """What InfluxDB keeps of a measurement, key or tag value (the module docstring's two cases).

    Newline, tab and carriage return arrive as the two characters they were written as, and a
    trailing backslash arrives as a space. Any other text arrives exactly as it was.
    """
    kept = text.translate(_CONTROL)
    return kept[:-1] + " " if kept.endswith("\\") else kept


def _typed(fields: list[tuple[str, Value]]) -> list[tuple[str, str, str]]:
    # repr tells -0.0 from 0.0 and True from 1, which == does not.
    return [(key, type(value).__name__, repr(value)) for key, value in fields]


def _writable(value: Value) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


# --- properties --------------------------------------------------------------------------------


@given(KEYS)
def test_escaping_is_influxdb_clients(text: str) -> None:
    assert escape_key(text) == client_tag_value(text)  # a trailing backslash included
    assert escape_key(text) == with_trailing_space(client_key(text))
    if not text.startswith("#"):  # the client warns about those
        assert escape_measurement(text) == with_trailing_space(client_measurement(text))


@given(VALUES)
def test_field_values_are_influxdb_clients(value: Value) -> None:
    assert field_value(value) == ours_from_client(value)
    if field_value(value) is None:
        assert isinstance(value, float)
        assert not math.isfinite(value)


@given(MEASUREMENTS, TAGS, FIELDS, TIMESTAMPS)
def test_lines_are_influxdb_clients(
    measurement: str, tags: dict[str, str], fields: dict[str, Value], ts: int
) -> None:
    series = SeriesPrefix(measurement, tags)

    # The line assembled from the client's own pieces, with the documented differences: tags
    # sorted by escaped key, fields in the mapping's order, None when no field is written.
    pairs = sorted(
        (with_trailing_space(client_key(k)), client_tag_value(v))
        for k, v in tags.items()
        if k and v
    )
    prefix = with_trailing_space(client_measurement(measurement))
    prefix += "".join(f",{k}={v}" for k, v in pairs)
    written = [
        f"{with_trailing_space(client_key(k))}={text}"
        for k, v in fields.items()
        if (text := ours_from_client(v)) is not None
    ]
    assert series.text == prefix
    assert series.line(fields, ts) == (f"{prefix} {','.join(written)} {ts}" if written else None)

    # Where no documented difference applies, byte for byte what the client writes.
    names = [measurement, *(k for k, v in tags.items() if k and v), *fields]
    kept = sorted((k, v) for k, v in tags.items() if k and v)  # the client's order: raw keys
    raw_order = [(escape_key(k), escape_key(v)) for k, v in kept]
    if (
        written
        and not any(name.endswith("\\") for name in names)
        and not any(type(v) is float and repr(v).endswith(".0") for v in fields.values())
        and raw_order == pairs
    ):
        in_client_order = dict(sorted(fields.items()))
        assert series.line(in_client_order, ts) == client_line(measurement, tags, fields, ts)


@given(MEASUREMENTS, TAGS, FIELDS, TIMESTAMPS)
def test_lines_parse_back(
    measurement: str, tags: dict[str, str], fields: dict[str, Value], ts: int
) -> None:
    line = SeriesPrefix(measurement, tags).line(fields, ts)
    written = [(key, value) for key, value in fields.items() if _writable(value)]
    if not written:
        assert line is None
        return
    assert line is not None
    got_measurement, got_tags, got_fields, got_ts = parse(line)
    assert got_measurement == stored(measurement)
    assert sorted(got_tags) == sorted((stored(k), stored(v)) for k, v in tags.items() if k and v)
    assert _typed(got_fields) == _typed([(stored(k), v) for k, v in written])
    assert got_ts == ts
    # A raw newline only ever sits inside a quoted string field.
    assert line.count("\n") == sum(v.count("\n") for _, v in written if isinstance(v, str))


# --- examples ----------------------------------------------------------------------------------


def test_a_series_prefix_is_the_escaped_measurement_and_sorted_tags() -> None:
    series = SeriesPrefix("fridge", {"site": "trattoria", "device": "fridge-1"})
    assert series.text == "fridge,device=fridge-1,site=trattoria"
    assert series.line({"temp_c": 3.5}, TS) == f"{series.text} temp_c=3.5 {TS}"


def test_tags_are_sorted_by_key() -> None:
    tags = {"station": "grill", "site": "trattoria", "location": "back", "device": "f1"}
    text = SeriesPrefix("fridge", tags).text
    assert text == "fridge,device=f1,location=back,site=trattoria,station=grill"


def test_tags_are_sorted_by_escaped_key_where_the_client_sorts_raw_keys() -> None:
    tags = {"a b": "1", "a!": "2"}  # ' ' < '!' raw, but the escaped '\ ' sorts after '!'
    assert SeriesPrefix("m", tags).text == r"m,a!=2,a\ b=1"
    assert client_line("m", tags, {"f": True}) == rf"m,a\ b=1,a!=2 f=true {TS}"


def test_an_empty_tag_is_left_out() -> None:
    assert SeriesPrefix("fridge", {"site": "x", "station": "", "": "y"}).text == "fridge,site=x"
    assert client_line("fridge", {"site": "x", "station": "", "": "y"}, {"f": 1}).startswith(
        "fridge,site=x f="
    )


def test_integers_and_floats_are_told_apart() -> None:
    assert field_value(3) == "3i"
    assert field_value(3.0) == "3.0"
    assert client_field_value(3.0) == "3"  # the client cuts ".0"; still a float to InfluxDB
    assert field_value(-0.0) == "-0.0"
    assert field_value(1e16) == "1e+16"
    assert field_value(5e-324) == "5e-324"
    assert field_value(0.1) == "0.1"
    assert field_value(INT64_MIN) == "-9223372036854775808i"


@pytest.mark.parametrize(("value", "text"), [(True, "true"), (False, "false")])
def test_booleans_are_true_and_false_not_integers(value: bool, text: str) -> None:
    assert field_value(value) == text
    assert SeriesPrefix("m", {}).line({"on": value, "n": 1}, TS) == f"m on={text},n=1i {TS}"


def test_subclasses_are_written_as_their_base_type() -> None:
    class Mode(IntEnum):
        COOL = 2

    class Celsius(float):
        pass

    class Name(str):
        __slots__ = ()

    fields: dict[str, Value] = {"mode": Mode.COOL, "t": Celsius(4.0), "name": Name('a"b')}
    assert SeriesPrefix("m", {}).line(fields, TS) == f'm mode=2i,t=4.0,name="a\\"b" {TS}'


def test_strings_escape_quotes_and_backslashes() -> None:
    assert field_value('say "hi" \\ now') == r'"say \"hi\" \\ now"'
    assert field_value("") == '""'
    assert field_value("a,b=c d") == '"a,b=c d"'  # nothing else needs escaping in quotes


def test_a_nan_field_is_left_out() -> None:
    line = SeriesPrefix("fridge", {}).line({"t": 3.5, "probe": math.nan, "x": -math.inf}, TS)
    assert line == f"fridge t=3.5 {TS}"


def test_a_line_with_no_writable_field_is_none() -> None:
    series = SeriesPrefix("fridge", {"site": "x"})
    assert series.line({"a": math.nan, "b": math.inf}, TS) is None
    assert series.line({}, TS) is None
    assert client_line("fridge", {"site": "x"}, {"a": math.nan}) == ""  # the client: ""


def test_fields_keep_the_mappings_order() -> None:
    assert SeriesPrefix("m", {}).line({"b": 1, "a": 2}, TS) == f"m b=1i,a=2i {TS}"
    assert client_line("m", {}, {"b": 1, "a": 2}) == f"m a=2i,b=1i {TS}"  # the client sorts


def test_specials_are_escaped() -> None:
    series = SeriesPrefix("walk in,fridge=1", {"site name": "a,b=c"})
    assert series.text == r"walk\ in\,fridge=1,site\ name=a\,b\=c"
    line = series.line({"temp c": 1.5, "k\n": "x\ny"}, TS)
    assert line == f'{series.text} temp\\ c=1.5,k\\n="x\ny" {TS}'


def test_a_trailing_backslash_gets_a_space_everywhere_not_only_in_tag_values() -> None:
    line = SeriesPrefix("m\\", {"k\\": "v\\"}).line({"f\\": 1}, TS)
    assert line == f"m\\ ,k\\ =v\\  f\\ =1i {TS}"
    assert parse(line) == ("m ", [("k ", "v ")], [("f ", 1)], TS)
    # The client does it for the tag value only: InfluxDB would read its measurement as
    # 'm,k\=v ' (the tags swallowed) and find no '=' in its field.
    assert client_line("m\\", {"k\\": "v\\"}, {"f\\": 1}) == f"m\\,k\\=v\\  f\\=1i {TS}"


def test_a_comment_measurement_is_refused() -> None:
    with pytest.raises(ValueError, match="comment"):
        SeriesPrefix("#fridge", {})
    with pytest.warns(SyntaxWarning, match="comment"):  # the client warns, then writes it
        assert client_line("#fridge", {}, {"f": 1}) == f"#fridge f=1i {TS}"


def test_an_empty_measurement_or_field_key_is_refused() -> None:
    with pytest.raises(ValueError, match="measurement"):
        SeriesPrefix("", {})
    with pytest.raises(ValueError, match="empty key"):
        SeriesPrefix("m", {}).line({"": 1}, TS)


def test_escaped_field_keys_are_cached_up_to_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.telemetry.lineproto._MAX_CACHED_KEYS", 3)
    series = SeriesPrefix("m", {})
    for n in range(10):
        assert series.line({f"k {n}": n}, TS) == f"m k\\ {n}={n}i {TS}"
    assert series._keys == {"k 0": r"k\ 0=", "k 1": r"k\ 1=", "k 2": r"k\ 2="}
    assert series.line({"k 0": 0, "k 9": 9}, TS) == f"m k\\ 0=0i,k\\ 9=9i {TS}"


def test_the_module_needs_no_influxdb_client() -> None:
    source = Path(lineproto.__file__).read_text(encoding="utf-8")
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name.split(".")[0] == "influxdb_client"}
