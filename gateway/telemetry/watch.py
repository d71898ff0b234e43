"""The fault watch: every device's detectors, fed live readings, availability and time.

The device service hands each reading and each availability change to :meth:`FaultWatch.reading`
and :meth:`FaultWatch.availability` as they happen (``DeviceService.record`` and
``DeviceService.on_availability``); the detectors (``gateway.telemetry.detectors``, pure) are cheap
enough to run right there, so there is no queue to overflow. A tick every ``tick_s`` lets them
judge what time alone decides (a silent device, a hold that ends between readings). What they
say goes to every listener (:meth:`FaultWatch.on_signal`): the alert service, the HACCP record.

Time: live, a detector's ``mono`` is the injected clock's monotonic time when the event arrives;
its ``at`` is the reading's own time. At start, each device's detectors are warmed up from the
local history (the last ``warm_up_s`` of its readings), mapped onto the same monotonic timeline,
so baselines and learnt recovery curves do not start blind after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.errors import StoreError
from gateway.lifecycle import Service
from gateway.telemetry.history import HistoryReader
from gateway.telemetry.lineproto import parse_field_set
from gateway.telemetry.notes import NOTE_FIELDS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from gateway.clock import Clock
    from gateway.devices.codec import Value
    from gateway.devices.events import AvailabilityChanged, DeviceReadings
    from gateway.telemetry.detectors import DeviceDetectors
    from gateway.telemetry.signals import Signal

__all__ = ["FaultWatch", "WatchStats"]

log = logging.getLogger(__name__)

_TICK_S = 5.0
_WARM_UP_S = 24 * 3600.0  # a day of readings: four defrosts, a lunch and a dinner
_NS = 1_000_000_000


@dataclass
class WatchStats:
    """What the watch did, as data.

    Attributes:
        readings: readings judged.
        signals: signals said, by rule.
        warmed: readings replayed from the history at start, per device.
        listener_errors: signals a listener failed on (logged once each listener).
    """

    readings: int = 0
    signals: dict[str, int] = field(default_factory=dict)
    warmed: dict[str, int] = field(default_factory=dict)
    listener_errors: int = 0


class FaultWatch(Service):
    """Runs every device's detectors on the live events (see the module docstring)."""

    name = "faults"

    def __init__(
        self,
        detectors: Mapping[str, DeviceDetectors],
        clock: Clock,
        *,
        history: Path | None = None,
        tick_s: float = _TICK_S,
        warm_up_s: float = _WARM_UP_S,
    ) -> None:
        """Prepare; nothing is judged before start.

        Args:
            detectors: per device id, its detectors (``detectors_for``).
            clock: real time: ``monotonic()`` decides, ``now()`` stamps ticks.
            history: the telemetry history to warm up from (None: start blind).
            tick_s: how often time alone is judged.
            warm_up_s: how much of the history to replay at start.
        """
        self._detectors = dict(detectors)
        self._clock = clock
        self._history = history
        self._tick_s = tick_s
        self._warm_up_s = warm_up_s
        self._listeners: list[Callable[[Signal], None]] = []
        self._failed: set[int] = set()
        self._started = False
        self.stats = WatchStats()

    def on_signal(self, listener: Callable[[Signal], None]) -> None:
        """Call ``listener`` with every signal (it must not block)."""
        self._listeners.append(listener)

    # --- events in ------------------------------------------------------------------------

    def reading(self, readings: DeviceReadings) -> None:
        """Judge one reading (``DeviceService.record``)."""
        d = self._detectors.get(readings.device)
        if d is None or not self._started:
            return
        self.stats.readings += 1
        self._say(d.reading(self._clock.monotonic(), readings.at, readings.values))

    def availability(self, change: AvailabilityChanged) -> None:
        """Judge one availability change (``DeviceService.on_availability``)."""
        d = self._detectors.get(change.device)
        if d is None or not self._started:
            return
        self._say(d.availability(self._clock.monotonic(), change.at, change.state))

    def _say(self, signals: list[Signal]) -> None:
        for s in signals:
            self.stats.signals[s.rule] = self.stats.signals.get(s.rule, 0) + 1
            log.info("fault watch: %s %s %s: %s", s.device, s.rule, s.kind, s.text)
            for i, listener in enumerate(self._listeners):
                try:
                    listener(s)
                except Exception:
                    # A listener is another service's code; the other listeners must still hear.
                    self.stats.listener_errors += 1
                    if i not in self._failed:
                        self._failed.add(i)
                        log.exception("a fault-watch listener failed on %s", s.alert_id)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm the detectors up from the history, then start judging and ticking."""
        if self._history is not None and self._history.exists():
            now_mono, now_wall = self._clock.monotonic(), self._clock.now().timestamp()
            try:
                await asyncio.to_thread(self._warm_up, self._history, now_mono, now_wall)
            except StoreError as err:
                log.warning("fault watch: cannot warm up from %s, starting blind: %s",
                            self._history, err)  # fmt: skip
        self._started = True
        self.spawn(self._ticker(), "tick")

    def _warm_up(self, path: Path, now_mono: float, now_wall: float) -> None:
        since_ns = int((now_wall - self._warm_up_s) * _NS)
        with HistoryReader(path, readonly=True) as h:
            for device, d in self._detectors.items():
                merged: dict[int, dict[str, Value]] = {}
                times: dict[int, datetime] = {}
                rows = h.query(device, since_ns, 2**62, leave_out=NOTE_FIELDS)
                for at_ns, _safety, fields in rows:
                    merged.setdefault(at_ns, {}).update(parse_field_set(fields))
                if not merged:
                    continue
                for at_ns in merged:
                    times[at_ns] = datetime.fromtimestamp(at_ns / _NS, tz=UTC)
                # A recorded time maps onto the live monotonic timeline by its age now.
                d.warm_up(
                    (now_mono - (now_wall - at_ns / _NS), times[at_ns], merged[at_ns])
                    for at_ns in sorted(merged)
                )
                self.stats.warmed[device] = len(merged)
        if self.stats.warmed:
            log.info("fault watch: warmed up from %d readings of %d devices",
                     sum(self.stats.warmed.values()), len(self.stats.warmed))  # fmt: skip

    async def _ticker(self) -> None:
        while True:
            await self._clock.sleep(self._tick_s)
            mono, at = self._clock.monotonic(), self._clock.now()
            for d in self._detectors.values():
                self._say(d.tick(mono, at))
