"""Appliance actions (gateway.devices.actions): matching, once per ticket and rule, the queue."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from gateway.clock import ManualClock
from gateway.config import DeviceInstance
from gateway.contract import (
    Dining,
    OrderLine,
    OrderRequest,
    Ticket,
    TicketItem,
    TicketStatus,
)
from gateway.devices.actions import (
    ActionRule,
    ActionService,
    Catalog,
    check_actions,
    plan_actions,
)
from gateway.devices.guard import Approved, Refused, WriteGuard, WriteRequest
from gateway.devices.profile import load_profiles
from gateway.errors import DeviceTimeout
from gateway.events import AlertOut, Notice, TicketOut
from gateway.routing.kitchen import Kitchen, SendTicket
from gateway.routing.orders import OrderValidator, PricedOrder
from gateway.routing.rules import RouteTable
from gateway.site_file import parse_site

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from gateway.config import SiteConfig
    from gateway.events import OutboundEvent

T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)
PROFILES = load_profiles()  # the shipped fryer-2vat: vat1_cook_time 10..900 s, coil timer start

SITE: dict[str, Any] = {
    "site": {"id": "bistro", "name": "Bistro"},
    "tables": {"count": 4},
    "stations": [{"id": "fry", "name": "Fry", "backup": "grill"}, {"id": "grill", "name": "G"}],
    "groups": [{"id": "fried", "names": {"en": "Fried"}}, {"id": "mains", "names": {"en": "M"}}],
    "modifiers": [
        {"id": "extra_crispy", "names": {"en": "Extra crispy"}, "prep_delta_s": 60},
        {"id": "light", "names": {"en": "Light"}, "prep_delta_s": -600},
    ],
    "items": [
        {
            "id": "fries",
            "group": "fried",
            "names": {"en": "Fries"},
            "price": 400,
            "prep_s": 180,
            "modifiers": ["extra_crispy", "light"],
        },
        {"id": "wings", "group": "fried", "names": {"en": "Wings"}, "price": 900, "prep_s": 420},
        {"id": "fish", "group": "fried", "names": {"en": "Fish"}, "price": 1400, "prep_s": 1200},
        {"id": "steak", "group": "mains", "names": {"en": "Steak"}, "price": 2500, "prep_s": 600},
    ],
    "routes": [{"group": "fried", "station": "fry"}, {"group": "mains", "station": "grill"}],
    "devices": [
        {"id": "fryer1", "profile": "fryer-2vat", "host": "127.0.0.1", "station": "fry"},
        {
            "id": "fryer2",
            "profile": "fryer-2vat",
            "host": "127.0.0.1",
            "unit": 2,
            "writes": {"vat1_cook_time": {"min": 60, "max": 300}},
        },
    ],
}
CFG = parse_site(SITE)
CATALOG = Catalog.from_site(CFG)

TIME = ActionRule(
    station="fry",
    items=("fries", "wings"),
    device="fryer1",
    point="vat1_cook_time",
    value_from="prep_s",
)
START = ActionRule(station="fry", group="fried", device="fryer1", point="vat1_timer_start", value=1)


def line(item: str, *mods: str, voided: bool = False, n: int = 0) -> TicketItem:
    return TicketItem(
        line_id=f"L{n}",
        item=item,
        name=item,
        qty=1,
        modifiers=list(mods),
        course=1,
        station="fry",
        fire_at=T0,
        voided=voided,
    )


def ticket(*items: TicketItem, **kw: Any) -> Ticket:
    fields: dict[str, Any] = {
        "ticket_id": uuid4(),
        "version": 1,
        "order_id": uuid4(),
        "table": "T1",
        "station": "fry",
        "course": 1,
        "dining": Dining.DINE_IN,
        "items": list(items) or [line("fries")],
        "fire_at": T0,
        "status": TicketStatus.FIRED,
        "sent_at": T0,
    }
    return Ticket(**(fields | kw))


def values(planned: list[tuple[int, WriteRequest]]) -> list[tuple[int, str, Any, str]]:
    return [(n, r.point, r.value, r.source) for n, r in planned]


# --- the rule model ------------------------------------------------------------------------------


def test_rule_values_keep_their_type() -> None:
    assert ActionRule.model_validate(START.model_dump() | {"value": 1}).value == 1
    assert ActionRule.model_validate(START.model_dump() | {"value": True}).value is True
    assert type(ActionRule.model_validate(START.model_dump() | {"value": 1}).value) is int
    assert ActionRule.model_validate(START.model_dump() | {"value": 175.5}).value == 175.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": None}, "exactly one of value or value_from"),
        ({"value_from": "prep_s"}, "exactly one of value or value_from"),
        ({"value": None, "value_from": "qty"}, "prep_s"),
        ({"group": None, "items": ()}, "give items, group or both"),
        ({"device": "fryer 1"}, "pattern"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_rule_validation(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ActionRule.model_validate(START.model_dump() | change)


# --- planning (pure) -----------------------------------------------------------------------------


def test_first_version_of_a_fired_ticket_triggers_every_matching_rule_in_order() -> None:
    planned = plan_actions(ticket(line("fries")), [TIME, START], CATALOG)
    assert values(planned) == [
        (0, "vat1_cook_time", 180, "action:0"),
        (1, "vat1_timer_start", 1, "action:1"),
    ]
    assert all(r.device == "fryer1" for _, r in planned)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (ticket(line("fish")), [1]),  # by group only
        (ticket(line("fries"), version=2), []),  # an edit or a resend of a new version
        (ticket(line("fries"), status=TicketStatus.VOIDED), []),
        (ticket(line("fries"), status=TicketStatus.HELD), []),
        (ticket(line("fries"), station="grill"), []),
        (ticket(line("fries"), station="grill", redirected_from="fry"), [0, 1]),  # home station
        (ticket(line("fries", voided=True), line("steak", n=1)), []),
        (ticket(line("steak")), []),
    ],
)
def test_which_tickets_match(t: Ticket, expected: list[int]) -> None:
    assert [n for n, _ in plan_actions(t, [TIME, START], CATALOG)] == expected


def test_prep_time_is_the_longest_matching_line_with_its_modifiers() -> None:
    t = ticket(line("fries", "extra_crispy"), line("wings", n=1), line("fish", n=2))
    # fish is not in TIME's items; wings (420) beats fries + crispy (240).
    assert values(plan_actions(t, [TIME], CATALOG)) == [(0, "vat1_cook_time", 420, "action:0")]
    t = ticket(line("fries", "extra_crispy"))
    assert plan_actions(t, [TIME], CATALOG)[0][1].value == 240
    t = ticket(line("fries", "light"))  # 180 - 600 is never below 0
    assert plan_actions(t, [TIME], CATALOG)[0][1].value == 0


# --- the service ---------------------------------------------------------------------------------


class FakeDevices:
    """Stands in for DeviceService.write: records requests, answers from a script."""

    def __init__(self, answer: Callable[[WriteRequest], Approved | Refused] | None = None) -> None:
        self.requests: list[WriteRequest] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._answer = answer

    async def write(self, request: WriteRequest) -> Approved | Refused:
        await self.gate.wait()
        self.requests.append(request)
        if self._answer is not None:
            return self._answer(request)
        point = PROFILES["fryer-2vat"].point(request.point)
        assert point is not None
        return Approved(request, point, [1])


def run(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(main)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def service(
    write: Callable[[WriteRequest], Awaitable[Approved | Refused]],
    rules: tuple[ActionRule, ...] = (TIME, START),
    **kw: Any,
) -> ActionService:
    return ActionService(rules, CATALOG, write, ManualClock(T0), **kw)


def test_writes_once_per_ticket_and_rule_whatever_the_resends() -> None:
    devices = FakeDevices()

    async def main() -> None:
        async with service(devices.write) as actions:
            t = ticket(line("fries"))
            for _ in range(5):  # the order service resends until the screen acks
                actions.submit(TicketOut(t))
                await settle()
            actions.submit(TicketOut(t.model_copy(update={"version": 2})))
            await settle()
            assert [(r.point, r.value, r.source) for r in devices.requests] == [
                ("vat1_cook_time", 180, "action:0"),
                ("vat1_timer_start", 1, "action:1"),
            ]
            assert actions.stats.approved == 2
            assert actions.stats.duplicates == 8
            assert actions.stats.planned == 2

    run(main())


def test_tickets_of_an_earlier_run_trigger_nothing() -> None:
    devices = FakeDevices()
    clock = ManualClock(T0)

    async def main() -> None:
        async with ActionService((TIME, START), CATALOG, devices.write, clock) as actions:
            # After a restart, unacked tickets are resent from disk: the previous run may have
            # started those timers already. The gateway names them before they are resent.
            earlier, new = ticket(), ticket()
            actions.already_sent([earlier.ticket_id])
            actions.submit(TicketOut(earlier))
            actions.submit(TicketOut(earlier))  # resent again: a duplicate, not stale twice
            actions.submit(TicketOut(new))
            await settle()
            assert [r.source for r in devices.requests] == ["action:0", "action:1"]
            assert actions.stats.stale == 2  # the earlier ticket's two rules
            assert actions.stats.duplicates == 2

    run(main())


@pytest.mark.parametrize("step_s", [-7200.0, 7200.0])
def test_a_wall_clock_step_changes_no_decision(step_s: float) -> None:
    devices = FakeDevices()
    clock = ManualClock(T0)

    async def main() -> None:
        async with ActionService((TIME, START), CATALOG, devices.write, clock) as actions:
            # A ticket of an earlier boot stamped hours "ahead" of a clock that booted behind,
            # and a new one stamped before the wall clock was stepped: neither time decides.
            earlier = ticket(sent_at=T0 + timedelta(hours=3))
            actions.already_sent([earlier.ticket_id])
            fresh = ticket(sent_at=T0)
            clock.step_wall(step_s)
            actions.submit(TicketOut(earlier))
            actions.submit(TicketOut(fresh))
            await settle()
            assert len(devices.requests) == 2  # the fresh ticket's two rules, nothing else
            assert actions.stats.stale == 2

    run(main())


def test_writes_that_waited_too_long_for_the_device_service_are_dropped() -> None:
    devices = FakeDevices()
    devices.gate.clear()  # the device service is stuck
    clock = ManualClock(T0)

    async def main() -> None:
        async with ActionService((START,), CATALOG, devices.write, clock, max_age_s=60) as actions:
            actions.submit(TicketOut(ticket()))
            await settle()  # the writer takes it and waits on the device
            actions.submit(TicketOut(ticket()))  # queued at 0 s
            clock.advance(30)
            actions.submit(TicketOut(ticket()))  # queued at 30 s
            clock.advance(31)
            clock.step_wall(-7200)  # wall time has no say in how long a write waited
            devices.gate.set()
            await settle()
            # the one in flight, then the one queued 31 s ago; the one queued 61 s ago is stale
            assert len(devices.requests) == 2
            assert actions.stats.stale == 1

    run(main())


def test_refusals_and_failures_are_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def answer(request: WriteRequest) -> Approved | Refused:
        if request.point == "vat1_timer_start":
            raise DeviceTimeout(request.device, 0.5)
        return Refused(request, "rate limit (30 writes per minute)")

    devices = FakeDevices(answer)

    async def main() -> None:
        async with service(devices.write) as actions:
            for _ in range(3):
                actions.submit(TicketOut(ticket()))
            await settle()
            assert len(devices.requests) == 6
            assert actions.stats.refused == {"rate limit": 3}
            assert actions.stats.failed == 3
            assert actions.stats.approved == 0

    with caplog.at_level(logging.WARNING, logger="gateway.devices.actions"):
        run(main())
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert "action:0 (fryer1.vat1_cook_time = 180) was refused: rate limit" in warnings[0]
    assert "action:1: write failed: fryer1: no answer within 0.5 s" in warnings[1]


def test_a_full_queue_drops_the_oldest() -> None:
    devices = FakeDevices()
    devices.gate.clear()  # the device service is stuck

    async def main() -> None:
        async with service(devices.write, rules=(START,), max_queue=2) as actions:
            tickets = [ticket(table=f"T{n}") for n in range(5)]
            actions.submit(TicketOut(tickets[0]))
            await settle()  # the writer takes the first one and waits on the device
            for t in tickets[1:]:
                actions.submit(TicketOut(t))
            assert actions.stats.dropped == 2
            devices.gate.set()
            await settle()
            assert len(devices.requests) == 3  # the one in flight and the two newest
            assert actions.stats.planned == 5

    run(main())


def test_a_service_whose_writer_is_a_named_loop_and_whose_queue_goes_with_it() -> None:
    devices = FakeDevices()
    devices.gate.clear()  # the device service is stuck

    async def main() -> None:
        actions = service(devices.write, rules=(START,))
        async with actions:
            assert "actions:writer" in {t.get_name() for t in asyncio.all_tasks()}
            actions.submit(TicketOut(ticket()))
            await settle()  # in flight
            actions.submit(TicketOut(ticket()))  # queued
        assert not actions.running
        devices.gate.set()
        async with actions:  # a new run: what the last one had queued is gone
            await settle()
        assert devices.requests == []  # the one in flight was cancelled, the queued dropped

    run(main())


def test_rejects_a_zero_queue() -> None:
    with pytest.raises(ValueError, match="max_queue"):
        service(FakeDevices().write, max_queue=0)


def test_tap_forwards_everything_and_shows_tickets() -> None:
    devices = FakeDevices()

    class Inner:
        def __init__(self) -> None:
            self.sent: list[OutboundEvent] = []
            self.acked: list[object] = []

        def send(self, event: OutboundEvent) -> None:
            self.sent.append(event)

        def ack(self, token: object) -> None:
            self.acked.append(token)

    async def main() -> None:
        inner = Inner()
        async with service(devices.write) as actions:
            outbox = actions.tap(inner)
            event = TicketOut(ticket())
            other = AlertOut(Notice("low", "test", "fry", "not a ticket"))
            outbox.send(event)
            outbox.send(other)
            outbox.ack("token")
            await settle()
            assert inner.sent == [event, other]
            assert inner.acked == ["token"]
            assert len(devices.requests) == 2

    run(main())


# --- with the real kitchen and the real guard ------------------------------------------------


def order(cfg: SiteConfig, *items: str) -> PricedOrder:
    lines = [OrderLine(line_id=f"L{n}", item=i, qty=1) for n, i in enumerate(items)]
    req = OrderRequest(order_id=uuid4(), table="T1", items=lines, placed_at=T0)
    result = OrderValidator(cfg, RouteTable(cfg)).validate(req)
    assert isinstance(result, PricedOrder), result
    return result


def test_kitchen_tickets_through_the_real_guard() -> None:
    guard = WriteGuard(PROFILES, CFG.devices, monotonic=lambda: 0.0)

    async def write(request: WriteRequest) -> Approved | Refused:
        return guard.check(request)

    async def main() -> None:
        kitchen = Kitchen(CFG.courses, None)
        fish_time = ActionRule(
            station="fry",
            items=("fish",),
            device="fryer1",
            point="vat1_cook_time",
            value_from="prep_s",
        )
        async with service(write, rules=(TIME, START, fish_time)) as actions:
            effects = kitchen.accept(order(CFG, "wings", "steak"), "tablet1", T0)
            effects += kitchen.accept(order(CFG, "fish"), "tablet1", T0)
            # Fire by prep time: the wings (420 s) wait for the steak (600 s) to be 420 s away.
            effects += kitchen.release_due(T0 + timedelta(seconds=180))
            tickets = [e.ticket for e in effects if isinstance(e, SendTicket)]
            assert {t.station for t in tickets} == {"fry", "grill"}
            for t in tickets * 2:  # and every ticket resent once
                actions.submit(TicketOut(t))
            await settle()
            # wings: 420 s and start; fish: 1200 s is over the fryer's 900 s limit, and start.
            assert actions.stats.approved == 3
            assert actions.stats.refused == {"out of range": 1}
            assert guard.refused == {"out of range": 1}

    run(main())


# --- config check ----------------------------------------------------------------------------


def test_config_check_accepts_good_rules() -> None:
    assert check_actions([TIME, START], CFG, PROFILES) == []


def test_config_check_reports_every_problem() -> None:
    rules = [
        ActionRule(
            station="bar", items=("beer",), group="drinks", device="fryer9", point="x", value=1
        ),
        ActionRule(station="fry", group="fried", device="fryer1", point="vat1_oil_temp", value=1),
        ActionRule(
            station="fry", items=("fries",), device="fryer1", point="vat1_set_temp", value=250
        ),
        # fries 180 s is under fryer2's narrowed 60..300; wings 420 s and fish 1200 s are not.
        ActionRule(
            station="fry",
            group="fried",
            device="fryer2",
            point="vat1_cook_time",
            value_from="prep_s",
        ),
    ]
    problems = check_actions(rules, CFG, PROFILES)
    keys = [p.key for p in problems]
    assert keys == [
        "appliance_actions[0].station",
        "appliance_actions[0].group",
        "appliance_actions[0].device",
        "appliance_actions[0].items",
        "appliance_actions[1]",
        "appliance_actions[2]",
        "appliance_actions[3]",
        "appliance_actions[3]",
    ]
    assert problems[0].message == "unknown station 'bar'"
    assert problems[0].fix == "use one of: fry, grill"
    assert "not writable" in problems[4].message
    assert "out of range 120..190" in problems[5].message
    assert "writing 420" in problems[6].message
    assert "out of range 60..300" in problems[6].message
    assert "writing 1200" in problems[7].message


def test_devices_in_the_site_are_instances() -> None:
    assert all(isinstance(d, DeviceInstance) for d in CFG.devices)
