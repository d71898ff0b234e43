"""Fault detectors: a device's rules turned into small pure state machines that say signals.

:func:`detectors_for` builds a device's :class:`DeviceDetectors` from its profile's
``[[rules]]`` and the site's overrides (``[devices.rules.RULE]``). The service that feeds it
live, and ``gateway alerts backtest`` on recorded readings, call the same four methods::

    dets = detectors_for(device, profile)
    dets.warm_up(history)                    # past (mono, at, values): baselines, no signals
    dets.reading(mono, at, values)           # -> [Signal]   a reading of the device
    dets.availability(mono, at, state)       # -> [Signal]   online / degraded / offline
    dets.tick(mono, at)                      # -> [Signal]   time passed (silence, holds)

Pure (STYLE.md 12): no I/O and no clock. ``mono`` (monotonic seconds, non-decreasing; a
backtest's virtual clock) decides every "for 30 minutes"; ``at`` only stamps signals. An event
older than the last one is ignored. Deterministic: the same calls give the same signals.

Kinds, each in a line or two (the learning ones are in :mod:`gateway.telemetry.baselines` and
:mod:`gateway.telemetry.anomaly`):

* ``limit``: a run starts at the first reading past the limit that is not suppressed, and
  ends only once the value is back past the limit by ``hysteresis``; it opens when the run has
  lasted ``hold_s`` and the value is past the limit, and clears after ``clear_s`` back.
* ``silent``: opens when no reading has come for ``after_s`` (from the last reading, or from
  the first event if none came, or after a warm-up); clears at the next reading.
* ``flatline``: opens when an unbroken stretch of readings spans ``window_s`` and their range
  over the last ``window_s`` (sliding min and max) is under ``min_range``; clears once it is not.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from gateway.devices.rules import (
    AnomalyRule,
    FlatlineRule,
    LimitRule,
    RecoveryRule,
    SilentRule,
    TrendRule,
    merge_rules,
)
from gateway.errors import ConfigError
from gateway.telemetry.anomaly import AnomalyDetector
from gateway.telemetry.baselines import RecoveryDetector, TrendDetector
from gateway.telemetry.detector_core import Detector, PointInfo, number, span

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from gateway.config import DeviceInstance
    from gateway.contract import DeviceState
    from gateway.devices.codec import Value
    from gateway.devices.profile import Profile
    from gateway.devices.rules import Rule
    from gateway.telemetry.signals import Signal

__all__ = [
    "DeviceDetectors",
    "FlatlineDetector",
    "LimitDetector",
    "SilentDetector",
    "detectors_for",
]

#: A reading of a point polled every ``poll_s`` is current for this many intervals.
STALE_POLLS = 3.0
#: ... and at least this long (a fast point's one missed poll is not a gap).
MIN_STALE_S = 30.0
#: An MQTT sensor node publishes when it likes: its reading is current this long.
MQTT_STALE_S = 300.0


class DeviceDetectors:
    """Every enabled rule of one device, fed its readings, availability and the time.

    Args:
        device: the device id.
        detectors: one per enabled rule.
    """

    def __init__(self, device: str, detectors: Sequence[Detector]) -> None:
        """Start with nothing seen and nothing open."""
        self.device = device
        self.detectors = tuple(detectors)
        self._latest: dict[str, Value] = {}
        self._mono = -math.inf
        self._warming = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules being watched (enabled ones only), in profile order."""
        return tuple(d.rule for d in self.detectors)

    def reading(self, mono: float, at: datetime, values: Mapping[str, Value]) -> list[Signal]:
        """A reading of the device (only what was read; absent points are not filled in)."""
        if not self._advance(mono):
            return []
        self._latest.update(values)
        out = [s for d in self.detectors if (s := d.reading(mono, at, values, self._latest))]
        return [] if self._warming else out

    def availability(self, mono: float, at: datetime, state: DeviceState) -> list[Signal]:
        """The device went online, degraded or offline."""
        if not self._advance(mono):
            return []
        out = [s for d in self.detectors if (s := d.availability(mono, at, state))]
        return [] if self._warming else out

    def tick(self, mono: float, at: datetime) -> list[Signal]:
        """Time passed: silent devices and holds that end between readings are judged."""
        if not self._advance(mono):
            return []
        out = [s for d in self.detectors if (s := d.tick(mono, at, self._latest))]
        return [] if self._warming else out

    def warm_up(self, history: Iterable[tuple[float, datetime, Mapping[str, Value]]]) -> None:
        """Seed baselines, learnt curves and timers from past readings, saying nothing.

        ``history`` is ``(mono, at, values)`` oldest first, ``mono`` on the same timeline as
        the live calls that follow (the caller maps recorded times onto it). Afterwards nothing
        is considered open: a condition still present opens again at the next event, and the
        alert book takes it as the alert it already has.
        """
        self._warming = True
        try:
            for mono, at, values in history:
                self.reading(mono, at, values)
        finally:
            self._warming = False
        for d in self.detectors:
            d.forget_open()

    def _advance(self, mono: float) -> bool:
        if mono < self._mono:
            return False
        self._mono = mono
        return True


def detectors_for(device: DeviceInstance, profile: Profile) -> DeviceDetectors:
    """The detectors of ``device``: its profile's rules merged with the site's overrides.

    Raises:
        ConfigError: an override does not fit the profile (``check_site`` reports the same
            problems when the site file loads, so a checked site never raises here).
    """
    rules, problems = merge_rules(
        profile.rules,
        device.rules,
        profile.point_kinds(),
        key=f"devices.{device.id}.rules",
        owner=f"profile {profile.profile.id}",
    )
    if problems:
        raise ConfigError(None, problems)
    built = [_build(device, profile, r) for r in rules if r.enabled]
    return DeviceDetectors(device.id, built)


def _build(device: DeviceInstance, profile: Profile, rule: Rule) -> Detector:
    if isinstance(rule, SilentRule):
        return SilentDetector(device.id, rule, None)
    info = _info(device, profile, rule.point)
    if isinstance(rule, LimitRule):
        return LimitDetector(device.id, rule, info)
    if isinstance(rule, FlatlineRule):
        return FlatlineDetector(device.id, rule, info)
    if isinstance(rule, TrendRule):
        return TrendDetector(device.id, rule, info)
    if isinstance(rule, RecoveryRule):
        return RecoveryDetector(device.id, rule, info)
    if isinstance(rule, AnomalyRule):
        return AnomalyDetector(device.id, rule, info)
    raise AssertionError(rule)  # pragma: no cover - the union is exhaustive


def _info(device: DeviceInstance, profile: Profile, point_id: str) -> PointInfo:
    point = profile.point(point_id)
    if point is not None:
        poll = profile.poll_interval(point_id, device.poll_s) or profile.settings.poll_s
        stale = max(STALE_POLLS * poll, MIN_STALE_S)
        return PointInfo(point.name, point.unit, stale)
    field = next(f for f in profile.fields if f.id == point_id)
    return PointInfo(field.name, field.unit, MQTT_STALE_S)


class LimitDetector(Detector):
    """A ``limit`` rule: past the limit for ``hold_s``, with hysteresis (see the module doc)."""

    rule: LimitRule

    def __init__(self, device: str, rule: LimitRule, info: PointInfo | None) -> None:
        """A closed limit with no run."""
        super().__init__(device, rule, info)
        self._limit = rule.limit
        self._sign = 1.0 if rule.high else -1.0  # past the limit: sign * (x - limit) > 0
        self._run_from: float | None = None  # mono of the first counted reading past it
        self._since: datetime | None = None  # wall stamp of the first reading past it
        self._back_from: float | None = None  # mono since the value is back past hysteresis
        self._x: float | None = None
        self._seen = -math.inf

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Judge the new value of the point, if the reading has one."""
        x = number(values.get(self.rule.point))
        if x is not None and self.rule.relative_to is not None:
            ref = number(latest.get(self.rule.relative_to))
            x = None if ref is None else x - ref
        if x is None:
            return self.tick(mono, at, latest)
        assert self.info is not None
        if mono - self._seen > self.info.stale_s:
            self._run_from = self._since = self._back_from = None  # a gap: nothing is known
        self._x, self._seen = x, mono
        if not self.gate.applies(latest):
            self._run_from = self._since = self._back_from = None
            if self.is_open:
                return self.clear(at, f"{self.what}: the rule no longer applies", value=x)
            return None
        suppressed = self.gate.suppressed(mono, latest)
        past = self._sign * (x - self._limit) > 0
        back = self._sign * (x - self._limit) <= -self.rule.hysteresis
        if past and self._since is None:
            self._since = at
        if back:
            self._run_from = self._since = None
        elif past and not suppressed and self._run_from is None:
            self._run_from = mono
        return self._judge(mono, at, past=past, back=back)

    def tick(self, mono: float, at: datetime, latest: Mapping[str, Value]) -> Signal | None:
        """A hold or a clear that ends between readings (while the last one is current)."""
        if self._x is None or self.info is None or mono - self._seen > self.info.stale_s:
            return None
        if not self.gate.applies(latest) or self.gate.suppressed(mono, latest):
            return None
        d = self._sign * (self._x - self._limit)
        return self._judge(mono, at, past=d > 0, back=d <= -self.rule.hysteresis)

    def _judge(self, mono: float, at: datetime, *, past: bool, back: bool) -> Signal | None:
        x = self._x
        assert x is not None
        word = "above" if self.rule.high else "below"
        if not self.is_open:
            if past and self._run_from is not None and mono - self._run_from >= self.rule.hold_s:
                held = f" for {span(mono - self._run_from)}" if self.rule.hold_s else ""
                return self.open(
                    at,
                    f"{self.what} {word} {self._limit_text()}{held}: {self.fmt(x)}",
                    value=x,
                    limit=self._limit,
                    since=self._since,
                )
            return None
        if not back:
            self._back_from = None
            return None
        if self._back_from is None:
            self._back_from = mono
        if mono - self._back_from >= self.rule.clear_s:
            self._back_from = None
            back_word = "below" if self.rule.high else "above"
            return self.clear(
                at, f"{self.what} back {back_word} {self._limit_text()}", value=x, limit=self._limit
            )
        return None

    def _limit_text(self) -> str:
        if self.rule.relative_to is None:
            return f"the limit ({self.fmt(self._limit)})"
        return f"{self._limit:+g} from {self.rule.relative_to}"


class SilentDetector(Detector):
    """A ``silent`` rule: no reading for ``after_s`` (see the module doc)."""

    rule: SilentRule

    def __init__(self, device: str, rule: SilentRule, info: PointInfo | None) -> None:
        """Nothing heard yet; the clock starts at the first event."""
        super().__init__(device, rule, info)
        self._heard: float | None = None
        self._heard_at: datetime | None = None
        self._state: DeviceState | None = None
        self._restarted = False

    def forget_open(self) -> None:
        """After a warm-up the silence counts from the first live event, not from the history.

        The gateway itself was away in between; the device may well have been answering.
        """
        super().forget_open()
        self._heard, self._restarted = None, True

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Heard from: clears a silence."""
        del values, latest
        self._heard, self._heard_at, self._restarted = mono, at, False
        if self.is_open:
            return self.clear(at, "readings again")
        return None

    def availability(self, mono: float, at: datetime, state: DeviceState) -> Signal | None:
        """Remember the state for the message; the silence itself is judged on readings."""
        self._state = state
        return self.tick(mono, at, {})

    def tick(self, mono: float, at: datetime, latest: Mapping[str, Value]) -> Signal | None:
        """Open once nothing has been heard for ``after_s``."""
        del latest
        if self._heard is None:
            self._heard = mono  # counting starts when the detector first hears of time
        quiet = mono - self._heard
        if self.is_open or quiet < self.rule.after_s:
            return None
        state = f" (it is {self._state.value})" if self._state is not None else ""
        last = (
            ""
            if self._heard_at is not None and not self._restarted
            else " since the gateway started"
        )
        return self.open(at, f"no reading for {span(quiet)}{last}{state}", since=self._heard_at)


class FlatlineDetector(Detector):
    """A ``flatline`` rule: a value that does not move (see the module doc)."""

    rule: FlatlineRule

    def __init__(self, device: str, rule: FlatlineRule, info: PointInfo | None) -> None:
        """No readings yet."""
        super().__init__(device, rule, info)
        self._mins: deque[tuple[float, float]] = deque()  # increasing values: sliding min
        self._maxs: deque[tuple[float, float]] = deque()  # decreasing values: sliding max
        self._from = -math.inf  # start of the unbroken stretch of readings
        self._seen = -math.inf

    def reading(
        self, mono: float, at: datetime, values: Mapping[str, Value], latest: Mapping[str, Value]
    ) -> Signal | None:
        """Add the value; judge the range of the window."""
        x = number(values.get(self.rule.point))
        if x is None:
            return None
        assert self.info is not None
        if (
            mono - self._seen > self.info.stale_s
            or not self.gate.applies(latest)
            or self.gate.suppressed(mono, latest)
        ):
            self._mins.clear()
            self._maxs.clear()
            self._from = mono
        self._seen = mono
        self._push(mono, x)
        lo, hi = self._mins[0][1], self._maxs[0][1]
        moved = hi - lo >= self.rule.min_range
        if self.is_open and moved:
            return self.clear(at, f"{self.what} moves again: {self.fmt(x)}", value=x)
        if not self.is_open and not moved and mono - self._from >= self.rule.window_s:
            return self.open(
                at,
                f"{self.what} has stayed within {self.fmt(hi - lo)} for "
                f"{span(self.rule.window_s)} ({self.fmt(x)}): a stuck or failed probe?",
                value=x,
            )
        return None

    def _push(self, mono: float, x: float) -> None:
        while self._mins and self._mins[-1][1] >= x:
            self._mins.pop()
        self._mins.append((mono, x))
        while self._maxs and self._maxs[-1][1] <= x:
            self._maxs.pop()
        self._maxs.append((mono, x))
        edge = mono - self.rule.window_s
        while self._mins[0][0] < edge:
            self._mins.popleft()
        while self._maxs[0][0] < edge:
            self._maxs.popleft()
