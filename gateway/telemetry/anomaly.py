"""The ``anomaly`` rule: a feature of a point far from what this unit has learnt is normal. Pure.

An EWMA baseline (time-weighted, ``half_life_s``; :class:`~gateway.telemetry.baselines.Ewma`)
of one feature, judged in standard deviations (``z``, the deviation floored at ``min_std``)
once ``warm_up_s`` and ``min_samples`` have been learnt. Samples are learnt clipped to the
threshold, so a fault moves the baseline only slowly. The features (``of``):

* ``value``: every reading of the point.
* ``duty``: the share of each ``window_s`` a bit was set (a compressor working harder).
* ``on_run`` / ``off_run``: how long a bit stays set / clear; the run in progress is judged as
  it grows (``direction = "high"``), a finished one when it ends (``"low"``: short-cycling).
* ``rate``: the rate of rise over each run of ``while_point``, from the run's lowest reading to
  its last (a fryer's heating speed while its heater is on).
* ``start_level``: the point's value when ``while_point`` switches on (a thermostat's cut-in:
  the air at which the compressor starts); opens when the point is past that level while the
  bit stays off (the compressor did not start), whatever the load, the hour or the door.
* ``stop_level``: the point's value when ``while_point`` switches off (the cut-out); opens when
  it switched off far from that level (the compressor tripped in the middle of a run) and has
  not come back on within ``hold_s``.

Like every detector: no I/O, no clock; ``mono`` decides, ``at`` stamps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gateway.telemetry.baselines import Ewma
from gateway.telemetry.detector_core import Detector, Held, PointInfo, number, span

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from gateway.devices.codec import Value
    from gateway.devices.rules import AnomalyRule
    from gateway.telemetry.signals import Signal

__all__ = ["AnomalyDetector"]

#: Fewest readings in a bit's run for ``of = "rate"`` to take its rate, and the shortest run:
#: two or three readings of a 1 s poll are mostly the probe's resolution, not a rate.
RATE_MIN_POINTS = 3
RATE_MIN_SPAN_S = 10.0


class AnomalyDetector(Detector):
    """An ``anomaly`` rule: a feature far from its learnt baseline (see the module doc)."""

    rule: AnomalyRule

    def __init__(self, device: str, rule: AnomalyRule, info: PointInfo | None) -> None:
        """Nothing learnt."""
        super().__init__(device, rule, info)
        self.baseline = Ewma(rule.half_life_s)
        self._sign = 1.0 if rule.direction == "high" else -1.0
        self._seen = -math.inf
        self._out = Held()  # the feature out (to open)
        self._back = Held()  # the feature back (to clear)
        # of = duty: the current window; runs: the current run.
        self._window_from: float | None = None
        self._on_s = 0.0
        self._last_bit: bool | None = None
        self._last_mono = 0.0
        self._run_from: float | None = None  # mono the run began (None: began unseen)
        self._run_pts: list[tuple[float, float]] = []
        self._last_x: float | None = None  # of = start_level, stop_level: the reading before
        self._stopped: tuple[float, float] | None = None  # stop_level: (mono, level) out

    # ---- judging a sample against the baseline -------------------------------------------

    def _z(self, x: float) -> float:
        b = self.baseline
        return self._sign * (x - b.mean) / b.std(self.rule.min_std)

    def _ready(self, mono: float) -> bool:
        return self.baseline.ready(mono, self.rule.min_samples, self.rule.warm_up_s)

    def _learn(self, mono: float, x: float) -> None:
        b = self.baseline
        if self._ready(mono):
            edge = self.rule.z * b.std(self.rule.min_std)
            x = min(max(x, b.mean - edge), b.mean + edge)
        b.add(mono, x)

    def _describe(self, x: float) -> str:
        b, r = self.baseline, self.rule
        if r.of in ("on_run", "off_run"):
            state = "on" if r.of == "on_run" else "off"
            return (
                f"{self.what} {state} for {span(x)}, usually {span(b.mean)} "
                f"± {span(b.std(r.min_std))}"
            )
        if r.of == "duty":
            return f"{self.what} on {x:.0%} of the last {span(r.window_s)}, usually {b.mean:.0%}"
        if r.of == "start_level":
            return (
                f"{self.what} {self.fmt(x)} and {r.while_point} still off: it usually comes on "
                f"at {self.fmt(b.mean)} ± {self.fmt(b.std(r.min_std))}"
            )
        if r.of == "stop_level":
            return (
                f"{r.while_point} went off with {self.what} at {self.fmt(x)} and stays off: it "
                f"usually goes off at {self.fmt(b.mean)} ± {self.fmt(b.std(r.min_std))}"
            )
        unit = "/h" if r.of == "rate" else ""
        word = "higher" if r.direction == "high" else "lower"
        return (
            f"{self.what}{' rate' if r.of == 'rate' else ''} {self.fmt(x)}{unit} is {word} than "
            f"usual ({self.fmt(b.mean)}{unit} ± {self.fmt(b.std(r.min_std))})"
        )

    def _verdict(self, mono: float, at: datetime, x: float, *, hold: bool = True) -> Signal | None:
        """Open when ``x`` is out (for ``hold_s``); clear when back within half of ``z``."""
        if not self._ready(mono):
            return None
        z = self._z(x)
        if not self.is_open:
            if self._out.update(z >= self.rule.z, mono) < (self.rule.hold_s if hold else 0.0):
                return None
            self._out.reset()
            return self.open(at, self._describe(x), value=x)
        if self._back.update(z < self.rule.z / 2, mono) < (self.rule.clear_s if hold else 0.0):
            return None
        self._back.reset()
        return self.clear(at, f"{self._describe(x)}: back to usual", value=x)

    # ---- the features ---------------------------------------------------------------------

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Feed the feature the rule looks at."""
        x = number(values.get(self.rule.point))
        if x is None:
            return self.tick(mono, at, latest)
        assert self.info is not None
        gap = mono - self._seen > self.info.stale_s
        self._seen = mono
        applies = self.gate.applies(latest)
        suppressed = self.gate.suppressed(mono, latest)
        of = self.rule.of
        if of == "value":
            return None if not applies or suppressed else self._value(mono, at, x)
        if gap or not applies:
            self._reset()
        if of == "duty":
            return self._duty(mono, at, x > 0.5, suppressed)
        if of in ("on_run", "off_run"):
            return self._run(mono, at, x > 0.5, suppressed)
        bit = latest.get(self.rule.while_point or "") is True
        features = {"rate": self._rate, "start_level": self._start_level}
        feature = features.get(of, self._stop_level)
        return feature(mono, at, x, bit=bit, suppressed=suppressed)

    def _value(self, mono: float, at: datetime, x: float) -> Signal | None:
        out = self._verdict(mono, at, x)
        self._learn(mono, x)
        return out

    def tick(self, mono: float, at: datetime, latest: Mapping[str, Value]) -> Signal | None:
        """A run in progress is judged as time passes, while its last reading is current."""
        if self.rule.of not in ("on_run", "off_run") or self.info is None:
            return None
        if mono - self._seen > self.info.stale_s:
            return None
        suppressed = self.gate.suppressed(mono, latest)
        return self._judge_run(mono, at, suppressed)

    def _reset(self) -> None:
        self._last_x = None
        self._stopped = None
        self._window_from = None
        self._on_s = 0.0
        self._last_bit = None
        self._run_from = None
        self._run_pts = []
        self.gate.tainted = False

    def _duty(self, mono: float, at: datetime, bit: bool, suppressed: bool) -> Signal | None:
        if self._window_from is None:
            self._window_from, self._on_s = mono, 0.0
            self.gate.tainted = suppressed
        elif self._last_bit:
            self._on_s += mono - self._last_mono
        self._last_bit, self._last_mono = bit, mono
        if mono - self._window_from < self.rule.window_s:
            return None
        duty = self._on_s / (mono - self._window_from)
        clean = not self.gate.tainted
        self._window_from, self._on_s = mono, 0.0
        self.gate.tainted = suppressed
        if not clean:
            return None
        out = self._verdict(mono, at, duty, hold=False)
        self._learn(mono, duty)
        return out

    def _run(self, mono: float, at: datetime, bit: bool, suppressed: bool) -> Signal | None:
        wanted = self.rule.of == "on_run"
        out: Signal | None = None
        if self._last_bit is not None and bit != self._last_bit:
            if self._last_bit == wanted:  # the watched run ended
                if self._run_from is not None and not self.gate.tainted:
                    length = mono - self._run_from
                    if self.rule.direction == "low":
                        out = self._verdict(mono, at, length, hold=False)
                    self._learn(mono, length)
                if self.is_open and self.rule.direction == "high":
                    out = self.clear(at, f"{self.what} {'off' if wanted else 'on'} again")
            self._run_from = mono
            self.gate.tainted = suppressed
        elif self._last_bit is None:
            self._run_from = None  # began before we looked: its length is unknown
            self.gate.tainted = suppressed
        self._last_bit = bit
        return out or self._judge_run(mono, at, suppressed)

    def _judge_run(self, mono: float, at: datetime, suppressed: bool) -> Signal | None:
        wanted = self.rule.of == "on_run"
        if (
            self.rule.direction != "high"
            or self.is_open
            or suppressed
            or self._last_bit != wanted
            or not self._ready(mono)
        ):
            return None
        # A run that was suppressed for a while (a defrost) counts from when that ended.
        start = self._run_from
        if self.gate.tainted:
            start = self.gate.suppressed_until()
        elif start is None:
            return None
        length = mono - start if start is not None else 0.0
        if self._z(length) < self.rule.z:
            return None
        return self.open(at, self._describe(length), value=length)

    def _rate(
        self, mono: float, at: datetime, x: float, *, bit: bool, suppressed: bool
    ) -> Signal | None:
        if suppressed:
            self._run_pts = []  # a run the suppression cut into says nothing
            return None
        if bit:
            self._run_pts.append((mono, x))
            return None
        pts, self._run_pts = self._run_pts, []
        if not pts:
            return None
        # From the run's lowest reading: a basket of food dropped in as the heater came on is
        # the food, not the heater.
        low = min(range(len(pts)), key=lambda i: pts[i][1])
        pts = pts[low:]
        if len(pts) < RATE_MIN_POINTS or pts[-1][0] - pts[0][0] < RATE_MIN_SPAN_S:
            return None
        rate = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]) * 3600.0
        out = self._verdict(mono, at, rate, hold=False)
        self._learn(mono, rate)
        return out

    def _start_level(
        self, mono: float, at: datetime, x: float, *, bit: bool, suppressed: bool
    ) -> Signal | None:
        before, was_on = self._last_x, self._last_bit
        self._last_x, self._last_bit = x, bit
        if bit:
            self._out.reset()
            if before is not None and was_on is False and not suppressed:
                # The level it started at: the reading just before or at the start, whichever
                # is further out (it starts between two polls).
                self._learn(mono, self._sign * max(self._sign * before, self._sign * x))
            if self.is_open:
                return self.clear(at, f"{self.rule.while_point} on again", value=x)
            return None
        if suppressed or was_on is None:
            return None
        return self._verdict(mono, at, x)

    def _stop_level(
        self, mono: float, at: datetime, x: float, *, bit: bool, suppressed: bool
    ) -> Signal | None:
        was_on = self._last_bit
        self._last_x, self._last_bit = x, bit
        if bit:
            self._stopped = None
            if self.is_open:
                return self.clear(at, f"{self.rule.while_point} on again", value=x)
            return None
        if suppressed:  # a defrost stops it on purpose; a door may
            self._stopped = None
            return None
        if was_on is True:  # it has just gone off: this reading is where
            if self._ready(mono) and self._z(x) >= self.rule.z:
                self._stopped = (mono, x)
            self._learn(mono, x)
        if self._stopped is None or self.is_open or mono - self._stopped[0] < self.rule.hold_s:
            return None
        return self.open(at, self._describe(self._stopped[1]), value=self._stopped[1])
