"""What every fault detector shares: the point it watches, when its rule applies, its signals.

Pure (STYLE.md 12): no I/O, no clock. Every call is handed ``mono`` (monotonic seconds, which
decide) and ``at`` (wall time, which only stamps what is said); see
:mod:`gateway.telemetry.signals`. The detectors themselves are in
:mod:`gateway.telemetry.detectors` (limits, silence, stuck values) and
:mod:`gateway.telemetry.baselines` (trends, recoveries and anomalies, which learn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from gateway.contract import DeviceState
    from gateway.devices.codec import Value
    from gateway.devices.rules import Rule

__all__ = ["Detector", "Gate", "Held", "PointInfo", "number", "span"]


@dataclass(frozen=True, slots=True)
class PointInfo:
    """What a detector needs to know about the point it watches.

    Attributes:
        name: the point's name for people ("Cabinet air temperature").
        unit: its unit ("°C"), may be empty.
        stale_s: a reading older than this says nothing about now (a few poll intervals): a
            longer gap breaks a hold or a window instead of being bridged.
    """

    name: str
    unit: str
    stale_s: float


def number(value: Value | None) -> float | None:
    """A reading as a float (a bit as 0.0 / 1.0); None for text, a missing or a NaN value."""
    if value is None or isinstance(value, str):
        return None
    x = float(value)
    return None if math.isnan(x) else x


def span(seconds: float) -> str:
    """A duration for people: ``45 s``, ``12 min``, ``2 h 05 min``."""
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    m = round(s / 60)
    if m < 120:
        return f"{m} min"
    return f"{m // 60} h {m % 60:02d} min"


class Held:
    """How long a condition has held, in monotonic seconds (a hold or a clear timer)."""

    def __init__(self) -> None:
        """Not holding."""
        self.since: float | None = None

    def update(self, holds: bool, mono: float) -> float:
        """Record whether the condition holds at ``mono``: how long it has, or -1 if it does not."""
        if not holds:
            self.since = None
            return -1.0
        if self.since is None:
            self.since = mono
        return mono - self.since

    def reset(self) -> None:
        """Start again."""
        self.since = None


class Gate:
    """When a point rule is judged: ``when`` its conditions hold and it is not suppressed.

    Suppression: while any ``suppress_when`` bit is set, and ``suppress_grace_s`` after the last
    reading that had one set, the rule is suppressed; but once one stretch of suppression has
    lasted ``suppress_max_s`` it stops suppressing until the bits have been clear for the grace
    (a defrost ends; a door propped open for an hour is a fault in itself).
    """

    def __init__(self, rule: Rule) -> None:
        """Take the conditions and the suppression from ``rule``."""
        self._when = getattr(rule, "when", ())
        self._bits: tuple[str, ...] = getattr(rule, "suppress_when", ())
        self._grace = float(getattr(rule, "suppress_grace_s", 0.0))
        self._max = float(getattr(rule, "suppress_max_s", math.inf))
        self._stretch_from: float | None = None
        self._last_set = -math.inf
        self.tainted = False  # suppressed at some time since the owner last cleared this

    def applies(self, latest: Mapping[str, Value]) -> bool:
        """Whether every ``when`` condition holds on the latest values (unknown: no)."""
        for c in self._when:
            value = latest.get(c.point)
            if value is None or not c.holds(value):
                return False
        return True

    def suppressed(self, mono: float, latest: Mapping[str, Value]) -> bool:
        """Whether the rule is suppressed at ``mono``, given the latest values."""
        if not self._bits:
            return False
        if any(latest.get(b) is True for b in self._bits):
            self._last_set = mono
            if self._stretch_from is None:
                self._stretch_from = mono
        elif self._stretch_from is not None and mono - self._last_set >= self._grace:
            self._stretch_from = None
        if self._stretch_from is None or mono - self._stretch_from >= self._max:
            return False
        self.tainted = True
        return True

    def suppressed_until(self) -> float:
        """When the current suppression stretch ends at the earliest (its grace after the bits)."""
        return self._last_set + self._grace


class Detector:
    """Base of the detectors: one rule of one device, open or not, and the signals it says.

    Subclasses override :meth:`reading`, and :meth:`tick` / :meth:`availability` where time or
    availability matters to them, returning a :class:`Signal` when the rule opens or clears.
    """

    def __init__(self, device: str, rule: Rule, info: PointInfo | None) -> None:
        """A closed detector for ``rule`` of ``device``."""
        self.device = device
        self.rule = rule
        self.info = info
        self.gate = Gate(rule)
        self.is_open = False
        self._priority = Priority(rule.priority)
        self._point: str | None = getattr(rule, "point", None)

    # ---- the events (the defaults say nothing) ---------------------------------------------

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """A reading: ``values`` as read now, ``latest`` every point's latest value."""
        del mono, at, values, latest
        return None

    def tick(self, mono: float, at: datetime, latest: Mapping[str, Value]) -> Signal | None:
        """Time passed without a reading."""
        del mono, at, latest
        return None

    def availability(self, mono: float, at: datetime, state: DeviceState) -> Signal | None:
        """The device's availability changed."""
        del mono, at, state
        return None

    def forget_open(self) -> None:
        """After a warm-up: keep what was learnt and timed, but consider nothing open.

        A condition still present opens again at the next event, which the alert book takes as
        the same alert (its id is ``device:rule``).
        """
        self.is_open = False

    # ---- what subclasses say ---------------------------------------------------------------

    def fmt(self, value: float) -> str:
        """A value with the point's unit, for people."""
        unit = self.info.unit if self.info is not None else ""
        sep = "" if unit in ("%", "°C", "") else " "
        places = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        text = f"{value:.{places}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return f"{'0' if text == '-0' else text}{sep}{unit}"

    @property
    def what(self) -> str:
        """The watched point's name, or the rule's, for people."""
        if self.rule.name:
            return self.rule.name
        return self.info.name if self.info is not None else self.rule.id

    def open(
        self,
        at: datetime,
        text: str,
        *,
        value: float | None = None,
        limit: float | None = None,
        since: datetime | None = None,
    ) -> Signal:
        """Say the rule is violated now."""
        self.is_open = True
        return self._signal("open", at, text, value=value, limit=limit, since=since)

    def clear(
        self, at: datetime, text: str, *, value: float | None = None, limit: float | None = None
    ) -> Signal:
        """Say the rule is no longer violated."""
        self.is_open = False
        return self._signal("clear", at, text, value=value, limit=limit, since=None)

    def _signal(
        self,
        kind: str,
        at: datetime,
        text: str,
        *,
        value: float | None,
        limit: float | None,
        since: datetime | None,
    ) -> Signal:
        return Signal(
            kind="open" if kind == "open" else "clear",
            device=self.device,
            rule=self.rule.id,
            priority=self._priority,
            at=at,
            point=self._point,
            value=value,
            limit=limit,
            since=since,
            food_safety=self.rule.food_safety,
            text=text,
        )
