"""Orders a tablet would send: real menu items, modifiers, tables and courses (pure, seeded).

:class:`OrderFactory` builds valid orders (one to three courses, some modifiers and notes, mostly
dine-in) and, on request, one of the malformed kinds a gateway must refuse with a reply rather
than a crash. For each valid order it also records where every line should be cooked, resolved
with the gateway's own routing rules, so tests can check the tickets that reach the screens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from gateway.contract import Dining, FireCourse, OrderLine, OrderRequest, VoidLine
from gateway.routing.rules import Resolution, RouteTable

if TYPE_CHECKING:
    import random

    from gateway.clock import Clock
    from gateway.config import Item, SiteConfig

__all__ = ["MALFORMED_KINDS", "ExpectedLine", "GeneratedOrder", "OrderFactory"]

#: Every kind of bad order the simulator sends; each must get a ``rejected`` reply.
MALFORMED_KINDS: Final = (
    "broken_json",
    "schema",
    "unknown_item",
    "absurd_qty",
    "price_field",
    "oversize",
)

#: Malformed kinds whose ``order_id`` the gateway cannot read (refused before parsing).
_UNREADABLE: Final = frozenset({"broken_json", "oversize"})

_NOTES: Final = (
    "allergy: tree nuts",
    "no salt please",
    "sauce on the side",
    "birthday - candle on dessert",
    "sharing plate",
    "extra napkins",
)
_DINING_WEIGHTS: Final = ((Dining.DINE_IN, 85), (Dining.TAKEAWAY, 10), (Dining.DELIVERY, 5))


@dataclass(frozen=True, slots=True)
class ExpectedLine:
    """A line of a valid order and where the routing rules say it is cooked.

    Attributes:
        line_id: the line's id within its order.
        item: menu item id.
        qty: how many.
        modifiers: modifier ids.
        course: the course it belongs to.
        station: the one prep station that cooks it.
        also: stations that get a copy on purpose (``routes.also``).
    """

    line_id: str
    item: str
    qty: int
    modifiers: tuple[str, ...]
    course: int
    station: str
    also: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GeneratedOrder:
    """One order as sent on the wire.

    Attributes:
        order_id: the idempotency key (also inside broken payloads, where nobody can read it).
        kind: ``"valid"`` or one of :data:`MALFORMED_KINDS`.
        table: table id.
        dining: dining option.
        payload: the exact bytes published (resends reuse them).
        lines: expected lines; empty for malformed orders.
    """

    order_id: UUID
    kind: str
    table: str
    dining: Dining
    payload: bytes
    lines: tuple[ExpectedLine, ...]

    @property
    def valid(self) -> bool:
        """Whether the gateway should accept it."""
        return self.kind == "valid"

    @property
    def answerable(self) -> bool:
        """Whether a reply can name this order: not when the gateway cannot read its id.

        Broken JSON and oversize payloads are refused unread, so their reply carries no
        ``order_id`` and the tablet cannot tell which order it answers.
        """
        return self.kind not in _UNREADABLE

    @property
    def courses(self) -> tuple[int, ...]:
        """The courses the order spans, ascending."""
        return tuple(sorted({line.course for line in self.lines}))


class OrderFactory:
    """Makes orders and commands for one site from a seeded random source.

    Args:
        cfg: the site (menu, tables, routes, limits).
        rng: the only source of randomness.
        clock: gives ``placed_at`` (kitchen time, so it agrees with the gateway's clock).
    """

    def __init__(self, cfg: SiteConfig, rng: random.Random, clock: Clock) -> None:
        """Index the menu by course."""
        self._cfg = cfg
        self._rng = rng
        self._clock = clock
        self._routes = RouteTable(cfg)
        self._tables = sorted(cfg.tables.all_ids())
        group_course = {g.id: g.course for g in cfg.groups}
        self._course_of = {i.id: i.course or group_course[i.group] for i in cfg.items}
        by_course: dict[int, list[Item]] = {}
        for item in cfg.items:
            if item.available:
                by_course.setdefault(self._course_of[item.id], []).append(item)
        self._by_course = dict(sorted(by_course.items()))
        if not self._by_course or not self._tables:
            raise ValueError("the site has no available items or no tables")

    def uuid(self) -> UUID:
        """A random UUID drawn from the seeded source (reproducible, unlike ``uuid4``)."""
        return UUID(int=self._rng.getrandbits(128), version=4)

    def make(self, kind: str = "valid") -> GeneratedOrder:
        """Build one order of ``kind`` (``"valid"`` or one of :data:`MALFORMED_KINDS`)."""
        order, expected = self._valid()
        if kind == "valid":
            payload = order.model_dump_json().encode()
            return GeneratedOrder(
                order.order_id, kind, order.table, order.dining, payload, expected
            )
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown order kind {kind!r}")
        payload = self._break(order.model_dump(mode="json"), kind)
        return GeneratedOrder(order.order_id, kind, order.table, order.dining, payload, ())

    def fire_course(self, order_id: UUID, course: int) -> tuple[UUID, bytes]:
        """A ``fire_course`` command: its id and payload."""
        cmd = FireCourse(
            command="fire_course", command_id=self.uuid(), order_id=order_id, course=course
        )
        return cmd.command_id, cmd.model_dump_json().encode()

    def void_line(self, order_id: UUID, line_id: str) -> tuple[UUID, bytes]:
        """A ``void_line`` command: its id and payload."""
        cmd = VoidLine(
            command="void_line", command_id=self.uuid(), order_id=order_id, line_id=line_id
        )
        return cmd.command_id, cmd.model_dump_json().encode()

    # --- internals ----------------------------------------------------------------------------

    def _valid(self) -> tuple[OrderRequest, tuple[ExpectedLine, ...]]:
        rng = self._rng
        dining = rng.choices([d for d, _ in _DINING_WEIGHTS], [w for _, w in _DINING_WEIGHTS])[0]
        courses = self._pick_courses()
        guests = rng.randint(1, 6)
        lines: list[OrderLine] = []
        expected: list[ExpectedLine] = []
        for course in courses:
            menu = self._by_course[course]
            for item in rng.sample(menu, k=min(len(menu), rng.randint(1, min(guests, 4)))):
                line_id = f"L{len(lines) + 1}"
                mods = self._pick_modifiers(item)
                qty = rng.choices((1, 2, 3), (70, 25, 5))[0]
                note = rng.choice(_NOTES) if rng.random() < 0.15 else None
                explicit = course if rng.random() < 0.05 else None
                lines.append(
                    OrderLine(
                        line_id=line_id,
                        item=item.id,
                        qty=qty,
                        modifiers=list(mods),
                        course=explicit,
                        note=note,
                    )
                )
                res = self._routes.resolve(item.id, mods, dining)
                if not isinstance(res, Resolution):  # the config check makes this unreachable
                    raise TypeError(f"item {item.id!r} does not route to one station: {res}")
                expected.append(
                    ExpectedLine(line_id, item.id, qty, mods, course, res.station, res.also)
                )
        order = OrderRequest(
            order_id=self.uuid(),
            table=rng.choice(self._tables),
            items=lines,
            placed_at=self._clock.now(),
            dining=dining,
        )
        return order, tuple(expected)

    def _pick_courses(self) -> list[int]:
        numbers = list(self._by_course)
        n = self._rng.choices((1, 2, 3), (50, 35, 15))[0]
        if n == 1:
            return [self._rng.choice(numbers[:2])]
        return numbers[:n]

    def _pick_modifiers(self, item: Item) -> tuple[str, ...]:
        if not item.modifiers or self._rng.random() >= 0.3:
            return ()
        return (self._rng.choice(item.modifiers),)

    def _break(self, data: dict[str, Any], kind: str) -> bytes:
        rng = self._rng
        items: list[dict[str, Any]] = data["items"]
        if kind == "broken_json":
            text = _dumps(data)
            return text[: len(text) // 2]
        if kind == "schema":
            variant = rng.randrange(4)
            if variant == 0:
                del data["table"]
            elif variant == 1:
                data["items"] = []
            elif variant == 2:
                items[0]["qty"] = "two"
            else:
                data["vip"] = True
        elif kind == "unknown_item":
            items[0]["item"] = "unicorn_steak"
        elif kind == "absurd_qty":
            items[0]["qty"] = rng.choice((0, -3, 10_000))
        elif kind == "price_field":
            items[0]["price"] = 1
        else:  # oversize: bigger than the gateway accepts, refused before parsing
            items[0]["note"] = "x" * (self._cfg.delivery.max_payload_bytes + 1024)
        return _dumps(data)


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
