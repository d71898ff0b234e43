"""Whether a device is online, degraded or offline, from the outcomes of its polls. Pure.

Each poll of a device ends in one :class:`Outcome`; :class:`Availability` turns the sequence into
a state and reports a change exactly once (STYLE.md 7: health is a state change, logged once when
it fails and once when it recovers, and exposed as data)::

    outcome        from (none yet)   from online          from degraded        from offline
    full           online            online               online               online
    partial        degraded          degraded             degraded             degraded
    failed         offline           degraded, or offline after ``offline_after`` in a row
    disconnected   offline           offline              offline              offline
    unreachable    offline           offline              offline              offline
    busy           (no change: a busy device asked to be asked later, it did not fail)

* A device that has never answered is offline: there is nothing "degraded" about a device the
  gateway has not reached yet.
* One full poll is enough to be back online (Home Assistant #55284: entities that stayed
  unavailable after the link recovered).
* A closed or refused connection is offline at once: waiting for more failures would only
  delay the news, since no request can reach the device anyway. So is a unit that a Modbus
  TCP-to-RTU gateway says it cannot reach (exceptions 10 and 11): only that unit, not the
  gateway's other units.

The machine never invents readings: it only judges outcomes, by counting them, never by time.
Time comes from an injected clock: its wall reading stamps the changes (``AvailabilityChanged.at``,
``last_ok``); the "for 42 s" in a log line is monotonic time, so a step of the wall clock
neither flips a state nor shows a state held for -7200 s.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.contract import DeviceState
from gateway.devices.events import AvailabilityChanged

if TYPE_CHECKING:
    from datetime import datetime

    from gateway.clock import Clock

__all__ = ["Availability", "Outcome", "next_state"]

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """How one poll of a device went."""

    FULL = "full"  # every read of the poll succeeded
    PARTIAL = "partial"  # some reads succeeded, some failed (e.g. one block refused)
    FAILED = "failed"  # nothing read, though connected: timeout, refusal, bad response
    DISCONNECTED = "disconnected"  # nothing read: no connection to the device
    UNREACHABLE = "unreachable"  # a TCP-to-RTU gateway cannot reach the unit (exception 10/11)
    BUSY = "busy"  # the device said busy (exception 5/6): asked again later, not a failure


def next_state(
    state: DeviceState | None, outcome: Outcome, failures: int, offline_after: int
) -> DeviceState:
    """The state after ``outcome``.

    Args:
        state: the current state; None before the first outcome.
        outcome: how the poll went.
        failures: failed polls in a row, this one included (0 unless ``outcome`` is FAILED).
        offline_after: failed polls in a row that make a device offline.

    Returns:
        The new state (maybe the same).
    """
    if outcome is Outcome.BUSY:
        return state or DeviceState.OFFLINE
    if outcome is Outcome.FULL:
        return DeviceState.ONLINE
    if outcome is Outcome.PARTIAL:
        return DeviceState.DEGRADED
    if outcome in (Outcome.DISCONNECTED, Outcome.UNREACHABLE) or failures >= offline_after:
        return DeviceState.OFFLINE
    if state is None or state is DeviceState.OFFLINE:
        return DeviceState.OFFLINE
    return DeviceState.DEGRADED


class Availability:
    """The availability of one device.

    Attributes:
        device: the device id.
        failures: failed polls in a row (FAILED or DISCONNECTED outcomes).
        last_ok: when something was last read from the device, or None.
        changes: how many times the state changed.
    """

    def __init__(self, device: str, clock: Clock, *, offline_after: int = 3) -> None:
        """Start with no outcome seen (the state reads as offline).

        Args:
            device: the device id, for events and log lines.
            clock: where the time of changes comes from.
            offline_after: failed polls in a row that make the device offline (>= 1); the ones
                before make it degraded.

        Raises:
            ValueError: ``offline_after`` is below 1.
        """
        if offline_after < 1:
            raise ValueError(f"offline_after must be >= 1, got {offline_after}")
        self.device = device
        self._clock = clock
        self._offline_after = offline_after
        self._state: DeviceState | None = None
        self._since: float | None = None  # monotonic time of the last change
        self.failures = 0
        self.last_ok: datetime | None = None
        self.changes = 0

    @property
    def state(self) -> DeviceState:
        """The current state (offline until the first poll has ended)."""
        return self._state or DeviceState.OFFLINE

    @property
    def known(self) -> bool:
        """Whether any poll has ended yet."""
        return self._state is not None

    def observe(
        self, outcome: Outcome, detail: str = "", at: datetime | None = None
    ) -> AvailabilityChanged | None:
        """Take one poll's outcome; return the change it causes, if any.

        Args:
            outcome: how the poll went.
            detail: the error behind a failure, in words (ignored for FULL).
            at: when the poll ended (wall time, the change's stamp), if the caller has read
                the clock already; else now.

        Returns:
            The change (logged here, once), or None when the state stays the same.
        """
        if outcome is Outcome.BUSY:
            return None  # neither a failure nor a success: the state and the count stay
        now = self._clock.now() if at is None else at
        if outcome is Outcome.FULL and self._state is DeviceState.ONLINE:
            # The steady state of a healthy device, once per poll: nothing can change.
            self.failures = 0
            self.last_ok = now
            return None
        if outcome in (Outcome.FULL, Outcome.PARTIAL):
            self.failures = 0
            self.last_ok = now
        else:
            self.failures += 1
        new = next_state(self._state, outcome, self.failures, self._offline_after)
        if new is self._state:
            return None
        change = AvailabilityChanged(self.device, new, self._reason(new, outcome, detail), now)
        mono = self._clock.monotonic()
        self._log(change, mono)
        self._state, self._since = new, mono
        self.changes += 1
        return change

    def stop(self, reason: str) -> AvailabilityChanged | None:
        """Mark the device offline because nobody watches it any more (the gateway stops).

        Not logged per device: the caller logs once for all of them.

        Returns:
            The change, or None if the device was offline already.
        """
        if self.state is DeviceState.OFFLINE:
            return None
        now = self._clock.now()
        self._state, self._since = DeviceState.OFFLINE, self._clock.monotonic()
        self.changes += 1
        return AvailabilityChanged(self.device, DeviceState.OFFLINE, reason, now)

    def _reason(self, new: DeviceState, outcome: Outcome, detail: str) -> str:
        if new is DeviceState.ONLINE:
            return "all reads ok"
        if outcome is Outcome.PARTIAL:
            return f"some reads failed: {detail}"
        if outcome in (Outcome.DISCONNECTED, Outcome.UNREACHABLE):
            return detail or "not connected"
        if self.failures == 1:
            return f"a poll failed: {detail}"
        return f"{self.failures} polls in a row failed: {detail}"

    def _log(self, change: AvailabilityChanged, mono: float) -> None:
        since = "" if self._since is None else f" for {mono - self._since:.0f} s"
        if change.state is DeviceState.ONLINE:
            was = "" if self._state is None else f" (was {self._state.value}{since})"
            log.info("device %s is online%s", self.device, was)
        else:
            log.warning(
                "device %s is %s%s: %s",
                self.device,
                change.state.value,
                "" if self._state is None else f" (was {self._state.value}{since})",
                change.reason,
            )
