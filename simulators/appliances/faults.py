"""Faults a simulated appliance can suffer, on command or on a schedule.

=============  ===========================================================================
``hang``       the device still accepts TCP connections but never answers (a black hole);
               writes sent meanwhile are lost
``gone``       the server is stopped: connections are refused; it comes back on the same port
``stuck``      one point (``point``) freezes at its last value while the physics goes on
``compressor`` cold rooms only: the compressor fails, the cabinet drifts up
``booster``    dishwashers only: the rinse booster heater fails, rinses get too cold
=============  ===========================================================================

A schedule is a list of :class:`FaultWindow`; on the command line one is written
``DEVICE:FAULT[=POINT]@START[+DURATION]`` in real seconds after start, e.g.
``fridge-1:hang@30+20`` or ``fryer-1:stuck=vat1_oil_temp@10``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Fault", "FaultWindow", "parse_fault"]


class Fault(StrEnum):
    """What can go wrong with a simulated appliance."""

    HANG = "hang"
    GONE = "gone"
    STUCK = "stuck"
    COMPRESSOR = "compressor"
    BOOSTER = "booster"


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault that starts ``start_s`` real seconds after the appliance started.

    Attributes:
        fault: what goes wrong.
        start_s: when, in real seconds after the appliance was entered.
        duration_s: how long it lasts; None: until cleared by hand.
        point: the point concerned (``stuck`` only).
    """

    fault: Fault
    start_s: float
    duration_s: float | None = None
    point: str | None = None

    def __post_init__(self) -> None:
        """Check the window makes sense."""
        if self.start_s < 0 or (self.duration_s is not None and self.duration_s <= 0):
            raise ValueError(f"a fault starts at >= 0 s and lasts > 0 s: {self}")
        if (self.fault is Fault.STUCK) != (self.point is not None):
            raise ValueError("'stuck' needs a point, and only 'stuck' takes one")


_SPEC = re.compile(
    r"^(?P<device>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<fault>[a-z]+)(?:=(?P<point>[A-Za-z0-9_.-]+))?"
    r"@(?P<start>\d+(?:\.\d*)?)(?:\+(?P<duration>\d+(?:\.\d*)?))?$"
)


def parse_fault(spec: str) -> tuple[str, FaultWindow]:
    """Parse ``DEVICE:FAULT[=POINT]@START[+DURATION]`` into a device id and a window.

    Raises:
        ValueError: the text does not follow the pattern or names an unknown fault.
    """
    m = _SPEC.match(spec)
    if m is None:
        raise ValueError(
            f"fault {spec!r} is not DEVICE:FAULT[=POINT]@START[+DURATION], e.g. fridge-1:hang@30+20"
        )
    try:
        fault = Fault(m["fault"])
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise ValueError(f"unknown fault {m['fault']!r} in {spec!r} (known: {known})") from None
    duration = float(m["duration"]) if m["duration"] else None
    return m["device"], FaultWindow(fault, float(m["start"]), duration, m["point"])
