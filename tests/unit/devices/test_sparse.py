"""Sparse register maps (gateway.devices.sparse): probing a refused read, learning the map, and
planning around it, checked against simulated devices with hypothesis; the exception policy."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices.plan import ReadBlock, plan_reads
from gateway.devices.profile import ModbusPoint, ModbusSettings, Table
from gateway.devices.refusals import Policy, policy
from gateway.devices.sparse import DeviceMap, Probe, atoms, covered_registers, holes, ranges


def pt(pid: str, address: int, **kw: Any) -> ModbusPoint:
    fields = {"id": pid, "name": pid, "table": "holding", "address": address} | kw
    return ModbusPoint.model_validate(fields)


class Device:
    """A controller that defines only ``defined`` registers and reads at most ``limit``."""

    def __init__(self, defined: set[int], limit: int = 125) -> None:
        self.defined = defined
        self.limit = limit
        self.requests: list[ReadBlock] = []

    def takes(self, block: ReadBlock) -> bool:
        self.requests.append(block)
        span = range(block.start, block.start + block.count)
        return block.count <= self.limit and all(a in self.defined for a in span)


def poll(
    points: list[ModbusPoint], s: ModbusSettings, device: Device, m: DeviceMap
) -> tuple[set[str], int, bool]:
    """One poll as the poller makes it: (points read, requests of the probes, refused?)."""
    read: set[str] = set()
    probe_requests = 0
    refused = False
    covered = covered_registers(points)[Table.HOLDING]
    for block in plan_reads(m.readable(points), s, avoid=m.avoid, cuts=m.cuts):
        if device.takes(block):
            read |= {p.id for p in block.points}
            continue
        refused = True
        probe = Probe(block, covered, m)
        n_atoms = len(atoms(block.points))
        while (part := probe.next()) is not None:
            if device.takes(part):
                probe.answered([0] * part.count)
            else:
                probe.refused()
        assert probe.requests <= 2 * n_atoms - 1, (probe.requests, n_atoms)
        probe_requests += probe.requests
        read |= {p.id for b, _ in probe.read for p in b.points}
    return read, probe_requests, refused


@st.composite
def devices(draw: st.DrawFn) -> tuple[list[ModbusPoint], ModbusSettings, Device, set[str]]:
    n = draw(st.integers(1, 14))
    points: list[ModbusPoint] = []
    for i in range(n):
        address = draw(st.integers(0, 80))
        kind = draw(st.sampled_from(["u16", "u32", "bit"]))
        if kind == "bit":
            points.append(pt(f"p{i}", address, type="bit", bit=draw(st.integers(0, 15))))
        else:
            points.append(pt(f"p{i}", address, type=kind))
    groups = atoms(points)
    lacking = draw(st.sets(st.integers(0, len(groups) - 1), max_size=len(groups)))
    defined: set[int] = set()
    undefined_ids: set[str] = set()
    for k, group in enumerate(groups):
        regs = {a for p in group for a in range(p.address, p.address + p.registers)}
        if k in lacking:
            undefined_ids |= {p.id for p in group}
        else:
            defined |= regs
    # Some holes the device defines after all (readable, though no point uses them).
    covered = covered_registers(points)[Table.HOLDING]
    extra = draw(st.sets(st.integers(0, 90), max_size=20))
    defined |= {a for a in extra if a not in covered}
    for k in lacking:
        defined -= {a for p in groups[k] for a in range(p.address, p.address + p.registers)}
    s = ModbusSettings(
        max_gap=draw(st.integers(0, 12)), max_registers_per_read=draw(st.integers(4, 40))
    )
    limit = draw(st.one_of(st.just(125), st.integers(4, 40)))
    return points, s, Device(defined, limit), undefined_ids


@settings(max_examples=300, deadline=None)
@given(devices())
def test_learning_reads_every_defined_point_and_converges(
    case: tuple[list[ModbusPoint], ModbusSettings, Device, set[str]],
) -> None:
    points, s, device, undefined_ids = case
    # A point longer than what the device reads at once can never be read: not this test's.
    readable_ids = {
        p.id for p in points if p.id not in undefined_ids and p.registers <= device.limit
    }
    # Points sharing registers with an undefined one are in the same atom: lost with it.
    m = DeviceMap()
    n_atoms = len(atoms(points))
    first, _, _ = poll(points, s, device, m)
    assert readable_ids <= first  # the very first poll reads every defined point
    assert not (first & undefined_ids)
    # Each poll with a refusal learns something new: at most one per atom and hole.
    for _ in range(n_atoms + 100):
        read, _, refused = poll(points, s, device, m)
        assert readable_ids <= read
        if not refused:
            break
    else:
        raise AssertionError("never converged")
    # Converged: no read spans a register learnt undefined, and none is refused.
    before = len(device.requests)
    read, requests, refused = poll(points, s, device, m)
    assert not refused
    assert requests == 0
    for block in device.requests[before:]:
        span = set(range(block.start, block.start + block.count))
        assert not span & set(m.avoid.get(Table.HOLDING, ())), block
    assert set(m.undefined) <= undefined_ids | {p.id for p in points if p.registers > device.limit}
    # And what was learnt survives a round trip through its file form.
    assert DeviceMap.from_json(m.to_json()) == m


def test_the_fryer_case_a_merge_across_eight_undefined_registers() -> None:
    points = [pt("a", 0), pt("b", 1), pt("c", 10), pt("d", 11)]
    s = ModbusSettings(max_gap=8)
    (block,) = plan_reads(points, s)
    assert (block.start, block.count) == (0, 12)
    covered = covered_registers(points)[Table.HOLDING]
    assert holes(block, covered) == list(range(2, 10))
    m = DeviceMap()
    probe = Probe(block, covered, m)
    asked = []
    while (part := probe.next()) is not None:
        asked.append((part.start, part.count))
        probe.answered([0] * part.count)
    assert asked == [(0, 2), (10, 2)]  # split at the hole, lowest first: two requests
    assert m.avoid == {Table.HOLDING: set(range(2, 10))}
    assert not m.undefined
    assert [(b.start, b.count) for b in plan_reads(points, s, avoid=m.avoid)] == [(0, 2), (10, 2)]


def test_a_point_the_device_lacks_is_found_by_bisection_and_named() -> None:
    points = [pt(f"r{a}", a) for a in range(100, 108)]
    (block,) = plan_reads(points, ModbusSettings())
    m = DeviceMap()
    probe = Probe(block, covered_registers(points)[Table.HOLDING], m)
    while (part := probe.next()) is not None:
        if part.start <= 105 < part.start + part.count:
            probe.refused()
        else:
            probe.answered([0] * part.count)
    assert [p.id for p in probe.undefined] == ["r105"]
    assert m.undefined == {"r105": 2}
    assert m.avoid == {Table.HOLDING: {105}}
    assert probe.requests <= 2 * 8 - 1
    read = {p.id for b, _ in probe.read for p in b.points}
    assert read == {p.id for p in points} - {"r105"}
    replanned = plan_reads(m.readable(points), ModbusSettings(), avoid=m.avoid)
    assert [(b.start, b.count) for b in replanned] == [(100, 5), (106, 2)]


def test_a_device_that_reads_each_half_but_not_both_learns_a_cut() -> None:
    points = [pt(f"r{a}", a) for a in range(4)]
    (block,) = plan_reads(points, ModbusSettings())
    m = DeviceMap()
    probe = Probe(block, covered_registers(points)[Table.HOLDING], m)
    while (part := probe.next()) is not None:
        if part.count > 2:
            probe.refused()
        else:
            probe.answered([0] * part.count)
    assert m.cuts == {Table.HOLDING: {2}}
    assert not m.undefined
    assert [(b.start, b.count) for b in plan_reads(points, ModbusSettings(), cuts=m.cuts)] == [
        (0, 2), (2, 2),
    ]  # fmt: skip


def test_bits_of_one_register_stay_together() -> None:
    points = [pt("b0", 5, type="bit", bit=0), pt("b1", 5, type="bit", bit=1), pt("x", 6)]
    assert [[p.id for p in g] for g in atoms(points)] == [["b0", "b1"], ["x"]]


def test_ranges_are_written_as_people_read_them() -> None:
    assert ranges([9, 2, 3, 4, 5, 12]) == "2..5, 9, 12"
    assert ranges([]) == ""


def test_each_exception_code_has_its_policy() -> None:
    assert policy(1) is Policy.UNSUPPORTED
    assert policy(2) is Policy.SPLIT
    assert policy(3) is Policy.SPLIT  # on a read: a span the device does not take
    assert policy(4) is Policy.FAULTY
    assert policy(5) is policy(6) is Policy.BUSY
    assert policy(10) is policy(11) is Policy.UNREACHABLE
    assert policy(8) is Policy.OTHER
    assert policy(99) is Policy.OTHER
