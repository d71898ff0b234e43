"""Read planning: a device's points merged into as few Modbus reads as its limits allow. Pure.

One request per point would cost a round trip each (only one request may be in flight per
connection), so points of the same table that sit close together are read in one request
(STYLE.md 8). ``plan_reads`` works per table, in address order, greedily: a block grows while the
next point starts at most ``max_gap`` unused registers after the block's end and the block stays
within ``max_registers_per_read`` (``max_bits_per_read`` for coils and discrete inputs). Points
that share registers (bits of one status word, or overlapping definitions) share the read.
Reading a few unused registers is far cheaper than another round trip; ``max_gap`` bounds that.
Many devices answer a read that touches an undefined register with exception 2: the poller then
learns the device's map (:mod:`gateway.devices.sparse`) and plans again with ``avoid`` and
``cuts``, so no profile edit is needed (``max_gap = 0`` in the profile saves the first refusal).

A point that alone is longer than the per-read limit cannot be read at all (splitting it would
tear the value across two reads), so ``plan_reads`` raises ``ValueError`` for it; the profile
validator is the better place to catch that, when the profile is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.devices.profile import Table

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from gateway.devices.profile import ModbusPoint, ModbusSettings


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``.

    Attributes:
        table: the Modbus table read.
        start: first address read.
        count: registers (or bits, for coil/discrete tables) read.
        points: the points this read serves, in address order (ties by id).
    """

    table: Table
    start: int
    count: int
    points: tuple[ModbusPoint, ...]

    def words_for(self, point: ModbusPoint, words: Sequence[int]) -> list[int]:
        """The slice of this block's read that holds ``point``.

        Args:
            point: a point inside this block's span.
            words: what the read returned, lowest address first. A bit read may return more
                values than ``count`` (pymodbus pads bits to whole bytes); the extra are ignored.

        Returns:
            ``point.registers`` values, ready for :func:`gateway.devices.codec.decode_point`.

        Raises:
            ValueError: the point is not inside this block, or ``words`` is shorter than the
                block (a short read must not be decoded as if the missing registers were there).
        """
        first = point.address - self.start
        if point.table is not self.table or first < 0 or first + point.registers > self.count:
            msg = (
                f"point {point.id!r} ({point.table.value} {point.address}) is not inside the "
                f"read of {self.table.value} {self.start}..{self.start + self.count - 1}"
            )
            raise ValueError(msg)
        if len(words) < self.count:
            msg = f"read returned {len(words)} values, the block needs {self.count}"
            raise ValueError(msg)
        return list(words[first : first + point.registers])


def _limit(table: Table, settings: ModbusSettings) -> int:
    return settings.max_bits_per_read if table.is_bits else settings.max_registers_per_read


def _blocked(
    table: Table,
    start: int,
    end: int,
    avoid: Mapping[Table, Collection[int]] | None,
    cuts: Mapping[Table, Collection[int]] | None,
) -> bool:
    """Whether a read of ``start..end`` (exclusive) would touch an avoided register or a cut."""
    bad = avoid.get(table, ()) if avoid else ()
    cut = cuts.get(table, ()) if cuts else ()
    return any(a in bad for a in range(start, end)) or any(start < c < end for c in cut)


def plan_reads(
    points: Sequence[ModbusPoint],
    settings: ModbusSettings,
    *,
    avoid: Mapping[Table, Collection[int]] | None = None,
    cuts: Mapping[Table, Collection[int]] | None = None,
) -> list[ReadBlock]:
    """Merge points into read blocks.

    Args:
        points: the points to read (any order; usually those due at one poll tick).
        settings: the device's per-read limits and ``max_gap``.
        avoid: per table, registers a merged read must not read through (learnt from a
            device's refusals, :mod:`gateway.devices.sparse`); a point's own registers are
            read all the same (leave undefined points out of ``points``).
        cuts: per table, addresses ``a`` such that no merged read spans ``a - 1`` and ``a``.

    Returns:
        Blocks in table order (holding, input, coil, discrete), then by start address. Never
        more blocks than points; every point is in exactly one block; no block exceeds the
        table's per-read limit. The same input always gives the same output.

    Raises:
        ValueError: a single point spans more registers than the per-read limit.
    """
    blocks: list[ReadBlock] = []
    for table in Table:
        ordered = sorted((p for p in points if p.table is table), key=lambda p: (p.address, p.id))
        limit = _limit(table, settings)
        group: list[ModbusPoint] = []
        start = end = 0  # end is exclusive
        for p in ordered:
            if p.registers > limit:
                msg = (
                    f"point {p.id!r} spans {p.registers} registers but a read may cover at most "
                    f"{limit}: raise the profile's per-read limit or shorten the point"
                )
                raise ValueError(msg)
            p_end = p.address + p.registers
            if (
                group
                and p.address - end <= settings.max_gap
                and max(end, p_end) - start <= limit
                and not ((avoid or cuts) and _blocked(table, start, max(end, p_end), avoid, cuts))
            ):
                group.append(p)
                end = max(end, p_end)
                continue
            if group:
                blocks.append(ReadBlock(table, start, end - start, tuple(group)))
            group, start, end = [p], p.address, p_end
        if group:
            blocks.append(ReadBlock(table, start, end - start, tuple(group)))
    return blocks
