"""Detectors that learn what is normal for one unit: trends and recoveries, and the baseline. Pure.

What "normal" is differs between two walk-ins of the same model (one by the fryers, one full of
stock), so these rules learn it from the unit's own readings, live or through
:meth:`~gateway.telemetry.detectors.DeviceDetectors.warm_up` after a restart. Like every
detector they do no I/O and read no clock: ``mono`` decides, ``at`` stamps.

* ``trend``: a least-squares line through the unsuppressed readings of the last ``window_s``
  (running sums, so each reading costs O(1)); opens when its rate is at least
  ``min_rate_per_h`` towards the limit and its end plus ``horizon_s`` of that rate reaches it.
* ``recovery``: after a disturbance bit clears (the door shut), times how long the value takes
  to come back within ``margin`` of the range it moved in over ``window_s`` before (a sliding
  maximum; disturbances in a row are one chain, timed without the disturbed time); learns those
  times (EWMA mean and variance) and opens when one runs past mean + ``z`` std (and ``min_s``).
* ``anomaly``: an EWMA baseline (time-weighted, ``half_life_s``) of a feature: the value, the
  duty of a bit per ``window_s``, the length of a bit's runs (the run in progress is judged as
  it grows), or the rate of rise over a bit's runs (from the run's lowest reading to its last);
  opens ``z`` std from the mean. Samples
  are learnt clipped to the threshold, so a fault moves the baseline only slowly.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from gateway.telemetry.detector_core import Detector, Held, PointInfo, number, span

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from gateway.devices.codec import Value
    from gateway.devices.rules import RecoveryRule, TrendRule
    from gateway.telemetry.signals import Signal

__all__ = ["Ewma", "LineFit", "RecoveryDetector", "TrendDetector"]

#: Fewest readings a trend line is drawn through, and the share of its window they must span.
TREND_MIN_POINTS = 10
TREND_MIN_SPAN = 0.6


class Ewma:
    """Exponentially weighted mean and variance over time (half-life in seconds).

    The weight of a sample depends on the time since the previous one, so the baseline forgets
    at the same speed whatever the poll interval or the length of a compressor's runs.
    """

    def __init__(self, half_life_s: float) -> None:
        """An empty baseline."""
        self.half_life_s = half_life_s
        self.mean = 0.0
        self.var = 0.0
        self.count = 0
        self.first: float | None = None
        self._last = 0.0

    def std(self, floor: float) -> float:
        """The standard deviation, at least ``floor``."""
        return max(math.sqrt(self.var), floor)

    def ready(self, mono: float, min_samples: int, warm_up_s: float) -> bool:
        """Whether enough has been learnt to judge by it."""
        return (
            self.count >= min_samples and self.first is not None and mono - self.first >= warm_up_s
        )

    def add(self, mono: float, x: float) -> None:
        """Learn one sample taken at ``mono``."""
        if self.first is None:
            self.first, self._last, self.mean, self.count = mono, mono, x, 1
            return
        dt = max(mono - self._last, 0.0)
        self._last = mono
        # At least 1/count: the first samples weigh as in a plain mean, not as nothing.
        alpha = max(1.0 - 2.0 ** (-dt / self.half_life_s), 1.0 / (self.count + 1))
        diff = x - self.mean
        incr = alpha * diff
        self.mean += incr
        self.var = (1.0 - alpha) * (self.var + diff * incr)
        self.count += 1


class LineFit:
    """A least-squares line through the points of a sliding window, in O(1) per point.

    Times are taken from an origin that moves with the window, so the sums never hold the large
    numbers that would cancel each other out.
    """

    def __init__(self) -> None:
        """No points."""
        self.points: deque[tuple[float, float]] = deque()
        self._origin = 0.0
        self._n = 0
        self._st = self._sy = self._stt = self._sty = 0.0

    def clear(self) -> None:
        """Forget every point."""
        self.points.clear()
        self._n = 0
        self._st = self._sy = self._stt = self._sty = 0.0

    def add(self, t: float, y: float) -> None:
        """Add a point (times must not go backwards)."""
        if not self.points:
            self._origin = t
        self.points.append((t, y))
        self._sum(t, y, 1.0)

    def drop_before(self, t: float, window_s: float) -> None:
        """Drop the points older than ``t``; re-base the sums now and then."""
        while self.points and self.points[0][0] < t:
            old_t, old_y = self.points.popleft()
            self._sum(old_t, old_y, -1.0)
        if self.points and self.points[0][0] - self._origin > 4 * window_s:
            pts = list(self.points)
            self.clear()
            for pt, py in pts:
                self.add(pt, py)

    def _sum(self, t: float, y: float, sign: float) -> None:
        u = t - self._origin
        self._n += int(sign)
        self._st += sign * u
        self._sy += sign * y
        self._stt += sign * u * u
        self._sty += sign * u * y

    def line(self) -> tuple[float, float] | None:
        """(slope per second, fitted value at the newest point), or None with too few points."""
        n = self._n
        if n < 2:
            return None
        den = n * self._stt - self._st * self._st
        if den <= 0:
            return None
        slope = (n * self._sty - self._st * self._sy) / den
        mean_t, mean_y = self._st / n, self._sy / n
        end = mean_y + slope * (self.points[-1][0] - self._origin - mean_t)
        return slope, end


class TrendDetector(Detector):
    """A ``trend`` rule: heading for the limit at a steady rate (see the module doc)."""

    rule: TrendRule

    def __init__(self, device: str, rule: TrendRule, info: PointInfo | None) -> None:
        """An empty window."""
        super().__init__(device, rule, info)
        self._fit = LineFit()
        self._sign = 1.0 if rule.high else -1.0
        self._heading = Held()
        self._easing = Held()

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Add the value to the window unless suppressed; judge the line."""
        x = number(values.get(self.rule.point))
        if x is None:
            return None
        assert self.info is not None
        pts = self._fit.points
        if pts and mono - pts[-1][0] > self.info.stale_s + self.rule.window_s:
            self._fit.clear()  # nothing of the window is left: start again
        if not self.gate.applies(latest):
            self._fit.clear()
            self._heading.reset()
            return (
                self.clear(at, f"{self.what}: the rule no longer applies") if self.is_open else None
            )
        if self.gate.suppressed(mono, latest):
            return None
        self._fit.add(mono, x)
        self._fit.drop_before(mono - self.rule.window_s, self.rule.window_s)
        return self._judge(mono, at, x)

    def _judge(self, mono: float, at: datetime, x: float) -> Signal | None:
        pts = self._fit.points
        line = self._fit.line()
        if (
            line is None
            or len(pts) < TREND_MIN_POINTS
            or pts[-1][0] - pts[0][0] < TREND_MIN_SPAN * self.rule.window_s
        ):
            return None
        slope, end = line
        rate_h = self._sign * slope * 3600.0  # towards the limit, per hour
        ahead = self._sign * (end + slope * self.rule.horizon_s - self.rule.limit)  # >= 0: reached
        if not self.is_open:
            heading = rate_h >= self.rule.min_rate_per_h and ahead >= 0
            if self._heading.update(heading, mono) < self.rule.hold_s:
                return None
            self._heading.reset()
            return self._open(at, x, slope, end)
        easing = rate_h < self.rule.min_rate_per_h / 2 or ahead < -self.rule.hysteresis
        if self._easing.update(easing, mono) < self.rule.clear_s:
            return None
        self._easing.reset()
        return self.clear(
            at, f"{self.what} no longer heading for {self.fmt(self.rule.limit)}", value=x
        )

    def _open(self, at: datetime, x: float, slope: float, end: float) -> Signal:
        left = self._sign * (self.rule.limit - end)
        when = (
            f"{self.fmt(self.rule.limit)} reached in {span(left / abs(slope))}"
            if left > 0
            else f"past {self.fmt(self.rule.limit)}"
        )
        word = "rising" if self.rule.high else "falling"
        return self.open(
            at,
            f"{self.what} {word} {abs(slope) * 3600:.2g}{self._unit()}/h: {when} "
            f"(now {self.fmt(x)})",
            value=x,
            limit=self.rule.limit,
        )

    def _unit(self) -> str:
        unit = self.info.unit if self.info is not None else ""
        return unit if unit in ("%", "°C", "") else f" {unit}"


class RecoveryDetector(Detector):
    """A ``recovery`` rule: slower than usual back after a disturbance (see the module doc).

    Disturbances that follow each other before the value is back (doors at a service peak) are
    one chain: the level is the one before the first, and the time taken is the time without a
    disturbance since the chain began, so a failure is seen however busy the door is.
    """

    rule: RecoveryRule

    def __init__(self, device: str, rule: RecoveryRule, info: PointInfo | None) -> None:
        """Nothing learnt."""
        super().__init__(device, rule, info)
        self.times = Ewma(rule.half_life_s)
        self._sign = 1.0 if rule.direction == "high" else -1.0
        self._range: deque[tuple[float, float]] = deque()  # sliding extreme of calm readings
        self._before: float | None = None  # the level to come back to; None: no chain
        self._waited = 0.0  # undisturbed, unsuppressed seconds since the chain began
        self._calm = False  # the previous reading was undisturbed and unsuppressed
        self._seen = -math.inf

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Follow the disturbance bit and the value."""
        x = number(values.get(self.rule.point))
        if x is None:
            return None
        assert self.info is not None
        if mono - self._seen > self.info.stale_s or not self.gate.applies(latest):
            self._before, self._calm = None, False  # nothing is known about this recovery
            self._range.clear()
        dt, self._seen = mono - self._seen, mono
        suppressed = self.gate.suppressed(mono, latest)
        disturbed = latest.get(self.rule.after) is True
        if disturbed and self._before is None:  # the first of a chain sets the level
            self._before = self._sign * self._range[0][1] if self._range else x
            self._waited = 0.0
            self.gate.tainted = suppressed
        calm = not disturbed and not suppressed
        if self._before is not None and calm and self._calm:
            self._waited += dt
        self._calm = calm
        if self._before is None and calm:
            self._extend(mono, self._sign * x)
        if self._before is None or not calm:
            return None
        return self._judge(mono, at, x)

    def _extend(self, mono: float, y: float) -> None:
        """Keep the sliding maximum of ``y`` (the value, signed) over ``window_s``."""
        while self._range and self._range[-1][1] <= y:
            self._range.pop()
        self._range.append((mono, y))
        while self._range[0][0] < mono - self.rule.window_s:
            self._range.popleft()

    def _judge(self, mono: float, at: datetime, x: float) -> Signal | None:
        assert self._before is not None
        r = self.rule
        target = self._before + self._sign * r.margin
        taken = self._waited
        if self._sign * (x - target) <= 0:
            if not self.gate.tainted:  # a recovery a defrost got into is not a normal one
                self._learn(mono, taken)
            self._before = None
            if self.is_open:
                return self.clear(
                    at, f"{self.what} back to {self.fmt(x)} after {span(taken)}", value=x
                )
            return None
        if self.is_open or not self.times.ready(mono, r.min_samples, 0.0):
            return None
        mean, std = self.times.mean, self.times.std(r.min_std)
        if taken < max(r.min_s, mean + r.z * std):
            return None
        what = r.after.replace("_", " ")
        return self.open(
            at,
            f"{self.what} not back to {self.fmt(target)} {span(taken)} after {what} "
            f"(usually {span(mean)}): now {self.fmt(x)}",
            value=x,
            limit=target,
        )

    def _learn(self, mono: float, taken: float) -> None:
        r = self.rule
        if self.times.ready(mono, r.min_samples, 0.0):
            taken = min(taken, self.times.mean + r.z * self.times.std(r.min_std))
        self.times.add(mono, taken)
