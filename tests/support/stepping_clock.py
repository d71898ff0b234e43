"""``python -m tests.support.stepping_clock ARGS...``: the gateway command on a clock that steps.

Each SIGUSR1 steps the process's wall clock (``SystemClock.now``) forward by two hours, as NTP
does when it first reaches a server on a box that booted with an old time; the monotonic clock
is untouched. Used to see a step end to end in a real process without touching the machine's
own clock.
"""

from __future__ import annotations

import signal
import sys
from datetime import timedelta
from typing import Any

from gateway.cli import main
from gateway.clock import SystemClock

STEP = timedelta(hours=2)
_offset = [timedelta(0)]
_real_now = SystemClock.now


def _now(self: SystemClock) -> Any:
    return _real_now(self) + _offset[0]


def _step(_signum: int, _frame: object) -> None:
    _offset[0] += STEP


if __name__ == "__main__":
    SystemClock.now = _now  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _step)
    sys.exit(main(sys.argv[1:]))
