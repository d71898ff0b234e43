"""What a poller schedules and counts: poll jobs, per-device counters, the schedule arithmetic.

Pure (no I/O, no clock read): the :class:`~gateway.devices.poller.Poller` passes the times in.
The scheduling rules these implement are described in :mod:`gateway.devices.poller`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.devices.codec import BlockDecoder
from gateway.devices.plan import plan_reads
from gateway.devices.sparse import covered_registers

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gateway.devices.plan import ReadBlock
    from gateway.devices.profile import ModbusPoint, ModbusSettings, Table
    from gateway.devices.sparse import DeviceMap

__all__ = [
    "DeviceStats",
    "PollJob",
    "backoff_due",
    "block_decoder",
    "first_due",
    "next_due",
    "snap",
]

_SAMPLES = 512  # jitter samples kept per device: enough for a p99, bounded memory


def snap(t: float, tick_s: float) -> float:
    """``t`` rounded up to the shared grid of ``tick_s`` (unchanged when ``tick_s`` is 0)."""
    # A millionth of a tick of tolerance: float noise must not push a time into the next slot.
    return math.ceil(t / tick_s - 1e-6) * tick_s if tick_s > 0 else t


def first_due(now: float, interval: float, rand: Callable[[], float], tick_s: float = 0.0) -> float:
    """When a job polls first: a random phase inside its first interval, on the tick grid."""
    return snap(now + rand() * interval, tick_s)


def next_due(due: float, interval: float, now: float) -> tuple[float, int]:
    """The next slot on a job's grid after a poll that was due at ``due`` and ended at ``now``.

    Returns:
        ``(next due time, slots skipped)``: the first slot after ``now``; slots that went by
        while the poll ran late are skipped rather than run back to back.
    """
    nxt = due + interval
    if nxt > now:
        return nxt, 0
    skipped = int((now - nxt) // interval) + 1
    return nxt + skipped * interval, skipped


def backoff_due(now: float, interval: float, failures: int, cap_s: float) -> float:
    """When a job that failed ``failures`` times in a row polls again.

    The delay doubles from ``2 * interval`` and is capped at ``cap_s`` (never below
    ``interval``: a slow job is not polled faster because it fails).
    """
    delay = interval * 2.0 ** min(failures, 30)
    return now + min(delay, max(cap_s, interval))


@dataclass(slots=True)
class PollJob:
    """One device's points that share an interval, and where the job stands.

    Attributes:
        device: the device id.
        unit: its Modbus unit id.
        interval: seconds between polls.
        timeout_s: how long each read may take.
        blocks: the reads of one poll.
        settings: the profile's Modbus settings (byte and word order for decoding).
        due: the clock's monotonic time of the next poll.
        failures: polls in a row that failed although connected.
        last_start: start of the previous poll if it stayed on schedule, else None.
        points: every point of the job (default: those of ``blocks``), re-planned from when
            the device's map changes.
        covered: per table, the registers some point of the whole profile covers (default:
            this job's points); a register outside it is a *hole*.
        busy: polls in a row the device answered busy.
    """

    device: str
    unit: int
    interval: float
    timeout_s: float
    blocks: tuple[ReadBlock, ...]
    settings: ModbusSettings
    due: float = 0.0
    failures: int = 0
    last_start: float | None = None
    points: tuple[ModbusPoint, ...] = ()
    covered: Mapping[Table, frozenset[int]] = field(default_factory=dict)
    busy: int = 0
    #: Per block, its decoder: where each point sits in the block's words and how it decodes,
    #: compiled once here rather than worked out on every poll.
    decoders: tuple[BlockDecoder, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Fill the defaults and compile each block's decoder."""
        if not self.points:
            self.points = tuple({p.id: p for b in self.blocks for p in b.points}.values())
        if not self.covered:
            self.covered = covered_registers(self.points)
        self._compile()

    def replan(self, device_map: DeviceMap) -> None:
        """Plan the reads again around what the device was found to refuse."""
        self.blocks = tuple(
            plan_reads(
                device_map.readable(self.points), self.settings,
                avoid=device_map.avoid, cuts=device_map.cuts,
            )
        )  # fmt: skip
        self._compile()

    def _compile(self) -> None:
        for block in self.blocks:
            for point in block.points:
                block.words_for(point, [0] * block.count)  # raises if the plan is inconsistent
        self.decoders = tuple(block_decoder(b, self.settings) for b in self.blocks)


def block_decoder(block: ReadBlock, settings: ModbusSettings) -> BlockDecoder:
    """Where each point of ``block`` sits in its words and how it decodes, compiled once."""
    return BlockDecoder([(p, p.address - block.start) for p in block.points], block.count, settings)


@dataclass(slots=True)
class DeviceStats:
    """Poll counters of one device, exposed as data.

    Attributes:
        polls: polls made.
        failed: polls that read nothing.
        partial: polls that read some blocks but not all.
        skipped: slots skipped because a poll ran more than an interval late.
        decode_errors: points whose words could not be decoded.
        busy_s: time the device's polls held its connection, in total.
        jitter_s: recent poll-interval jitter samples (seconds, late positive).
        refused: reads answered with a Modbus exception.
        split_reads: requests sent to learn a sparse map (after a refusal with exception 2).
        busy: polls cut short by a busy answer (exceptions 5 and 6; not failures).
        faults: polls the device answered with exception 4 (it reports its own failure).
        unreachable: polls a Modbus gateway answered with exception 10 or 11 for the unit.
        answer_s: the slowest recent answer, in seconds (0 before the first).
        timeout_s: the request timeout in use now (adapted to the answers, ``pace``).
        interval_s: the effective time between the starts of two polls on schedule (0 before
            the second); above the configured interval when the device cannot keep up.
    """

    polls: int = 0
    failed: int = 0
    partial: int = 0
    skipped: int = 0
    decode_errors: int = 0
    busy_s: float = 0.0
    jitter_s: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    refused: int = 0
    split_reads: int = 0
    busy: int = 0
    faults: int = 0
    unreachable: int = 0
    answer_s: float = 0.0
    timeout_s: float = 0.0
    interval_s: float = 0.0
