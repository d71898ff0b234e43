"""A simulated board for running the node firmware under CPython (tests, demos). Not MicroPython.

Time is virtual by default: ``sleep_ms`` moves the clock on without sleeping, so a test drives
hours of readings instantly and reconnect backoff is deterministic. Sensor values are plain
attributes; a sensor named in ``failing`` raises ``OSError`` like a broken wire.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from firmware_stubs.hal import Hal

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SimHal"]


class SimHal(Hal):
    """A board whose sensors are attributes and whose clock is virtual (or real).

    Example::

        hal = SimHal(load_cell_g=5_000.0)
        node = ScaleNode(hal, "scale-1", site="demo", host="127.0.0.1", port=broker.port)
        node.step()
        hal.load_cell_g_value -= 150.0

    Attributes:
        load_cell_g_value: grams on the load cell (None: no load cell).
        temperature_c_value: probe temperature (None: no probe).
        door_open_value: door switch (None: no switch).
        battery_v_value: battery voltage (None: mains powered).
        rssi_dbm_value: Wi-Fi signal (None: unknown).
        failing: names of sensors that raise ``OSError`` ("load_cell_g", "temperature_c").
    """

    def __init__(
        self,
        *,
        load_cell_g: float | None = None,
        temperature_c: float | None = None,
        door_open: bool | None = None,
        battery_v: float | None = 3.9,
        rssi_dbm: int | None = -61,
        start: datetime | None = None,
        realtime: bool = False,
        seed: int = 0,
    ) -> None:
        """A board with the given sensor values; the clock starts at ``start`` (UTC)."""
        self.load_cell_g_value = load_cell_g
        self.temperature_c_value = temperature_c
        self.door_open_value = door_open
        self.battery_v_value = battery_v
        self.rssi_dbm_value = rssi_dbm
        self.failing: set[str] = set()
        self.realtime = realtime
        self._start = start or datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
        self._virtual_ms = 0
        self._t0 = time.monotonic()
        self._rng = random.Random(seed)  # noqa: S311 -- reconnect jitter, not secrets
        self._due: list[tuple[int, int, Callable[[], object]]] = []
        self._order = itertools.count()

    def schedule(self, after_ms: int, action: Callable[[], object]) -> None:
        """Run ``action`` when the virtual clock passes ``after_ms`` from now (a door opens)."""
        heapq.heappush(self._due, (self._virtual_ms + after_ms, next(self._order), action))

    def ticks_ms(self) -> int:
        """Milliseconds since the board started (virtual unless ``realtime``)."""
        if self.realtime:
            return int((time.monotonic() - self._t0) * 1000)
        return self._virtual_ms

    def sleep_ms(self, ms: int) -> None:
        """Move the virtual clock on, running scheduled actions (or really sleep: ``realtime``)."""
        if self.realtime:
            time.sleep(ms / 1000)
            return
        end = self._virtual_ms + ms
        while self._due and self._due[0][0] <= end:
            at, _, action = heapq.heappop(self._due)
            self._virtual_ms = max(self._virtual_ms, at)
            action()
        self._virtual_ms = end

    def utc_iso(self) -> str:
        """The board's UTC time with milliseconds."""
        now = self._start + timedelta(milliseconds=self.ticks_ms())
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

    def rand_ms(self, upto: int) -> int:
        """Seeded jitter."""
        return self._rng.randint(0, max(0, upto))

    def _value(self, name: str, value: float | None) -> float | None:
        if name in self.failing:
            raise OSError(f"{name} sensor not responding")
        return value

    def load_cell_g(self) -> float | None:
        """The load cell."""
        return self._value("load_cell_g", self.load_cell_g_value)

    def temperature_c(self) -> float | None:
        """The probe."""
        return self._value("temperature_c", self.temperature_c_value)

    def door_open(self) -> bool | None:
        """The door switch."""
        return self.door_open_value

    def battery_v(self) -> float | None:
        """The battery."""
        return self.battery_v_value

    def rssi_dbm(self) -> int | None:
        """The Wi-Fi signal."""
        return self.rssi_dbm_value
