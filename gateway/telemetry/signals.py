"""What a fault detector says, and what the alert book makes of it: the types they share.

Data flows one way: readings and availability changes go into the detectors
(``gateway.telemetry.detectors``), which say :class:`Signal` ("rule R of device D is now
violated", "... is over"); the alert book (``gateway.telemetry.alerts``) turns signals into alerts
that people see, acknowledge and that escalate; the food-safety record
(``gateway.telemetry.haccp``) keeps the excursions of food-safety rules and the corrective
actions. None of them does I/O; the services around them do.

Time: a detector is handed two times with every event. ``mono`` (seconds, monotonic: the
injected clock's ``monotonic()`` live, the readings' own timestamps in a backtest) decides
*when* ("held for 30 minutes"); ``at`` (wall time, timezone-aware) only stamps what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Priority", "Signal", "SignalKind"]


class Priority(StrEnum):
    """How urgent an alert is, most urgent first (escalation moves one step up)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    def escalated(self) -> Priority:
        """One level more urgent (critical stays critical)."""
        order = list(Priority)
        return order[max(0, order.index(self) - 1)]


SignalKind = Literal["open", "clear"]


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule of a device started or stopped being violated.

    Attributes:
        kind: ``open`` (violated now) or ``clear`` (no longer, past its hysteresis).
        device: the device id.
        rule: the rule's id, unique per device (``cold_holding``, ``trend``, ``silent``...).
        priority: how urgent, from the rule's configuration.
        at: when the detector decided (the reading's time, or the tick's).
        point: the point the rule watches, None for rules about the device (``silent``).
        value: the value that decided, when there is one.
        limit: the limit it was judged against, when there is one.
        since: when the condition began (for a limit held for a duration: when the limit was
            first crossed), which may be well before ``at``.
        food_safety: whether this is a food-safety limit (the HACCP record keeps its
            excursions).
        text: what happened, in words, for people.
    """

    kind: SignalKind
    device: str
    rule: str
    priority: Priority
    at: datetime
    point: str | None = None
    value: float | None = None
    limit: float | None = None
    since: datetime | None = None
    food_safety: bool = False
    text: str = ""

    @property
    def alert_id(self) -> str:
        """The stable id of the alert this signal is about: one per device and rule."""
        return f"{self.device}:{self.rule}"
