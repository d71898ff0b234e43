"""Read planning (gateway.devices.plan): merging rules and properties of any plan."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.plan import ReadBlock, plan_reads
from gateway.devices.profile import (
    ModbusPoint,
    ModbusSettings,
    PointType,
    Profile,
    Table,
    load_profiles,
)

if TYPE_CHECKING:
    import random


def pt(
    pid: str, address: int, type_: str = "u16", table: str = "holding", **kw: Any
) -> ModbusPoint:
    fields = {"id": pid, "name": pid, "table": table, "address": address, "type": type_}
    return ModbusPoint.model_validate(fields | kw)


def spans(blocks: list[ReadBlock]) -> list[tuple[str, int, int, list[str]]]:
    return [(b.table.value, b.start, b.count, [p.id for p in b.points]) for b in blocks]


def test_nothing_to_read() -> None:
    assert plan_reads([], ModbusSettings()) == []


def test_neighbours_merge_and_a_long_gap_splits() -> None:
    s = ModbusSettings(max_gap=2)
    points = [pt("a", 0), pt("b", 1, "f32"), pt("c", 5), pt("d", 9)]
    # b ends at 3; c at 5 leaves a gap of 2 (merged); d at 9 leaves 3 (new read)
    assert spans(plan_reads(points, s)) == [
        ("holding", 0, 6, ["a", "b", "c"]),
        ("holding", 9, 1, ["d"]),
    ]


def test_zero_gap_still_merges_adjacent_points() -> None:
    s = ModbusSettings(max_gap=0)
    assert spans(plan_reads([pt("a", 0), pt("b", 1), pt("c", 3)], s)) == [
        ("holding", 0, 2, ["a", "b"]),
        ("holding", 3, 1, ["c"]),
    ]


def test_the_per_read_limit_splits() -> None:
    s = ModbusSettings(max_registers_per_read=4, max_gap=10)
    points = [pt("a", 0, "f32"), pt("b", 2), pt("c", 3, "f32"), pt("d", 5)]
    assert spans(plan_reads(points, s)) == [
        ("holding", 0, 3, ["a", "b"]),  # adding c would need 5 registers
        ("holding", 3, 3, ["c", "d"]),
    ]


def test_bits_of_one_register_share_it() -> None:
    points = [pt("b3", 7, "bit", bit=3), pt("b0", 7, "bit", bit=0), pt("w", 7)]
    assert spans(plan_reads(points, ModbusSettings())) == [("holding", 7, 1, ["b0", "b3", "w"])]


def test_tables_are_read_separately_in_a_fixed_order() -> None:
    points = [
        pt("d", 0, "bit", "discrete"),
        pt("c", 0, "bit", "coil"),
        pt("i", 0, "u16", "input"),
        pt("h", 0),
    ]
    assert [b.table for b in plan_reads(points, ModbusSettings())] == list(Table)


def test_bit_tables_use_the_bit_limit() -> None:
    s = ModbusSettings(max_registers_per_read=1, max_bits_per_read=3, max_gap=5)
    points = [pt(f"c{i}", i, "bit", "coil") for i in range(5)]
    assert spans(plan_reads(points, s)) == [
        ("coil", 0, 3, ["c0", "c1", "c2"]),
        ("coil", 3, 2, ["c3", "c4"]),
    ]


def test_a_point_longer_than_a_read_is_refused() -> None:
    s = ModbusSettings(max_registers_per_read=8)
    with pytest.raises(ValueError, match=r"'serial' spans 10 registers .* at most 8"):
        plan_reads([pt("serial", 0, "string", length=10)], s)


def test_words_for_slices_the_read() -> None:
    a, b = pt("a", 10), pt("b", 12, "u32")
    (block,) = plan_reads([a, b], ModbusSettings())
    read = [100, 101, 102, 103]
    assert block.words_for(a, read) == [100]
    assert block.words_for(b, read) == [102, 103]


def test_words_for_refuses_foreign_points_and_short_reads() -> None:
    a = pt("a", 10, "u32")
    (block,) = plan_reads([a], ModbusSettings())
    with pytest.raises(ValueError, match="not inside"):
        block.words_for(pt("x", 11, "u32"), [1, 2])  # runs past the block
    with pytest.raises(ValueError, match="not inside"):
        block.words_for(pt("x", 10, "u16", "input"), [1, 2])  # other table
    with pytest.raises(ValueError, match="returned 1 values"):
        block.words_for(a, [1])


def test_words_for_ignores_bit_padding() -> None:
    # pymodbus returns coils padded to whole bytes
    c = pt("c", 2, "bit", "coil")
    (block,) = plan_reads([pt("c0", 0, "bit", "coil"), c], ModbusSettings())
    assert block.words_for(c, [False, False, True, False, False, False, False, False]) == [True]


# --- properties of any plan ---------------------------------------------------------------------


@st.composite
def points_and_settings(draw: st.DrawFn) -> tuple[list[ModbusPoint], ModbusSettings]:
    settings = ModbusSettings(
        # mostly large enough for every point, sometimes not (the refusal is a property too)
        max_registers_per_read=draw(st.integers(6, 20) | st.integers(1, 20)),
        max_bits_per_read=draw(st.integers(1, 20)),
        max_gap=draw(st.integers(0, 6)),
    )
    points = []
    for i in range(draw(st.integers(0, 25))):
        table = draw(st.sampled_from(list(Table)))
        address = draw(st.integers(0, 60))
        if table.is_bits:
            p = pt(f"p{i}", address, "bit", table.value)
        else:
            type_ = draw(st.sampled_from(list(PointType)))
            extra: dict[str, Any] = {}
            if type_ is PointType.BIT:
                extra["bit"] = draw(st.integers(0, 15))
            if type_ is PointType.STRING:
                extra["length"] = draw(st.integers(1, 6))
            p = pt(f"p{i}", address, type_.value, table.value, **extra)
        points.append(p)
    return points, settings


def limit(table: Table, s: ModbusSettings) -> int:
    return s.max_bits_per_read if table.is_bits else s.max_registers_per_read


@given(points_and_settings(), st.randoms(use_true_random=False))
def test_plan_properties(
    case: tuple[list[ModbusPoint], ModbusSettings], rnd: random.Random
) -> None:
    points, s = case
    if any(p.registers > limit(p.table, s) for p in points):
        with pytest.raises(ValueError, match="at most"):
            plan_reads(points, s)
        return
    blocks = plan_reads(points, s)

    # every point is read by exactly one block, which covers all of its registers
    served = [p.id for b in blocks for p in b.points]
    assert sorted(served) == sorted(p.id for p in points)
    for b in blocks:
        assert 1 <= b.count <= limit(b.table, s)
        for p in b.points:
            assert p.table is b.table
            assert b.start <= p.address
            assert p.address + p.registers <= b.start + b.count
        # the block starts and ends on a point: no register is read for nothing at its edges
        assert b.start == min(p.address for p in b.points)
        assert b.start + b.count == max(p.address + p.registers for p in b.points)
    assert len(blocks) <= len(points)

    # blocks come in table order, then by address; inside a block no gap exceeds max_gap
    order = list(Table)
    keys = [(order.index(b.table), b.start) for b in blocks]
    assert keys == sorted(keys)
    for b in blocks:
        end = b.start
        for p in sorted(b.points, key=lambda p: p.address):
            assert p.address - end <= s.max_gap
            end = max(end, p.address + p.registers)

    # greedy: a block was closed only because the next point was too far or would not fit
    for b1, b2 in itertools.pairwise(blocks):
        if b1.table is b2.table:
            first = b2.points[0]
            end = b1.start + b1.count
            too_far = first.address - end > s.max_gap
            too_big = max(end, first.address + first.registers) - b1.start > limit(b1.table, s)
            assert too_far or too_big

    # deterministic, whatever order the points come in
    shuffled = list(points)
    rnd.shuffle(shuffled)
    assert plan_reads(shuffled, s) == blocks


@given(points_and_settings())
def test_words_for_returns_each_points_registers(
    case: tuple[list[ModbusPoint], ModbusSettings],
) -> None:
    points, s = case
    if any(p.registers > limit(p.table, s) for p in points):
        return
    # every register of every table holds a different value, so a wrong slice cannot pass
    memory = {t: [1000 * i + a for a in range(80)] for i, t in enumerate(Table)}
    for b in plan_reads(points, s):
        read = memory[b.table][b.start : b.start + b.count]
        for p in b.points:
            assert b.words_for(p, read) == memory[p.table][p.address : p.address + p.registers]


@pytest.mark.parametrize(
    "profile", [p for p in load_profiles().values() if p.points], ids=lambda p: p.profile.id
)
def test_every_shipped_profile_plans_at_most_one_read_per_point(profile: Profile) -> None:
    blocks = plan_reads(profile.points, profile.settings)
    assert sum(len(b.points) for b in blocks) == len(profile.points)
    assert len(blocks) <= len(profile.points)
