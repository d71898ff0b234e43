"""Appliance actions triggered by routing: a fry ticket fires, so that vat's cook timer starts.

A site lists rules (``[[appliance_actions]]``)::

    [[appliance_actions]]
    station = "fry"              # the ticket's home station (a redirect to a backup screen
    items = ["fries", "wings"]   #   does not move the fryer, so the home station is matched)
    group = "fried"              # items of this menu group match too (either may be left out)
    device = "fryer1"
    point = "vat1_cook_time"
    value_from = "prep_s"        # the longest matching line's prep time

    [[appliance_actions]]        # then lower the basket and start the timer
    station = "fry"
    group = "fried"
    device = "fryer1"
    point = "vat1_timer_start"
    value = true

The rules a ticket triggers are written in file order, one at a time, so a cook time is set
before the timer that uses it starts.

When a ticket is first sent (version 1, status fired) and has a live line that matches, one write
of ``value`` goes to ``device``.``point``. Data flows one way: :class:`ActionService` takes
``TicketOut`` events and hands :class:`~gateway.devices.guard.WriteRequest` objects (source
``"action:<rule index>"``) to a ``write`` callable, in production ``DeviceService.write``, which
puts every one through the guard and the audit log. Nothing here talks to a device.

Choices worth knowing:

* **At most once per (ticket, rule), also across restarts.** Tickets are resent until a screen
  acks them; a resend must not start a timer twice. Keys are remembered in memory (bounded).
  After a restart the order service resends the unacked tickets from disk, and the previous run
  may already have started their timers (a timer restarted mid-cook is worse than one the cook
  starts by hand). Which tickets those are is *seen state*, handed over with
  :meth:`ActionService.already_sent` before the order service's first resend: they trigger
  nothing. The decision is not made on time. ``sent_at`` is a wall stamp, maybe of another boot:
  a Raspberry Pi that boots with an old clock (fake-hwclock, or 1970) would see every restored
  ticket as sent after this start and restart its timer, and a clock stepped back mid-service
  would make every new ticket look old. Monotonic time cannot say it either: it starts again
  at every boot, so no instant of the previous run can be compared with one of this run.
* **Stale writes are not sent.** A write that waited in the queue longer than ``max_age_s``
  of monotonic time (the device service was stuck) triggers nothing: the cook has started that
  timer by hand by then.
* **No retries.** A cook timer started late shows the cook a wrong time; a refused or failed write
  is counted and logged once per rule and reason, and the cook starts the timer by hand.
* **Bounded queue, drop-oldest.** If the device service is stuck, the newest tickets are the ones
  still worth acting on; drops are counted (``stats.dropped``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config import ActionRule
from gateway.contract import TicketStatus
from gateway.devices.guard import Approved, WriteGuard, WriteRequest
from gateway.errors import ConfigProblem, GatewayError
from gateway.events import TicketOut
from gateway.lifecycle import Service

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from uuid import UUID

    from gateway.clock import Clock
    from gateway.config import SiteConfig
    from gateway.contract import Ticket
    from gateway.devices.guard import Refused
    from gateway.devices.profile import Profile
    from gateway.events import OutboundEvent, Outbox

__all__ = [
    "ActionRule",
    "ActionService",
    "ActionStats",
    "Catalog",
    "check_actions",
    "plan_actions",
]

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 256
DEFAULT_MAX_AGE_S = 120.0
_REMEMBER = 20_000  # (ticket, rule) keys kept: far more than the tickets a shift keeps open


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the rules need of the menu: each item's group and prep time, modifiers' deltas."""

    groups: Mapping[str, str]
    prep_s: Mapping[str, int]
    prep_delta_s: Mapping[str, int]

    @classmethod
    def from_site(cls, cfg: SiteConfig) -> Catalog:
        """Index the site's menu."""
        return cls(
            groups={i.id: i.group for i in cfg.items},
            prep_s={i.id: i.prep_s for i in cfg.items},
            prep_delta_s={m.id: m.prep_delta_s for m in cfg.modifiers},
        )

    def line_prep_s(self, item: str, modifiers: Sequence[str]) -> int:
        """A line's prep time as the kitchen timed it (never below 0, like the order service)."""
        prep = self.prep_s.get(item, 0) + sum(self.prep_delta_s.get(m, 0) for m in modifiers)
        return max(0, prep)


def plan_actions(
    ticket: Ticket, rules: Sequence[ActionRule], catalog: Catalog
) -> list[tuple[int, WriteRequest]]:
    """The writes a ticket version triggers, as ``(rule index, request)``. Pure.

    Args:
        ticket: a ticket version as sent to a screen.
        rules: the site's rules, in file order (the index names the rule in ``source``).
        catalog: the menu's groups and prep times.

    Returns:
        One request per matching rule; empty unless this is version 1 of a fired ticket.
    """
    if ticket.version != 1 or ticket.status is not TicketStatus.FIRED:
        return []
    home = ticket.redirected_from or ticket.station
    planned: list[tuple[int, WriteRequest]] = []
    for n, rule in enumerate(rules):
        if rule.station != home:
            continue
        lines = [
            ln
            for ln in ticket.items
            if not ln.voided
            and (ln.item in rule.items or catalog.groups.get(ln.item) == rule.group)
        ]
        if not lines:
            continue
        if rule.value is not None:
            value: bool | int | float = rule.value
        else:
            # Fire by prep time sends the ticket when its longest line is due, so that line is
            # the one the appliance starts on now.
            value = max(catalog.line_prep_s(ln.item, ln.modifiers) for ln in lines)
        planned.append((n, WriteRequest(rule.device, rule.point, value, f"action:{n}")))
    return planned


@dataclass(slots=True)
class ActionStats:
    """Counters, exposed as data for health checks and tests."""

    planned: int = 0
    duplicates: int = 0
    stale: int = 0
    dropped: int = 0
    approved: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    failed: int = 0


class _Tap:
    """An outbox that forwards everything and shows tickets to the action service."""

    def __init__(self, inner: Outbox, service: ActionService) -> None:
        self._inner = inner
        self._service = service

    def send(self, event: OutboundEvent) -> None:
        self._inner.send(event)
        if isinstance(event, TicketOut):
            self._service.submit(event)

    def ack(self, token: object) -> None:
        self._inner.ack(token)

    def fail(self, token: object, error: Exception) -> None:
        self._inner.fail(token, error)


class ActionService(Service):
    """Ticket events in, guarded writes out: a :class:`~gateway.lifecycle.Service` (``actions``).

    Attributes:
        stats: what happened to the tickets seen.
    """

    name = "actions"

    def __init__(
        self,
        rules: Sequence[ActionRule],
        catalog: Catalog,
        write: Callable[[WriteRequest], Awaitable[Approved | Refused]],
        clock: Clock,
        *,
        max_queue: int = DEFAULT_QUEUE,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        """Wire the service; nothing runs until ``async with``.

        Args:
            rules: the site's rules, in file order.
            catalog: the menu (``Catalog.from_site(cfg)``).
            write: sends one request through the guard to the device, e.g.
                ``DeviceService.write``; may raise a ``GatewayError`` when the device fails.
            clock: its monotonic time measures how long a write waited in the queue.
            max_queue: requests waiting for ``write``; the oldest is dropped past it.
            max_age_s: a write that waited longer than this (monotonic seconds from
                :meth:`submit`) is dropped as stale.
        """
        if max_queue < 1:
            msg = "max_queue must be at least 1"
            raise ValueError(msg)
        self._rules = tuple(rules)
        self._catalog = catalog
        self._write = write
        self._clock = clock
        self._max_queue = max_queue
        self._max_age_s = max_age_s
        # (request, monotonic time it was queued at)
        self._queue: deque[tuple[WriteRequest, float]] = deque()
        self._wake = asyncio.Event()
        self._seen: OrderedDict[tuple[UUID, int], None] = OrderedDict()
        self._earlier: set[tuple[UUID, int]] = set()  # (ticket, rule) sent by an earlier run
        self._logged: set[tuple[str, str]] = set()
        self.stats = ActionStats()

    async def start(self) -> None:
        """Start the writer loop (``actions:writer``); ready to take tickets when entered."""
        self.spawn(self._writer(), "writer")

    async def stop(self) -> None:
        """Drop the queued requests (the writer has stopped; by the next start they are old)."""
        self._queue.clear()

    def tap(self, outbox: Outbox) -> Outbox:
        """An outbox that forwards to ``outbox`` and also hands every ticket to this service."""
        return _Tap(outbox, self)

    def already_sent(self, tickets: Iterable[UUID]) -> None:
        """Tickets an earlier run sent: their resends trigger nothing (see the module docstring).

        Call it with the ids of the unacknowledged tickets restored from disk, before the order
        service resends them.
        """
        for ticket_id in tickets:
            for n in range(len(self._rules)):
                self._earlier.add((ticket_id, n))

    def submit(self, event: TicketOut) -> None:
        """Queue the writes a ticket triggers (never blocks; called in the loop)."""
        planned = plan_actions(event.ticket, self._rules, self._catalog)
        if not planned:
            return
        queued_at = self._clock.monotonic()
        for n, request in planned:
            key = (event.ticket.ticket_id, n)
            if key in self._seen:
                self.stats.duplicates += 1
                continue
            self._remember(key)
            if key in self._earlier:
                self._earlier.discard(key)  # seen now: _seen keeps it from here on
                self.stats.stale += 1
                continue
            self.stats.planned += 1
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.stats.dropped += 1
                self._log_once("queue", "full", "action queue full: dropped the oldest write")
            self._queue.append((request, queued_at))
        self._wake.set()

    def _remember(self, key: tuple[UUID, int]) -> None:
        self._seen[key] = None
        if len(self._seen) > _REMEMBER:
            self._seen.popitem(last=False)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                request, queued_at = self._queue.popleft()
                if self._clock.monotonic() - queued_at > self._max_age_s:
                    self.stats.stale += 1
                    self._log_once("queue", "stale", f"{request.source}: waited too long, dropped")
                    continue
                await self._send(request)

    async def _send(self, request: WriteRequest) -> None:
        try:
            result = await self._write(request)
        except GatewayError as err:
            # The device service has logged and audited it; here it only costs this timer.
            self.stats.failed += 1
            self._log_once(request.source, "failed", f"{request.source}: write failed: {err}")
            return
        if isinstance(result, Approved):
            self.stats.approved += 1
            return
        self.stats.refused[result.kind.value] += 1
        self._log_once(
            request.source,
            result.kind.value,
            f"{request.source} ({request.device}.{request.point} = {request.value!r}) "
            f"was refused: {result.reason}",
        )

    def _log_once(self, subject: str, kind: str, message: str) -> None:
        if (subject, kind) in self._logged:
            log.debug(message)
            return
        self._logged.add((subject, kind))
        log.warning("%s (further ones are counted, not logged)", message)


def check_actions(
    rules: Sequence[ActionRule], cfg: SiteConfig, profiles: Mapping[str, Profile]
) -> list[ConfigProblem]:
    """Config check of the rules against the site and the profiles: every problem, with a fix.

    A constant ``value`` is put through the write guard as the rule would at run time; for
    ``value_from = "prep_s"`` each matching item's prep time (without modifiers) is.

    Args:
        rules: the rules, in file order (keys are ``appliance_actions[n]...``).
        cfg: the site, for stations, items, groups and devices.
        profiles: loaded profiles by id.

    Returns:
        The problems found; empty when every rule can fire and be approved.
    """
    problems: list[ConfigProblem] = []
    stations = {s.id for s in cfg.stations}
    groups = {g.id for g in cfg.groups}
    items = {i.id for i in cfg.items}
    devices = {d.id for d in cfg.devices}
    for n, rule in enumerate(rules):
        key = f"appliance_actions[{n}]"
        known = (
            (".station", rule.station, stations, "station"),
            (".group", rule.group, groups, "group"),
            (".device", rule.device, devices, "device"),
            *((".items", i, items, "item") for i in rule.items),
        )
        missing = [
            ConfigProblem(key + sub, f"unknown {what} '{v}'", _choices(pool))
            for sub, v, pool, what in known
            if v is not None and v not in pool
        ]
        problems += missing
        if missing:
            continue  # a write check against an unknown device would only repeat the problem
        if rule.value is not None:
            values: list[bool | int | float] = [rule.value]
        else:
            values = [i.prep_s for i in cfg.items if i.id in rule.items or i.group == rule.group]
        for value in dict.fromkeys(values):
            # A fresh guard per value: the rate window must not mistake the check for traffic.
            guard = WriteGuard(profiles, cfg.devices)
            verdict = guard.check(WriteRequest(rule.device, rule.point, value, f"action:{n}"))
            if not isinstance(verdict, Approved):
                problems.append(
                    ConfigProblem(
                        key,
                        f"writing {value!r} to {rule.device}.{rule.point} would be refused: "
                        f"{verdict.reason}",
                        "pick a writable point and a value inside its write range",
                    )
                )
    return problems


def _choices(pool: set[str]) -> str:
    names = sorted(pool)
    return f"use one of: {', '.join(names[:12]) or '(none defined)'}"
