"""Sparse register maps: what a device refuses to read, learnt from its refusals. Pure, no I/O.

Most controllers define only some addresses and answer a read that touches any other one with
exception 2 (illegal data address), so a read merged across a gap (``max_gap``) is refused as a
whole and none of its points is read. The device layer does not make the profile author guess:

* :class:`Probe` takes a refused block and says what to read next, at once, in the same poll:
  first the block split at its *holes* (registers no point of the profile covers), then, for a
  part that is refused although it has no hole, the part bisected by *atoms* (points that share
  registers stay together) until a single atom is refused: its points are undefined on this
  device. When both halves of a bisected part read, the device refuses only their union (a
  length limit, say): a *cut* is learnt between them.
* :class:`DeviceMap` keeps what was learnt: registers never to read (holes of refused reads and
  the registers of undefined points), cuts no read may cross, and the undefined points with the
  exception that showed it. ``plan_reads(..., avoid=, cuts=)`` plans with it, so the next polls
  (and the next start, from the state directory) send only reads the device takes.

Bounds (``tests/unit/devices/test_sparse.py`` checks them with hypothesis): every point the
device defines is still read; no read sent after the probe spans a register learnt undefined;
a probe of a block of ``n`` atoms sends at most ``2n - 1`` requests (a tree whose leaves are
atoms), and each probe learns at least one new fact, so re-planning converges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.devices.plan import ReadBlock
from gateway.devices.profile import Table

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from gateway.devices.profile import ModbusPoint

__all__ = ["DeviceMap", "Probe", "atoms", "covered_registers", "holes", "ranges"]


def ranges(addresses: Iterable[int]) -> str:
    """Addresses as people read them: ``2..9, 12``."""
    out: list[str] = []
    run: list[int] = []
    for a in sorted(set(addresses)):
        if run and a == run[-1] + 1:
            run.append(a)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}")
        run = [a]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}")
    return ", ".join(out)


def covered_registers(points: Iterable[ModbusPoint]) -> dict[Table, frozenset[int]]:
    """Per table, every register (or bit) some point covers."""
    out: dict[Table, set[int]] = {t: set() for t in Table}
    for p in points:
        out[p.table].update(range(p.address, p.address + p.registers))
    return {t: frozenset(s) for t, s in out.items()}


def holes(block: ReadBlock, covered: frozenset[int]) -> list[int]:
    """Registers of ``block`` that no point of the profile covers (``covered``), in order."""
    return [a for a in range(block.start, block.start + block.count) if a not in covered]


def atoms(points: Sequence[ModbusPoint]) -> list[tuple[ModbusPoint, ...]]:
    """Points grouped so that points sharing a register are in one group, in address order."""
    ordered = sorted(points, key=lambda p: (p.address, p.id))
    groups: list[list[ModbusPoint]] = []
    end = -1
    for p in ordered:
        if groups and p.address < end:
            groups[-1].append(p)
            end = max(end, p.address + p.registers)
        else:
            groups.append([p])
            end = p.address + p.registers
    return [tuple(g) for g in groups]


def _block(table: Table, points: Sequence[ModbusPoint]) -> ReadBlock:
    start = min(p.address for p in points)
    end = max(p.address + p.registers for p in points)
    ordered = tuple(sorted(points, key=lambda p: (p.address, p.id)))
    return ReadBlock(table, start, end - start, ordered)


@dataclass(slots=True)
class DeviceMap:
    """What one device was found to refuse.

    Attributes:
        avoid: per table, registers no read may include (holes of refused reads, registers
            of undefined points).
        cuts: per table, addresses ``a`` such that no read may include both ``a - 1`` and ``a``.
        undefined: point id -> the exception code that showed the device lacks it (2: no such
            address; 1: the device does not support that table's function).
        revision: counts what was learnt (so a caller sees a change without comparing maps).
    """

    avoid: dict[Table, set[int]] = field(default_factory=dict)
    cuts: dict[Table, set[int]] = field(default_factory=dict)
    undefined: dict[str, int] = field(default_factory=dict)
    revision: int = field(default=0, compare=False)

    def __bool__(self) -> bool:
        """Whether anything was learnt."""
        return bool(self.undefined or any(self.avoid.values()) or any(self.cuts.values()))

    def add_avoid(self, table: Table, addresses: Iterable[int]) -> bool:
        """Learn registers never to read; True when any is new."""
        have = self.avoid.setdefault(table, set())
        before = len(have)
        have.update(addresses)
        new = len(have) > before
        self.revision += new
        return new

    def add_cut(self, table: Table, address: int) -> bool:
        """Learn that no read may cross from ``address - 1`` to ``address``; True when new."""
        have = self.cuts.setdefault(table, set())
        if address in have:
            return False
        have.add(address)
        self.revision += 1
        return True

    def add_undefined(self, points: Iterable[ModbusPoint], code: int) -> list[str]:
        """Learn points the device lacks (their registers are avoided too); the new ids."""
        new = []
        for p in points:
            if p.id not in self.undefined:
                self.undefined[p.id] = code
                new.append(p.id)
                self.revision += 1
            self.add_avoid(p.table, range(p.address, p.address + p.registers))
        return new

    def readable(self, points: Iterable[ModbusPoint]) -> list[ModbusPoint]:
        """The points not known to be undefined."""
        return [p for p in points if p.id not in self.undefined]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (sorted, so the file is stable)."""
        return {
            "avoid": {t.value: sorted(s) for t, s in sorted(self.avoid.items()) if s},
            "cuts": {t.value: sorted(s) for t, s in sorted(self.cuts.items()) if s},
            "undefined": dict(sorted(self.undefined.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceMap:
        """The inverse of :meth:`to_json`.

        Raises:
            ValueError: the data is not in that form (a corrupt file).
            TypeError: likewise.
            KeyError: likewise.
        """
        m = cls()
        for t, addresses in dict(data.get("avoid", {})).items():
            m.add_avoid(Table(t), (int(a) for a in addresses))
        for t, addresses in dict(data.get("cuts", {})).items():
            for a in addresses:
                m.add_cut(Table(t), int(a))
        for pid, code in dict(data.get("undefined", {})).items():
            m.undefined[str(pid)] = int(code)
        return m


@dataclass(slots=True)
class _Node:
    block: ReadBlock
    parent: _Node | None
    cut_at: int | None = None  # set on a bisected node: the start of its second half
    pending: int = 0
    children_ok: bool = True


class Probe:
    """Reads to try, one at a time, after ``block`` was refused with exception 2 (or 3).

    Sans I/O: the caller asks :meth:`next` for a block, reads it, and reports with
    :meth:`answered` or :meth:`refused`, until :meth:`next` returns None. Any other error
    ends the probe early; what was learnt so far stays true.

    Attributes:
        read: the blocks that were read, with their words, in the order read.
        undefined: points found undefined by this probe.
        learnt: whether the map gained anything.
        requests: requests asked for (the refused block itself not counted).
    """

    def __init__(self, block: ReadBlock, covered: frozenset[int], device_map: DeviceMap) -> None:
        """Start from a refused ``block``; ``covered`` is its table's registers with points."""
        self._covered = covered
        self._map = device_map
        self.read: list[tuple[ReadBlock, list[int]]] = []
        self.undefined: list[ModbusPoint] = []
        self.learnt = False
        self.requests = 0
        self._stack: list[_Node] = []
        self._current: _Node | None = None
        self._expand(_Node(block, None))

    def next(self) -> ReadBlock | None:
        """The next block to read, or None when the probe is done."""
        if not self._stack:
            self._current = None
            return None
        self._current = self._stack.pop()
        self.requests += 1
        return self._current.block

    def answered(self, words: list[int]) -> None:
        """The block from :meth:`next` was read."""
        node = self._take()
        self.read.append((node.block, words))
        self._done(node, ok=True)

    def refused(self) -> None:
        """The block from :meth:`next` was refused with exception 2 (or 3)."""
        self._expand(self._take())

    def _take(self) -> _Node:
        node, self._current = self._current, None
        if node is None:
            raise RuntimeError("no block is being read: call next() first")
        return node

    def _expand(self, node: _Node) -> None:
        """``node``'s block was refused: learn, and queue what to read instead."""
        b = node.block
        gaps = holes(b, self._covered)
        if gaps:
            self.learnt |= self._map.add_avoid(b.table, gaps)
            gap_set = set(gaps)
            parts: list[list[ModbusPoint]] = []
            for group in atoms(b.points):
                first = group[0].address
                # Start a new part when a hole separates this atom from the previous part.
                if parts and not any(a in gap_set for a in range(_end(parts[-1]), first)):
                    parts[-1].extend(group)
                else:
                    parts.append(list(group))
            children = [_block(b.table, p) for p in parts]
        else:
            groups = atoms(b.points)
            if len(groups) == 1:
                new = self._map.add_undefined(b.points, 2)
                self.learnt |= bool(new)
                self.undefined += [p for p in b.points if p.id in new]
                self._done(node, ok=False)
                return
            half = len(groups) // 2
            left = [p for g in groups[:half] for p in g]
            right = [p for g in groups[half:] for p in g]
            children = [_block(b.table, left), _block(b.table, right)]
            node.cut_at = children[1].start
        node.pending = len(children)
        kids = [_Node(c, node) for c in children]
        self._stack += reversed(kids)  # lowest address first

    def _done(self, node: _Node, *, ok: bool) -> None:
        parent = node.parent
        if parent is None:
            return
        parent.children_ok &= ok
        parent.pending -= 1
        if parent.pending:
            return
        if parent.cut_at is not None and parent.children_ok:
            # Both halves read, their union did not: the device limits the span, not the map.
            self.learnt |= self._map.add_cut(parent.block.table, parent.cut_at)
        self._done(parent, ok=False)


def _end(points: Sequence[ModbusPoint]) -> int:
    return max(p.address + p.registers for p in points)
