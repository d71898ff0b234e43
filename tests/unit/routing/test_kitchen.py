"""The kitchen state machine: tickets, versions, courses, fire by prep time, redirects, restarts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec import encode
from gateway.config import SiteConfig, StationKind
from gateway.contract import (
    Dining,
    KdsAction,
    OrderLine,
    OrderRequest,
    OrderState,
    Ticket,
    TicketStatus,
)
from gateway.routing.kitchen import Changes, Kitchen, KitchenError, SendStatus, SendTicket
from gateway.routing.orders import OrderValidator, PricedLine, PricedOrder
from gateway.routing.rules import RouteTable
from gateway.site_file import load_site, parse_site

if TYPE_CHECKING:
    from gateway.routing.kitchen import Effect

DEMO_PATH = Path(__file__).resolve().parents[3] / "examples" / "demo-site.toml"
DEMO = load_site(DEMO_PATH)
DEMO_VALIDATOR = OrderValidator(DEMO, RouteTable(DEMO))
T0 = datetime(2026, 1, 1, 18, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- helpers ---------------------------------------------------------------------------------

LineSpec = str | tuple[str, list[str]] | OrderLine


def make_order(
    *specs: LineSpec,
    validator: OrderValidator = DEMO_VALIDATOR,
    dining: Dining = Dining.DINE_IN,
    table: str = "T1",
) -> PricedOrder:
    """Validate an order through the real validator; ``specs`` are item ids or (item, mods)."""
    lines = []
    for n, spec in enumerate(specs):
        if isinstance(spec, OrderLine):
            lines.append(spec)
        elif isinstance(spec, str):
            lines.append(OrderLine(line_id=f"L{n}", item=spec, qty=1))
        else:
            lines.append(OrderLine(line_id=f"L{n}", item=spec[0], qty=1, modifiers=spec[1]))
    req = OrderRequest(order_id=uuid4(), table=table, items=lines, placed_at=T0, dining=dining)
    result = validator.validate(req)
    assert isinstance(result, PricedOrder), result
    return result


def demo_kitchen() -> Kitchen:
    return Kitchen(DEMO.courses, "expo")


def sent(effects: list[Effect]) -> list[Ticket]:
    return [e.ticket for e in effects if isinstance(e, SendTicket)]


def states(effects: list[Effect]) -> list[OrderState]:
    return [e.update.state for e in effects if isinstance(e, SendStatus)]


def by_place(effects: list[Effect]) -> dict[tuple[str, int | None], Ticket]:
    """Tickets sent, keyed by (home station, course); the last version wins."""
    return {(t.redirected_from or t.station, t.course): t for t in sent(effects)}


def line_ids(t: Ticket, *, live: bool = True) -> set[str]:
    return {i.line_id for i in t.items if not (live and i.voided)}


def modified(order: PricedOrder, line_id: str, **changes: Any) -> PricedLine:
    """A line as the service builds it for modify_line: re-validated with the changes."""
    old = next(ln for ln in order.lines if ln.line_id == line_id)
    line = OrderLine(
        line_id=old.line_id,
        item=old.item,
        qty=changes.get("qty", old.qty),
        modifiers=changes.get("modifiers", list(old.modifiers)),
        course=old.course,
        note=changes.get("note", old.note),
    )
    priced = DEMO_VALIDATOR.validate_line(line, order.dining, "")
    assert isinstance(priced, PricedLine), priced
    return priced


def kds(
    k: Kitchen, t: Ticket, action: KdsAction, now: datetime = T0, version: int | None = None
) -> list[Effect]:
    return k.on_kds(t.ticket_id, version or t.version, action, None, now)


class Disk(dict[UUID, bytes]):
    """A simulated store: order snapshots, plus the ack and sent-ticket rows of their tables."""

    def __init__(self) -> None:
        super().__init__()
        self.acks: dict[UUID, tuple[UUID, int]] = {}
        self.tickets: dict[UUID, tuple[UUID, int, bytes]] = {}


def snapshot_roundtrip(k: Kitchen, disk: Disk | None = None) -> Kitchen:
    """What a restart rebuilds: apply ``take_dirty`` to a simulated disk, restore from it."""
    disk = Disk() if disk is None else disk
    acks, tickets = disk.acks, disk.tickets
    changes = k.take_dirty()
    disk.update(changes.snapshots)
    for tid, oid, v in changes.acks:
        acks[tid] = (oid, max(v, acks.get(tid, (oid, 0))[1]))
    for tid, oid, v, payload in changes.tickets:
        if v > tickets.get(tid, (oid, 0, b""))[1]:
            tickets[tid] = (oid, v, payload)
    for oid in changes.closed:
        disk.pop(oid, None)
        for tid in [t for t, (o, _) in acks.items() if o == oid]:
            del acks[tid]
        for tid in [t for t, (o, _, _) in tickets.items() if o == oid]:
            del tickets[tid]
    fresh = demo_kitchen()
    fresh.restore(
        disk.values(),
        {tid: v for tid, (_, v) in acks.items()},
        {tid: p for tid, (_, _, p) in tickets.items()},
    )
    return fresh


def encoded(tickets: list[Ticket]) -> list[bytes]:
    return sorted(encode(t) for t in tickets)


def _names(x: str) -> dict[str, str]:
    return {"en": x}


def mini_site(*, expo: bool = True, courses: list[dict[str, Any]] | None = None) -> SiteConfig:
    """A small site under the test's control: two prep stations, one group, three items."""
    stations: list[dict[str, Any]] = [
        {"id": "hot", "name": "Hot", "backup": "cold"},
        {"id": "cold", "name": "Cold", "backup": "hot"},
    ]
    if expo:
        stations.append({"id": "pass", "name": "Pass", "kind": "expo"})
    return parse_site(
        {
            "site": {"id": "mini", "name": "Mini"},
            "tables": {"count": 4},
            "stations": stations,
            "courses": courses
            or [
                {"number": 1, "name": "starters"},
                {"number": 2, "name": "mains"},
                {"number": 3, "name": "desserts", "auto_fire_after_s": 600},
            ],
            "groups": [{"id": "food", "names": _names("Food")}],
            "modifiers": [{"id": "slow", "names": _names("Slow"), "prep_delta_s": 300}],
            "items": [
                {"id": "soup", "group": "food", "names": _names("Soup"), "price": 500,
                 "prep_s": 60, "modifiers": ["slow"]},
                {"id": "steak", "group": "food", "names": _names("Steak"), "price": 2000,
                 "prep_s": 600, "course": 2},
                {"id": "cake", "group": "food", "names": _names("Cake"), "price": 700,
                 "prep_s": 120, "course": 3},
                {"id": "salad", "group": "food", "names": _names("Salad"), "price": 800,
                 "prep_s": 120},
            ],
            "routes": [
                {"group": "food", "station": "hot"},
                {"item": "salad", "station": "cold"},
            ],
        }
    )  # fmt: skip


# --- accept and courses ----------------------------------------------------------------------


def test_accept_sends_expo_v1_and_the_prep_tickets_due_now() -> None:
    k = demo_kitchen()
    # Course 1: bruschetta (cold, 240 s) fires now, soup (grill, 120 s) 120 s later.
    # Course 2 (auto-fire after 900 s): ribeye. Course 3 (held): tiramisu.
    order = make_order("bruschetta", "soup", "ribeye", "tiramisu")
    effects = k.accept(order, "tab-1", T0)

    tickets = by_place(effects)
    assert set(tickets) == {("expo", None), ("cold", 1)}
    assert all(t.version == 1 for t in tickets.values())
    expo = tickets["expo", None]
    assert line_ids(expo) == {"L0", "L1", "L2", "L3"}
    assert expo.status is TicketStatus.HELD  # a course is held
    assert line_ids(tickets["cold", 1]) == {"L0"}
    assert tickets["cold", 1].status is TicketStatus.FIRED
    assert states(effects) == [OrderState.ACCEPTED, OrderState.IN_KITCHEN]
    # The expo ticket is the first thing sent: the pass sees the table at once.
    assert sent(effects)[0].station == "expo"
    assert all(t.order_id == order.order_id and t.table == "T1" for t in tickets.values())


def test_prep_tickets_are_released_when_their_first_line_is_due() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "soup", "ribeye", "tiramisu")
    k.accept(order, "tab-1", T0)
    assert k.next_fire_at() == at(120)

    assert k.release_due(at(119)) == []
    grill1 = sent(k.release_due(at(120)))
    assert [(t.station, t.course, t.version) for t in grill1] == [("grill", 1, 1)]
    assert line_ids(grill1[0]) == {"L1"}
    assert k.release_due(at(120)) == []  # released once

    # The auto-fired mains come 900 s after the starters fired, not before.
    assert k.next_fire_at() == at(900)
    assert k.release_due(at(899)) == []
    mains = sent(k.release_due(at(900)))
    assert [(t.station, t.course, t.version) for t in mains] == [("grill", 2, 1)]
    assert line_ids(mains[0]) == {"L2"}


def test_a_held_course_sends_nothing_until_fired() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "tiramisu")
    k.accept(order, "tab-1", T0)
    assert k.next_fire_at() is None
    assert k.release_due(at(10 * 3600)) == []  # however long we wait

    effects = k.fire_course(order.order_id, 3, at(1800))
    tickets = by_place(effects)
    assert set(tickets) == {("expo", None), ("pastry", 3)}
    assert tickets["pastry", 3].version == 1
    assert tickets["pastry", 3].fire_at == at(1800)
    assert tickets["expo", None].version == 2
    assert tickets["expo", None].status is TicketStatus.FIRED  # nothing is held any more
    # Firing again is harmless.
    assert k.fire_course(order.order_id, 3, at(1900)) == []


def test_firing_an_auto_fired_course_early_sends_it_now() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "ribeye")
    k.accept(order, "tab-1", T0)
    effects = k.fire_course(order.order_id, 2, at(300))
    tickets = by_place(effects)
    assert tickets["grill", 2].version == 1
    assert tickets["grill", 2].fire_at == at(300)
    assert k.release_due(at(900)) == []  # not sent a second time when its old time comes


def test_firing_an_unknown_course_or_order_is_a_kitchen_error() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta")
    k.accept(order, "tab-1", T0)
    with pytest.raises(KitchenError) as info:
        k.fire_course(order.order_id, 3, T0)
    assert info.value.path == "course"
    with pytest.raises(KitchenError) as info:
        k.fire_course(uuid4(), 1, T0)
    assert info.value.path == "order_id"


def test_only_the_lowest_course_of_the_order_fires_at_once() -> None:
    # An order of mains only: the mains are its first course and fire now.
    k = demo_kitchen()
    effects = k.accept(make_order("ribeye"), "tab-1", T0)
    assert ("grill", 2) in by_place(effects)
    assert by_place(effects)["expo", None].status is TicketStatus.FIRED


def test_firing_a_held_course_starts_the_gap_of_the_auto_fired_course_after_it() -> None:
    cfg = mini_site()  # mains held, desserts auto-fire 600 s after the mains
    k = Kitchen(cfg.courses, "pass")
    order = make_order("soup", "steak", "cake", validator=OrderValidator(cfg, RouteTable(cfg)))
    k.accept(order, "tab-1", T0)
    assert k.release_due(at(24 * 3600)) == []  # mains held, so desserts too
    k.fire_course(order.order_id, 2, at(300))
    assert k.release_due(at(899)) == []
    desserts = sent(k.release_due(at(900)))
    assert [(t.station, t.course) for t in desserts] == [("hot", 3)]


def test_firing_a_course_early_brings_the_next_auto_fired_course_forward() -> None:
    cfg = mini_site(
        courses=[
            {"number": 1, "name": "starters"},
            {"number": 2, "name": "mains", "auto_fire_after_s": 900},
            {"number": 3, "name": "desserts", "auto_fire_after_s": 600},
        ]
    )
    k = Kitchen(cfg.courses, "pass")
    order = make_order("soup", "steak", "cake", validator=OrderValidator(cfg, RouteTable(cfg)))
    k.accept(order, "tab-1", T0)
    assert k.next_fire_at() == at(900)
    k.fire_course(order.order_id, 2, at(100))  # mains fired 800 s early
    # Desserts follow the mains by their own 600 s gap: at 700 s, not at 1500 s.
    assert [(t.station, t.course) for t in sent(k.release_due(at(700)))] == [("hot", 3)]


# --- fire by prep time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ribeye_mods", "burger_mods", "expected"),
    [
        # ribeye 900 s, burger 600 s, fish and chips 480 s: the ribeye starts first.
        ([], [], {"L0": 0, "L1": 300, "L2": 420}),
        # rare takes 120 s off the ribeye: everything else starts 120 s sooner.
        (["rare"], [], {"L0": 0, "L1": 180, "L2": 300}),
        # well done adds 180 s: everything else waits 180 s longer.
        (["well_done"], [], {"L0": 0, "L1": 480, "L2": 600}),
        # a well-done burger (780 s) ties with a rare ribeye (780 s).
        (["rare"], ["well_done"], {"L0": 0, "L1": 0, "L2": 300}),
    ],
)
def test_fire_by_prep_time_finishes_a_course_together(
    ribeye_mods: list[str], burger_mods: list[str], expected: dict[str, int]
) -> None:
    k = demo_kitchen()
    order = make_order(("ribeye", ribeye_mods), ("burger", burger_mods), "fish_chips")
    k.accept(order, "tab-1", T0)
    rec = k.order(order.order_id)
    assert rec is not None
    fire = {ln.line_id: ln.fire_at for ln in rec.lines}
    assert fire == {lid: at(s) for lid, s in expected.items()}
    finish = {ln.fire_at + timedelta(seconds=ln.prep_s) for ln in rec.lines if ln.fire_at}
    assert len(finish) == 1  # the table's dishes are done together
    prep = {ln.line_id: ln.prep_s for ln in order.lines}
    assert min(fire, key=lambda lid: (fire[lid], -prep[lid])) == "L0"


def test_a_ticket_fires_with_its_earliest_line_and_lists_each_line_time() -> None:
    k = demo_kitchen()
    order = make_order("ribeye", "burger", "fish_chips")
    effects = k.accept(order, "tab-1", T0)
    grill = by_place(effects)["grill", 2]
    assert grill.fire_at == T0
    assert [(i.line_id, i.fire_at) for i in grill.items] == [("L0", T0), ("L1", at(300))]
    assert k.release_due(at(419)) == []
    fry = sent(k.release_due(at(420)))
    assert [(t.station, t.fire_at) for t in fry] == [("fry", at(420))]


def test_modifying_a_line_reschedules_its_course() -> None:
    k = demo_kitchen()
    order = make_order("ribeye", "burger")
    k.accept(order, "tab-1", T0)
    effects = k.modify_line(order.order_id, modified(order, "L0", modifiers=["well_done"]), at(10))
    grill = by_place(effects)["grill", 2]
    assert grill.version == 2
    assert {i.line_id: i.fire_at for i in grill.items} == {"L0": T0, "L1": at(480)}


def test_voiding_the_longest_line_lets_the_rest_of_the_course_start() -> None:
    k = demo_kitchen()
    order = make_order("ribeye", "fish_chips")  # fish and chips waits 420 s for the ribeye
    k.accept(order, "tab-1", T0)
    k.void_line(order.order_id, "L0", at(5))
    assert [t.station for t in sent(k.release_due(at(5)))] == ["fry"]


# --- versions ------------------------------------------------------------------------------


def test_every_change_is_a_new_version_of_the_same_ticket() -> None:
    k = demo_kitchen()
    order = make_order("soup", "vegetables", "ribeye", "tiramisu")
    all_effects = k.accept(order, "tab-1", T0)  # grill c1: soup; grill c2 (t+900): veg+ribeye
    all_effects += k.void_line(order.order_id, "L0", at(10))
    all_effects += k.fire_course(order.order_id, 2, at(20))
    all_effects += k.modify_line(order.order_id, modified(order, "L1", qty=3), at(30))
    all_effects += k.fire_course(order.order_id, 3, at(40))
    all_effects += k.redirect("grill", "fry", at(50))
    all_effects += k.modify_line(order.order_id, modified(order, "L2", note="no salt"), at(60))

    ids: dict[tuple[str, int | None], set[UUID]] = defaultdict(set)
    versions: dict[UUID, list[int]] = defaultdict(list)
    for t in sent(all_effects):
        ids[t.redirected_from or t.station, t.course].add(t.ticket_id)
        versions[t.ticket_id].append(t.version)
    assert all(len(v) == 1 for v in ids.values()), ids
    assert set(ids) == {("expo", None), ("grill", 1), ("grill", 2), ("pastry", 3)}
    for seq in versions.values():
        assert seq == list(range(1, len(seq) + 1))  # strictly increasing, one step at a time
    final = by_place(all_effects)
    assert final["grill", 1].status is TicketStatus.VOIDED
    assert final["grill", 2].station == "fry"
    assert final["grill", 2].redirected_from == "grill"
    assert {i.line_id: i.qty for i in final["grill", 2].items} == {"L1": 3, "L2": 1}
    assert {i.line_id: i.note for i in final["grill", 2].items}["L2"] == "no salt"


def test_void_line_sends_a_version_that_shows_the_line_voided() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "burrata")
    first = by_place(k.accept(order, "tab-1", T0))
    effects = k.void_line(order.order_id, "L1", at(5))
    cold = by_place(effects)["cold", 1]
    assert cold.ticket_id == first["cold", 1].ticket_id
    assert cold.version == 2
    assert {i.line_id: i.voided for i in cold.items} == {"L0": False, "L1": True}
    assert cold.status is TicketStatus.FIRED  # one line is still live
    assert by_place(effects)["expo", None].version == 2
    assert k.void_line(order.order_id, "L1", at(6)) == []  # voided already: nothing


def test_voiding_a_line_on_a_ticket_not_yet_sent_sends_no_prep_ticket() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "ribeye", "burger")
    k.accept(order, "tab-1", T0)
    effects = k.void_line(order.order_id, "L2", at(5))
    assert set(by_place(effects)) == {("expo", None)}


def test_voiding_every_line_closes_the_order_once_the_screens_have_the_void() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "burrata")
    first = by_place(k.accept(order, "tab-1", T0))
    k.take_dirty()
    k.void_line(order.order_id, "L0", at(1))
    effects = k.void_line(order.order_id, "L1", at(2))
    assert states(effects)[-1] is OrderState.VOIDED
    tickets = by_place(effects)
    assert tickets["cold", 1].ticket_id == first["cold", 1].ticket_id
    assert tickets["cold", 1].status is TicketStatus.VOIDED
    assert tickets["expo", None].status is TicketStatus.VOIDED
    # Open until every screen has acked "take it off": a restart now still resends the void.
    assert order.order_id in k
    assert {(t.ticket_id, t.version) for t in k.unacked()} == {
        (t.ticket_id, t.version) for t in tickets.values()
    }
    rec = k.order(order.order_id)
    assert rec is not None
    assert rec.seq in k.take_dirty().snapshots
    for t in tickets.values():
        kds(k, t, KdsAction.ACK, at(3))
    assert order.order_id not in k
    assert k.unacked() == []
    changes = k.take_dirty()
    assert changes.closed == {rec.seq}
    assert rec.seq not in changes.snapshots
    with pytest.raises(KitchenError):
        k.void_line(order.order_id, "L0", at(3))


def test_modify_rejects_voided_lines_and_station_changes() -> None:
    k = demo_kitchen()
    order = make_order("caesar", "bruschetta")
    k.accept(order, "tab-1", T0)
    with pytest.raises(KitchenError) as info:
        # grilled chicken sends a caesar to the grill: a different station
        k.modify_line(order.order_id, modified(order, "L0", modifiers=["grilled_chicken"]), T0)
    assert info.value.path == "modifiers"
    k.void_line(order.order_id, "L1", T0)
    with pytest.raises(KitchenError) as info:
        k.modify_line(order.order_id, modified(order, "L1", qty=2), T0)
    assert info.value.path == "line_id"
    with pytest.raises(KitchenError) as info:
        k.void_line(order.order_id, "nope", T0)
    assert info.value.path == "line_id"


# --- acks, bumps, recall, close ------------------------------------------------------------


def test_ack_clears_only_a_version_that_was_sent() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "arancini")  # cold and fry, both course 1
    k.accept(order, "tab-1", T0)
    k.release_due(at(3600))
    tickets = {t.station: t for t in k.unacked()}
    assert set(tickets) == {"expo", "cold", "fry"}
    assert all(t.version == 1 for t in tickets.values())

    kds(k, tickets["cold"], KdsAction.ACK, version=5)  # a version never sent: ignored
    assert "cold" in {t.station for t in k.unacked()}
    kds(k, tickets["cold"], KdsAction.ACK)
    assert {t.station for t in k.unacked()} == {"expo", "fry"}

    kds(k, tickets["fry"], KdsAction.ACK)
    # At 3,600 s the cold line has started, so voiding the fry line does not re-time it.
    k.void_line(order.order_id, "L1", at(3600))  # fry v2, expo v2
    kds(k, tickets["fry"], KdsAction.ACK, version=1)  # an old ack does not clear v2
    assert {(t.station, t.version) for t in k.unacked()} == {("expo", 2), ("fry", 2)}
    kds(k, tickets["expo"], KdsAction.ACK, version=2)
    assert {(t.station, t.version) for t in k.unacked()} == {("fry", 2)}


def test_bumping_every_prep_ticket_makes_the_order_ready_and_the_expo_closes_it() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "arancini", "water")
    k.accept(order, "tab-1", T0)
    k.release_due(at(3600))
    tickets = {t.station: t for t in k.unacked()}
    assert set(tickets) == {"expo", "cold", "fry", "bar"}

    assert kds(k, tickets["cold"], KdsAction.BUMP) == []
    assert kds(k, tickets["cold"], KdsAction.BUMP) == []  # bumping twice changes nothing
    assert kds(k, tickets["fry"], KdsAction.BUMP) == []
    effects = kds(k, tickets["bar"], KdsAction.BUMP, at(600))
    assert states(effects) == [OrderState.READY]
    status = next(e.update for e in effects if isinstance(e, SendStatus))
    assert status.stations_done == ["bar", "cold", "fry"]
    assert status.stations_open == []
    expo = by_place(effects)["expo", None]
    assert (expo.ticket_id, expo.version, expo.status) == (
        tickets["expo"].ticket_id,
        2,
        TicketStatus.READY,
    )

    effects = kds(k, tickets["fry"], KdsAction.RECALL, at(610))
    assert states(effects) == [OrderState.IN_KITCHEN]
    assert by_place(effects)["expo", None].version == 3
    assert by_place(effects)["expo", None].status is TicketStatus.FIRED
    assert states(kds(k, tickets["fry"], KdsAction.BUMP, at(620))) == [OrderState.READY]

    k.take_dirty()
    rec = k.order(order.order_id)
    assert rec is not None
    expo = next(t for t in k.unacked() if t.station == "expo")
    assert expo.version == 4  # ready again
    effects = kds(k, expo, KdsAction.BUMP, at(700))
    assert states(effects) == [OrderState.CLOSED]
    assert order.order_id not in k
    assert len(k) == 0
    assert k.unacked() == []
    changes = k.take_dirty()
    assert changes.closed == {rec.seq}
    assert changes.snapshots == {}
    # Screens talking about a closed order's tickets are ignored.
    assert kds(k, tickets["cold"], KdsAction.RECALL) == []


def test_a_voided_ticket_does_not_hold_up_readiness() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "arancini")
    k.accept(order, "tab-1", T0)
    k.release_due(at(3600))
    tickets = {t.station: t for t in k.unacked()}
    kds(k, tickets["cold"], KdsAction.BUMP)
    effects = k.void_line(order.order_id, "L1", at(10))  # the fry ticket has nothing left
    assert states(effects) == [OrderState.READY]


def test_a_held_course_keeps_the_order_from_being_ready() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "tiramisu")
    k.accept(order, "tab-1", T0)
    (cold,) = [t for t in k.unacked() if t.station == "cold"]
    assert kds(k, cold, KdsAction.BUMP) == []
    rec = k.order(order.order_id)
    assert rec is not None
    assert rec.state is OrderState.IN_KITCHEN


def test_more_food_on_a_bumped_ticket_reopens_it() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta")
    k.accept(order, "tab-1", T0)
    (cold,) = [t for t in k.unacked() if t.station == "cold"]
    kds(k, cold, KdsAction.BUMP)
    k.modify_line(order.order_id, modified(order, "L0", qty=3), at(60))
    rec = k.order(order.order_id)
    assert rec is not None
    assert rec.state is OrderState.IN_KITCHEN


def test_a_bump_or_recall_of_an_older_version_changes_nothing() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta")
    k.accept(order, "tab-1", T0)
    cold1 = next(t for t in k.unacked() if t.station == "cold")
    expo1 = next(t for t in k.unacked() if t.station == "expo")
    assert states(kds(k, cold1, KdsAction.BUMP)) == [OrderState.READY]
    k.modify_line(order.order_id, modified(order, "L0", qty=3), at(60))  # cold v2, reopened
    rec = k.order(order.order_id)
    assert rec is not None
    assert rec.state is OrderState.IN_KITCHEN
    # The v1 bump again (a screen sending it once more after a reconnect): the third
    # bruschetta is not made yet, so the table must not be called ready.
    assert kds(k, cold1, KdsAction.BUMP, at(61)) == []
    assert rec.state is OrderState.IN_KITCHEN
    # Nor does the expo's bump of its old version send the table out.
    assert kds(k, expo1, KdsAction.BUMP, at(62)) == []
    assert order.order_id in k
    # The current version's bump does make it ready; a recall of v1 then changes nothing.
    cold2 = next(t for t in k.unacked() if t.station == "cold")
    assert cold2.version == 2
    assert states(kds(k, cold2, KdsAction.BUMP, at(63))) == [OrderState.READY]
    assert kds(k, cold1, KdsAction.RECALL, at(64)) == []
    assert rec.state is OrderState.READY


def test_item_done_marks_the_line() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "burrata")
    k.accept(order, "tab-1", T0)
    (cold,) = [t for t in k.unacked() if t.station == "cold"]
    assert k.on_kds(cold.ticket_id, 1, KdsAction.ITEM_DONE, "L0", T0) == []
    rec = k.order(order.order_id)
    assert rec is not None
    assert [ln.done for ln in rec.lines] == [True, False]
    assert k.on_kds(uuid4(), 1, KdsAction.BUMP, None, T0) == []  # unknown ticket: ignored


def test_item_done_does_not_change_a_sent_version() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "burrata")
    k.accept(order, "tab-1", T0)
    before = encoded(k.unacked())
    (cold,) = [t for t in k.unacked() if t.station == "cold"]
    k.on_kds(cold.ticket_id, 1, KdsAction.ITEM_DONE, "L0", T0)
    assert encoded(k.unacked()) == before


def test_a_change_on_one_station_does_not_rewrite_another_stations_sent_version() -> None:
    k = demo_kitchen()
    order = make_order("ribeye", "fish_chips")
    sent_content = {(t.ticket_id, t.version): encode(t) for t in sent(k.accept(order, "t", T0))}
    sent_content |= {(t.ticket_id, t.version): encode(t) for t in sent(k.release_due(at(420)))}
    k.modify_line(order.order_id, modified(order, "L0", modifiers=["well_done"]), at(430))
    for t in k.unacked():
        if (t.ticket_id, t.version) in sent_content:
            assert encode(t) == sent_content[t.ticket_id, t.version], t.station


def test_without_an_expo_the_last_prep_bump_closes_the_order() -> None:
    cfg = mini_site(expo=False)
    k = Kitchen(cfg.courses, None)
    order = make_order("soup", "salad", validator=OrderValidator(cfg, RouteTable(cfg)))
    effects = k.accept(order, "tab-1", T0) + k.release_due(at(60))  # fire by prep time
    assert {t.station for t in sent(effects)} == {"hot", "cold"}  # no expo ticket
    for t in sent(effects):
        kds(k, t, KdsAction.BUMP, at(300))
    assert order.order_id not in k
    assert states(effects)[-1] is not OrderState.CLOSED  # closed by the last bump, not before


# --- redirects -------------------------------------------------------------------------------


def test_redirect_moves_open_tickets_and_routes_new_ones_until_restored() -> None:
    k = demo_kitchen()
    open_order = make_order("burger")
    bumped_order = make_order("chicken")
    open_grill = by_place(k.accept(open_order, "tab-1", T0))["grill", 2]
    bumped_grill = by_place(k.accept(bumped_order, "tab-1", T0))["grill", 2]
    kds(k, bumped_grill, KdsAction.BUMP)
    assert k.open_tickets("grill") == 1

    effects = k.redirect("grill", "fry", at(60))
    moved = sent(effects)
    assert [(t.ticket_id, t.version, t.station, t.redirected_from) for t in moved] == [
        (open_grill.ticket_id, 2, "fry", "grill")
    ]
    assert k.open_tickets("grill") == 0
    assert k.open_tickets("fry") == 1

    during = by_place(k.accept(make_order("salmon"), "tab-1", at(70)))["grill", 2]
    assert (during.station, during.redirected_from, during.version) == ("fry", "grill", 1)

    k.restore_station("grill")
    after = by_place(k.accept(make_order("vegetables"), "tab-1", at(80)))["grill", 2]
    assert (after.station, after.redirected_from) == ("grill", None)
    # The moved tickets stay where the cook has them, even for later versions.
    later = by_place(k.modify_line(open_order.order_id, modified(open_order, "L0", qty=2), at(90)))
    later = later["grill", 2]
    assert (later.ticket_id, later.version, later.station) == (open_grill.ticket_id, 3, "fry")
    assert k.open_tickets("fry") == 2


def test_a_ticket_released_while_its_station_is_redirected_goes_to_the_backup() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta", "soup")  # the soup's grill ticket is due 120 s later
    k.accept(order, "tab-1", T0)
    k.redirect("grill", "fry", at(10))
    (grill,) = sent(k.release_due(at(120)))
    assert (grill.station, grill.redirected_from) == ("fry", "grill")


def test_redirected_from_always_names_the_home_station() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta")  # cold; cold and pastry back each other up
    k.accept(order, "tab-1", T0)
    effects = k.redirect("cold", "pastry", at(10))
    effects += k.redirect("pastry", "cold", at(20))
    for t in sent(effects):
        assert t.redirected_from in {None, "cold"}, (t.version, t.station, t.redirected_from)
        assert t.station != t.redirected_from


# --- persistence ---------------------------------------------------------------------------


def _busy_kitchen() -> tuple[Kitchen, Disk]:
    """A kitchen with orders in many states, its disk kept up to date after every step."""
    k = demo_kitchen()
    disk = Disk()
    a = make_order("bruschetta", "arancini", "ribeye", "tiramisu")
    b = make_order("burger", "fries", ("cola", ["ice"]), dining=Dining.TAKEAWAY)
    c = make_order("caesar", "greek")
    k.accept(a, "tab-1", T0)
    snapshot_roundtrip(k, disk)
    k.accept(b, "tab-2", at(5))
    k.accept(c, "tab-3", at(6))
    for t in k.unacked():
        if t.station in {"cold", "expo"}:
            kds(k, t, KdsAction.ACK)
    snapshot_roundtrip(k, disk)
    k.release_due(at(400))
    k.void_line(b.order_id, "L1", at(410))
    k.modify_line(c.order_id, modified(c, "L1", qty=2, note="extra feta"), at(420))
    k.redirect("fry", "grill", at(430))
    for t in k.unacked():
        if t.order_id == c.order_id and t.station != "expo":
            kds(k, t, KdsAction.BUMP, at(440))
    k.fire_course(a.order_id, 3, at(450))
    return k, disk


def test_restored_snapshots_give_identical_unacked_tickets() -> None:
    k, disk = _busy_kitchen()
    fresh = snapshot_roundtrip(k, disk)
    assert len(fresh) == len(k)
    assert encoded(fresh.unacked()) == encoded(k.unacked())
    assert {(t.ticket_id, t.version) for t in fresh.unacked()} == {
        (t.ticket_id, t.version) for t in k.unacked()
    }
    assert fresh.next_fire_at() == k.next_fire_at()


def test_a_restored_kitchen_carries_on_exactly_like_the_original() -> None:
    k, disk = _busy_kitchen()
    fresh = snapshot_roundtrip(k, disk)
    fresh.redirects = dict(k.redirects)  # the service re-detects silent screens after a restart
    for kitchen in (k, fresh):
        kitchen.take_dirty()
    script: list[tuple[str, datetime]] = [("release", at(900)), ("release", at(2000))]
    for _, now in script:
        assert encoded(sent(k.release_due(now))) == encoded(sent(fresh.release_due(now)))
    for t in k.unacked():
        a = encoded(sent(k.on_kds(t.ticket_id, t.version, KdsAction.BUMP, None, at(2100))))
        b = encoded(sent(fresh.on_kds(t.ticket_id, t.version, KdsAction.BUMP, None, at(2100))))
        assert a == b
    assert len(k) == len(fresh)
    assert encoded(k.unacked()) == encoded(fresh.unacked())


def test_take_dirty_reports_each_change_once() -> None:
    k = demo_kitchen()
    order = make_order("bruschetta")
    k.accept(order, "tab-1", T0)
    rec = k.order(order.order_id)
    assert rec is not None
    changes = k.take_dirty()
    assert set(changes.snapshots) == {rec.seq}
    assert changes.closed == set()
    assert k.take_dirty() == Changes({}, set(), [])
    (cold,) = [t for t in k.unacked() if t.station == "cold"]
    kds(k, cold, KdsAction.ACK)
    # An ack is state a restart needs, written as one small row, not a new snapshot.
    assert k.take_dirty() == Changes({}, set(), [(cold.ticket_id, rec.seq, 1)])


def test_order_numbers_increase_and_survive_a_restart_above_closed_ones() -> None:
    k = demo_kitchen()
    seqs = []
    for _ in range(3):
        order = make_order("bruschetta")
        k.accept(order, "tab-1", T0)
        rec = k.order(order.order_id)
        assert rec is not None
        seqs.append(rec.seq)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    snaps = k.take_dirty().snapshots
    # A restart where the store has seen order numbers up to 40 (closed ones included).
    fresh = demo_kitchen()
    fresh.restore(snaps.values(), next_seq=41)
    order = make_order("bruschetta")
    fresh.accept(order, "tab-1", T0)
    rec = fresh.order(order.order_id)
    assert rec is not None
    assert rec.seq == 41
    # Without a store's hint, above the open orders restored.
    fresh = demo_kitchen()
    fresh.restore(snaps.values())
    fresh.accept(make_order("bruschetta"), "tab-1", T0)
    assert max(r.seq for r in fresh._orders.values()) == max(seqs) + 1


# --- routing properties ----------------------------------------------------------------------

ITEMS = {i.id: i for i in DEMO.items}
MODS = {m.id: m for m in DEMO.modifiers}
PREP_STATIONS = {s.id for s in DEMO.stations if s.kind is StationKind.PREP}
COURSES = [c.number for c in DEMO.courses]


@st.composite
def order_requests(draw: st.DrawFn) -> OrderRequest:
    """Random valid orders on the demo site."""
    n = draw(st.integers(1, 8))
    lines = []
    for k in range(n):
        item = ITEMS[draw(st.sampled_from(sorted(ITEMS)))]
        mods = (
            draw(st.lists(st.sampled_from(item.modifiers), unique=True)) if item.modifiers else []
        )
        lines.append(
            OrderLine(
                line_id=f"L{k}",
                item=item.id,
                qty=draw(st.integers(1, DEMO.delivery.max_qty)),
                modifiers=mods,
                course=draw(st.none() | st.sampled_from(COURSES)),
                note=draw(st.none() | st.just("allergy: nuts")),
            )
        )
    return OrderRequest(
        order_id=draw(st.uuids(version=4)),
        table=draw(st.sampled_from(sorted(DEMO.tables.all_ids()))),
        items=lines,
        placed_at=T0,
        dining=draw(st.sampled_from(list(Dining))),
    )


def _priced(req: OrderRequest) -> PricedOrder:
    result = DEMO_VALIDATOR.validate(req)
    assert isinstance(result, PricedOrder), result
    return result


@pytest.mark.parametrize(
    ("spec", "dining", "station", "also"),
    [
        ("mixed_grill", Dining.DINE_IN, "grill", ("fry",)),
        (("caesar", ["grilled_chicken"]), Dining.DINE_IN, "grill", ()),
        ("caesar", Dining.DINE_IN, "cold", ()),
        ("arancini", Dining.DINE_IN, "fry", ()),
        ("water", Dining.DINE_IN, "bar", ()),
        ("water", Dining.TAKEAWAY, "cold", ()),
        ("water", Dining.DELIVERY, "cold", ()),
    ],
)
def test_known_routes(spec: LineSpec, dining: Dining, station: str, also: tuple[str, ...]) -> None:
    (line,) = make_order(spec, dining=dining).lines
    assert (line.station, line.also) == (station, also)


def test_a_copy_station_gets_its_own_ticket_version_of_the_line() -> None:
    k = demo_kitchen()
    order = make_order("mixed_grill", "fries")
    effects = k.accept(order, "tab-1", T0)
    effects += k.release_due(at(3600))
    tickets = by_place(effects)
    assert line_ids(tickets["grill", 2]) == {"L0"}
    assert line_ids(tickets["fry", 2]) == {"L0", "L1"}
    effects = k.void_line(order.order_id, "L0", at(3700))
    assert {t.station for t in sent(effects)} == {"grill", "fry", "expo"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=order_requests(), void=st.sets(st.integers(0, 7), max_size=3))
def test_every_live_line_is_on_exactly_one_prep_ticket_per_station(
    req: OrderRequest, void: set[int]
) -> None:
    order = _priced(req)
    k = demo_kitchen()
    effects = k.accept(order, "tab-1", T0)
    for n in sorted(void):
        if n < len(order.lines) and order.order_id in k:
            effects += k.void_line(order.order_id, order.lines[n].line_id, at(1))
    if order.order_id in k:
        for course in sorted({ln.course for ln in order.lines}):
            effects += k.fire_course(order.order_id, course, at(2))
        effects += k.release_due(at(24 * 3600))
    final = by_place(effects)
    voided = {order.lines[n].line_id for n in void if n < len(order.lines)}

    # One ticket per (station, course) of the order, each with its own id, whatever its versions.
    ids: dict[tuple[str, int | None], set[UUID]] = defaultdict(set)
    for t in sent(effects):
        ids[t.station, t.course].add(t.ticket_id)
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len(set().union(*ids.values())) == len(ids)
    assert ("expo", None) in final
    assert all(c is None for s, c in final if s == "expo")
    assert all(s in PREP_STATIONS for s, c in final if s != "expo")

    expo = final["expo", None]
    assert {i.line_id for i in expo.items} == {ln.line_id for ln in order.lines}
    for ln in order.lines:
        assert ln.station in PREP_STATIONS
        assert ln.station not in ln.also
        if ln.line_id in voided:
            continue
        showing = [
            (s, c) for (s, c), t in final.items() if s != "expo" and ln.line_id in line_ids(t)
        ]
        assert sorted(showing) == sorted((s, ln.course) for s in (ln.station, *ln.also))
        for s in (ln.station, *ln.also):
            (item,) = [i for i in final[s, ln.course].items if i.line_id == ln.line_id]
            assert (item.item, item.qty, item.station) == (ln.item, ln.qty, ln.station)
            assert item.modifiers == list(ln.modifiers)


@settings(max_examples=150, deadline=None)
@given(req=order_requests())
def test_the_total_is_the_sum_of_menu_prices(req: OrderRequest) -> None:
    order = _priced(req)
    expected = sum(
        (ITEMS[line.item].price + sum(MODS[m].price for m in line.modifiers)) * line.qty
        for line in req.items
    )
    assert order.total.amount == sum(ln.line_total for ln in order.lines) == expected
    assert order.total.currency == DEMO.site.currency
    for ln, line in zip(order.lines, req.items, strict=True):
        assert ln.line_total == ln.unit_price * ln.qty
        assert ln.course == (line.course or ITEMS[line.item].course or _group_course(line.item))
        prep = ITEMS[line.item].prep_s + sum(MODS[m].prep_delta_s for m in line.modifiers)
        assert ln.prep_s == max(0, prep)


def _group_course(item: str) -> int:
    return next(g.course for g in DEMO.groups if g.id == ITEMS[item].group)


# --- a random life of orders -----------------------------------------------------------------

BACKUPS = {s.id: s.backup for s in DEMO.stations if s.backup}

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("void"), st.integers(0, 1), st.integers(0, 7)),
        st.tuples(st.just("qty"), st.integers(0, 1), st.integers(0, 7), st.integers(1, 9)),
        st.tuples(st.just("fire"), st.integers(0, 1), st.sampled_from(COURSES)),
        st.tuples(st.just("ack"), st.integers(0, 40), st.integers(0, 2)),
        st.tuples(st.just("bump"), st.integers(0, 40)),
        st.tuples(st.just("recall"), st.integers(0, 40)),
        st.tuples(st.just("redirect"), st.sampled_from(sorted(BACKUPS))),
        st.tuples(st.just("restore"), st.sampled_from(sorted(BACKUPS))),
        st.tuples(st.just("wait"), st.integers(1, 1200)),
    ),
    max_size=30,
)


class _Recorder:
    """Checks every SendTicket as it is produced."""

    def __init__(self) -> None:
        self.content: dict[tuple[UUID, int], bytes] = {}
        self.last: dict[UUID, int] = {}
        self.place: dict[UUID, tuple[UUID, int | None]] = {}
        self.order: list[UUID] = []

    def record(self, effects: list[Effect]) -> None:
        for t in sent(effects):
            key = (t.ticket_id, t.version)
            body = encode(t)
            assert self.content.setdefault(key, body) == body, f"two contents for {key}"
            assert t.version > self.last.get(t.ticket_id, 0), "a version went backwards"
            if t.ticket_id not in self.last:
                self.order.append(t.ticket_id)
            self.last[t.ticket_id] = t.version
            # A ticket id always belongs to one order and course (its screen may change).
            place = (t.order_id, t.course)
            assert self.place.setdefault(t.ticket_id, place) == place


def _apply(
    k: Kitchen, op: tuple[Any, ...], orders: list[PricedOrder], rec: _Recorder, now: datetime
) -> list[Effect]:
    kind = op[0]
    try:
        if kind == "void":
            order = orders[op[1] % len(orders)]
            return k.void_line(order.order_id, order.lines[op[2] % len(order.lines)].line_id, now)
        if kind == "qty":
            order = orders[op[1] % len(orders)]
            line = order.lines[op[2] % len(order.lines)]
            return k.modify_line(order.order_id, modified(order, line.line_id, qty=op[3]), now)
        if kind == "fire":
            return k.fire_course(orders[op[1] % len(orders)].order_id, op[2], now)
    except KitchenError:
        return []
    if kind in {"ack", "bump", "recall"}:
        if not rec.order:
            return []
        tid = rec.order[op[1] % len(rec.order)]
        action = {"ack": KdsAction.ACK, "bump": KdsAction.BUMP, "recall": KdsAction.RECALL}[kind]
        version = max(1, rec.last[tid] - (op[2] if kind == "ack" else 0))
        return k.on_kds(tid, version, action, None, now)
    if kind == "redirect":
        return k.redirect(op[1], BACKUPS[op[1]], now)
    if kind == "restore":
        k.restore_station(op[1])
        return []
    return k.release_due(now)  # "wait": time passes, then the service's tick


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=st.lists(order_requests(), min_size=1, max_size=2), ops=OPS)
def test_versions_only_grow_and_one_version_has_one_content(
    reqs: list[OrderRequest], ops: list[tuple[Any, ...]]
) -> None:
    k = demo_kitchen()
    rec = _Recorder()
    disk = Disk()
    orders = [_priced(r) for r in reqs]
    now = T0
    for order in orders:
        rec.record(k.accept(order, "tab-1", now))
    for op in ops:
        if op[0] == "wait":
            now += timedelta(seconds=op[1])
        rec.record(_apply(k, op, orders, rec, now))
        for order in orders:
            state = k.order(order.order_id)
            if state is None:
                continue
            for t in state.tickets:
                assert 0 <= t.acked <= t.version
                if t.version:
                    assert t.version == rec.last[t.ticket_id]
        # What a restart would rebuild right now resends the same (ticket_id, version)s.
        fresh = snapshot_roundtrip(k, disk)
        assert encoded(fresh.unacked()) == encoded(k.unacked())
        assert {(t.ticket_id, t.version) for t in k.unacked()} <= set(rec.content)
