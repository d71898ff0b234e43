"""The alert book: what detectors and the gateway's services say, as alerts people act on. Pure.

An alert has a stable id (``{subject}:{rule}``: ``fridge-1:cold_holding``, ``grill:kds_silent``)
and at most one occurrence of it is active at a time. Its life, each step an
:class:`AlertEvent` with the next sequence number:

* **opened** by the first ``open`` signal; further ones while it is active are repeats and say
  nothing (deduplicated);
* **escalated** one priority level when nobody acknowledged it within its priority's time
  (:class:`Timing`), counted from when it got that priority, so one level per unacknowledged
  period, never more; a critical one cannot go higher and is **renotified** instead;
* **acknowledged** once (a second acknowledgement is answered, not applied): it never escalates
  or renotifies again;
* **cleared** by a ``clear`` signal (the detector's hysteresis is behind it), which removes it
  from the active set. A *latched* alert is one that nothing will clear (a dead letter, a clock
  step): its acknowledgement clears it.

Recently cleared alerts are remembered (the last :data:`CLEARED_KEPT`), so that an
acknowledgement that comes late is told the alert is over, not that it never existed.

Every event carries the alert as it is after it: replaying events in sequence order onto the
state they started from (:meth:`AlertBook.replay`) gives the state after them, which is how the
store recovers events written after its last snapshot.

Time: ``mono`` (monotonic seconds) decides when an alert escalates; ``at`` (wall time) only
stamps events. A restored book counts every unacknowledged alert's current period afresh from
its start (a restart can delay an escalation by one period, never bring one early).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime  # noqa: TC003 - the store's pydantic adapter reads the annotations
from typing import TYPE_CHECKING, Literal

from gateway.contract import AckStatus
from gateway.telemetry.signals import Priority

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gateway.config import AlertsConfig
    from gateway.contract import FieldError
    from gateway.telemetry.signals import Signal

__all__ = [
    "CLEARED_KEPT",
    "AckResult",
    "AlertBook",
    "AlertEvent",
    "AlertRecord",
    "EventKind",
    "Timing",
]

#: Cleared alerts remembered, so a late acknowledgement is told the alert is over.
CLEARED_KEPT = 500

EventKind = Literal["opened", "escalated", "renotified", "acknowledged", "cleared"]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One occurrence of an alert, as it stands.

    Attributes:
        alert_id: ``{subject}:{rule}``.
        subject: the device, station, sink or ``gateway`` it is about.
        rule: the detector's rule, or the kind of the gateway's own notice.
        priority: its priority now (escalations raise it).
        started_at: when the condition began.
        message: what happened, for people.
        point: the point the rule watches, if any.
        value: the value that decided, if any.
        limit: the limit it was judged against, if any.
        food_safety: whether a food-safety limit is behind it.
        latched: nothing will clear it: its acknowledgement does.
        acked_by: who acknowledged it.
        acked_at: when.
        note: what they said.
        escalations: how many times it went up a level.
        cleared_at: when it was cleared (only once it is over).
    """

    alert_id: str
    subject: str
    rule: str
    priority: Priority
    started_at: datetime
    message: str
    point: str | None = None
    value: float | None = None
    limit: float | None = None
    food_safety: bool = False
    latched: bool = False
    acked_by: str | None = None
    acked_at: datetime | None = None
    note: str | None = None
    escalations: int = 0
    cleared_at: datetime | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether someone acknowledged it."""
        return self.acked_by is not None


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A step in an alert's life.

    Attributes:
        seq: its place in the book's durable sequence (1, 2, ...).
        event: what happened.
        alert: the alert as it is after the event.
        at: when (wall time).
        message: what to say: the alert's own message, or for ``cleared`` what ended it.
    """

    seq: int
    event: EventKind
    alert: AlertRecord
    at: datetime
    message: str


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an acknowledgement came to.

    Attributes:
        status: acknowledged now, already, cleared before anyone did, unknown, or unreadable.
        alert_id: the id it named (None when it could not be read).
        alert: the alert as it is now (or was when it cleared); None when unknown.
        events: what it changed (empty unless ``status`` is ``acknowledged``).
        errors: why it could not be read (``rejected`` only).
    """

    status: AckStatus
    alert_id: str | None
    alert: AlertRecord | None = None
    events: tuple[AlertEvent, ...] = ()
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class Timing:
    """How long an unacknowledged alert stays at each priority (None: it stays there).

    For critical, the time between renotifications.
    """

    after_s: Mapping[Priority, float | None]

    @classmethod
    def from_config(cls, cfg: AlertsConfig) -> Timing:
        """From the site's ``[alerts]``."""
        t = cfg.times()
        given = {
            Priority.CRITICAL: cfg.renotify_s,
            Priority.HIGH: t.high,
            Priority.MEDIUM: t.medium,
            Priority.LOW: t.low,
        }
        return cls({p: (s if s > 0 else None) for p, s in given.items()})

    def period(self, priority: Priority) -> float | None:
        """Seconds before an unacknowledged alert at ``priority`` is escalated (or renotified)."""
        return self.after_s.get(priority)


class AlertBook:
    """The active alerts, and what each signal, acknowledgement and tick does to them."""

    def __init__(
        self,
        timing: Timing,
        *,
        active: Iterable[AlertRecord] = (),
        cleared: Iterable[AlertRecord] = (),
        seq: int = 0,
        mono: float = 0.0,
    ) -> None:
        """A book holding ``active`` (restored) with ``seq`` the last event's number.

        Args:
            timing: the escalation times.
            active: the active alerts (from the store).
            cleared: recently cleared ones, oldest first.
            seq: the number of the last event already made.
            mono: now (monotonic): restored unacknowledged alerts start a fresh period.
        """
        self._timing = timing
        self._active: dict[str, AlertRecord] = {}
        self._due: dict[str, float] = {}
        self._cleared: OrderedDict[str, AlertRecord] = OrderedDict()
        self.seq = seq
        for rec in cleared:
            self._remember(rec)
        for rec in active:
            self._active[rec.alert_id] = rec
            self._schedule(rec, mono)

    # --- what is there ------------------------------------------------------------------

    @property
    def active(self) -> list[AlertRecord]:
        """The active alerts, most urgent first, then oldest first."""
        order = list(Priority)
        return sorted(
            self._active.values(),
            key=lambda r: (order.index(r.priority), r.started_at, r.alert_id),
        )

    @property
    def cleared(self) -> list[AlertRecord]:
        """The recently cleared alerts, oldest first."""
        return list(self._cleared.values())

    def get(self, alert_id: str) -> AlertRecord | None:
        """The active alert with this id."""
        return self._active.get(alert_id)

    @property
    def next_due(self) -> float | None:
        """When (monotonic) the next escalation or renotification is due, if any is."""
        return min(self._due.values(), default=None)

    # --- changes ------------------------------------------------------------------------

    def apply(
        self, signal: Signal, mono: float, at: datetime, *, latched: bool = False
    ) -> list[AlertEvent]:
        """Open or clear the alert ``signal`` is about.

        Args:
            signal: what a detector (or a service's notice) said.
            mono: now, monotonic.
            at: now, wall time.
            latched: for an ``open``: nothing will clear this alert; its acknowledgement will.

        Returns:
            The events it made: one ``opened`` or ``cleared``, or none (a repeat while active,
            a clear of an alert that is not active).
        """
        alert_id = signal.alert_id
        if signal.kind == "clear":
            rec = self._active.pop(alert_id, None)
            if rec is None:
                return []
            self._due.pop(alert_id, None)
            rec = replace(rec, cleared_at=at)
            self._remember(rec)
            return [self._event("cleared", rec, at, signal.text or f"{alert_id} is over")]
        if alert_id in self._active:
            return []
        rec = AlertRecord(
            alert_id=alert_id,
            subject=signal.device,
            rule=signal.rule,
            priority=signal.priority,
            started_at=signal.since or signal.at,
            message=signal.text or f"{signal.rule} on {signal.device}",
            point=signal.point,
            value=signal.value,
            limit=signal.limit,
            food_safety=signal.food_safety,
            latched=latched,
        )
        self._cleared.pop(alert_id, None)  # a new occurrence: the old one is history
        self._active[alert_id] = rec
        self._schedule(rec, mono)
        return [self._event("opened", rec, at, rec.message)]

    def ack(self, alert_id: str, by: str, note: str, at: datetime) -> AckResult:
        """Someone acknowledges ``alert_id``; the first acknowledgement is the one kept.

        Returns:
            ``acknowledged`` with its events (``acknowledged``, and ``cleared`` for a latched
            alert); ``already_acknowledged`` for an active or recently cleared alert someone
            acknowledged before; ``cleared`` for one that cleared unacknowledged; ``unknown``.
        """
        rec = self._active.get(alert_id)
        if rec is None:
            old = self._cleared.get(alert_id)
            if old is None:
                return AckResult(AckStatus.UNKNOWN, alert_id)
            status = AckStatus.ALREADY_ACKNOWLEDGED if old.acknowledged else AckStatus.CLEARED
            return AckResult(status, alert_id, old)
        if rec.acknowledged:
            return AckResult(AckStatus.ALREADY_ACKNOWLEDGED, alert_id, rec)
        rec = replace(rec, acked_by=by, acked_at=at, note=note)
        self._due.pop(alert_id, None)
        events = [self._event("acknowledged", rec, at, rec.message)]
        if rec.latched:
            del self._active[alert_id]
            rec = replace(rec, cleared_at=at)
            self._remember(rec)
            events.append(self._event("cleared", rec, at, f"acknowledged by {by}: {note}"))
        else:
            self._active[alert_id] = rec
        return AckResult(AckStatus.ACKNOWLEDGED, alert_id, rec, tuple(events))

    def tick(self, mono: float, at: datetime) -> list[AlertEvent]:
        """Escalate (or renotify) every unacknowledged alert whose period is over.

        An alert goes up one level per call at most, and its next period counts from ``mono``:
        a late tick never makes up for lost time by escalating twice.
        """
        due = sorted((t, alert_id) for alert_id, t in self._due.items() if t <= mono)
        events = []
        for _, alert_id in due:
            rec = self._active[alert_id]
            if rec.priority is Priority.CRITICAL:
                kind: EventKind = "renotified"
            else:
                kind = "escalated"
                up = rec.priority.escalated()
                rec = replace(rec, priority=up, escalations=rec.escalations + 1)
                self._active[alert_id] = rec
            self._schedule(rec, mono)
            events.append(self._event(kind, rec, at, rec.message))
        return events

    def replay(self, events: Iterable[AlertEvent], mono: float) -> int:
        """Bring the book up to date with events made after its state (in sequence order).

        Events at or below the book's ``seq`` are skipped; an unacknowledged alert they leave
        active starts a fresh period at ``mono``. Returns how many were applied.
        """
        applied = 0
        for ev in events:
            if ev.seq <= self.seq:
                continue
            alert_id = ev.alert.alert_id
            if ev.event == "cleared":
                self._active.pop(alert_id, None)
                self._due.pop(alert_id, None)
                self._remember(ev.alert)
            else:
                self._cleared.pop(alert_id, None)
                self._active[alert_id] = ev.alert
                self._schedule(ev.alert, mono)
            self.seq = ev.seq
            applied += 1
        return applied

    # --- inside -------------------------------------------------------------------------

    def _schedule(self, rec: AlertRecord, mono: float) -> None:
        period = self._timing.period(rec.priority)
        if rec.acknowledged or period is None:
            self._due.pop(rec.alert_id, None)
        else:
            self._due[rec.alert_id] = mono + period

    def _remember(self, rec: AlertRecord) -> None:
        self._cleared.pop(rec.alert_id, None)
        self._cleared[rec.alert_id] = rec
        while len(self._cleared) > CLEARED_KEPT:
            self._cleared.popitem(last=False)

    def _event(self, kind: EventKind, rec: AlertRecord, at: datetime, message: str) -> AlertEvent:
        self.seq += 1
        return AlertEvent(self.seq, kind, rec, at, message)
