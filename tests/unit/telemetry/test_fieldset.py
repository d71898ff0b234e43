"""The history's field sets read back as the values written (``gateway telemetry query``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.telemetry.lineproto import SeriesPrefix, parse_field_set

# No backslash in keys: InfluxDB itself reads one as escaping the next character, so no writer
# can carry it (lineproto's docstring); the gateway's point ids never hold one.
KEYS = st.text(min_size=1, max_size=12).filter(lambda k: "\\" not in k)
VALUES = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6))
def test_a_field_set_reads_back_as_written(values: dict[str, object]) -> None:
    text = SeriesPrefix("m", {}).fields(values)  # type: ignore[arg-type]
    assert text is not None
    back = parse_field_set(text)
    assert back == values
    for k, v in values.items():
        assert type(back[k]) is type(v)  # 3 stays an int, 3.0 a float, True a bool


def test_nan_and_infinity_are_left_out() -> None:
    assert SeriesPrefix("m", {}).fields({"a": math.nan, "b": 1.0}) == "b=1.0"
    assert SeriesPrefix("m", {}).fields({"a": math.inf}) is None


@pytest.mark.parametrize("bad", ["a", "a=1,", 'a="x', "a=1 b=2"])
def test_what_is_not_a_field_set_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_field_set(bad)
