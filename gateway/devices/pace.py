"""How long to wait for one device's answers, from how long it takes. Pure.

A slow controller (an oven board answering in 300-800 ms) behind a profile timeout of 0.5 s
would time out on every other request, be backed off as dead, and never be polled at the rate
it can take. :class:`Pace` adapts the request timeout of one device to its measured answers:

* the timeout is twice the slowest of the last ``window`` answers, never below the profile's
  ``timeout_s`` and never above ``cap_s`` (``Tuning.timeout_cap_s``); a slower answer raises it
  at once, and it comes down when the window is looked at again, every ``window`` answers (this
  runs on every request: ~0.3 us instead of ~1.3 us for a ``max`` over the window each time);
* a timeout of a device that answered recently doubles it (up to the cap): it is slow, not
  dead; a second timeout in a row forgets the answers and goes back to the profile's timeout,
  so a device that died costs its neighbours on a shared connection only that timeout per
  backoff period, never the cap;
* a device that never answered keeps the profile's timeout, unless an answer came after its
  timeout (the connection sees it arrive: ``DeviceTimeout.late_s``): that answer time counts
  like any other, so a controller slower than the profile's timeout on *every* request is
  still found out, while a dead one never is.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Pace"]


class Pace:
    """The adaptive request timeout of one device.

    Attributes:
        base_s: the profile's timeout, the least ever used.
        cap_s: the most ever used.
        timeout_s: the timeout for the next request.
    """

    def __init__(self, base_s: float, cap_s: float, window: int = 16) -> None:
        """Start at ``base_s`` with nothing measured.

        Raises:
            ValueError: ``base_s`` is not positive or ``window`` below 1.
        """
        if base_s <= 0 or window < 1:
            raise ValueError("base_s must be > 0 and window >= 1")
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self.timeout_s = base_s
        self._answers: deque[float] = deque(maxlen=window)
        self._window = window
        self._slowest = 0.0
        self._since_max = 0
        self._timeouts = 0

    @property
    def slowest_s(self) -> float | None:
        """The slowest of the recent answers (seconds), or None when none is known."""
        return self._slowest if self._answers else None

    def answered(self, seconds: float) -> None:
        """The device answered (data or an exception) after ``seconds``."""
        self._timeouts = 0
        self._answers.append(seconds)
        self._since_max += 1
        if seconds > self._slowest:
            # It leaves the window ``window`` answers from now: look again then.
            self._slowest, self._since_max = seconds, 0
        elif self._since_max >= self._window:
            self._since_max = 0
            self._slowest = max(self._answers)
        else:
            return  # nothing changed
        self.timeout_s = min(self.cap_s, max(self.base_s, 2.0 * self._slowest))

    def timed_out(self, late_s: float | None = None) -> None:
        """A request got no answer within ``timeout_s``.

        Args:
            late_s: how long an earlier request's answer took that came after its timeout,
                if one did: the device is slow, not silent.
        """
        if late_s is not None:
            self.answered(late_s)
            return
        self._timeouts += 1
        if self._timeouts == 1 and self._answers:
            self.timeout_s = min(self.cap_s, 2.0 * self.timeout_s)
        else:
            self._answers.clear()
            self._slowest = 0.0
            self._since_max = 0
            self.timeout_s = self.base_s
