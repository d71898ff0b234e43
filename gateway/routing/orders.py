"""Semantic validation and pricing of orders against the site's menu (pure: no I/O, no clock).

The codec has already checked the *shape* of an order; this module checks that it makes sense for
this restaurant (the table exists, the items are on the menu and available, the modifiers are
allowed on them) and prices it from the gateway's own menu. Every problem is reported at once,
each at the path a tablet developer can find (``items[2].modifiers[0]``), saying what is allowed.

A tablet's clock is not trusted but not judged either: ``placed_at`` is kept as sent, never
rejected for being far from the gateway's time (tablets' clocks drift).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - runtime: a TypeAdapter may read the dataclasses
from typing import TYPE_CHECKING, Final
from uuid import UUID  # noqa: TC003 - same

from gateway.config import Item, Modifier, SiteConfig, StationKind
from gateway.contract import Dining, FieldError, Money, OrderLine, OrderRequest
from gateway.routing.rules import Ambiguous, Resolution, RouteTable, Unrouted

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["OrderValidator", "PricedLine", "PricedOrder"]

#: How many choices to list in a message before "...": enough to orient, short enough to read.
_LIST_MAX: Final = 12


@dataclass(frozen=True, slots=True)
class PricedLine:
    """An order line checked against the menu, priced and routed.

    Attributes:
        line_id: the tablet's id for the line (unique within the order).
        item: the menu item id.
        name: the item's name in the site's first language (what a cook reads).
        qty: how many.
        modifiers: modifier ids, in the order the tablet sent them.
        note: the server's free-text note, if any.
        course: ``line.course``, else the item's course, else its group's course.
        station: the one prep station that cooks it.
        also: stations that get a copy because a route says so.
        prep_s: the item's prep time plus every modifier's ``prep_delta_s``, never below 0.
        unit_price: the item's price plus every modifier's price (minor units).
        line_total: ``unit_price * qty``.
    """

    line_id: str
    item: str
    name: str
    qty: int
    modifiers: tuple[str, ...]
    note: str | None
    course: int
    station: str
    also: tuple[str, ...]
    prep_s: int
    unit_price: int
    line_total: int


@dataclass(frozen=True, slots=True)
class PricedOrder:
    """An order the kitchen can take: every line valid, priced and routed.

    Attributes:
        order_id: the tablet's idempotency key.
        table: a table id known to the site.
        dining: dine-in, takeaway or delivery.
        placed_at: the tablet's time, as sent.
        lines: the priced lines, in the tablet's order.
        total: the sum of the line totals, in the site's currency.
    """

    order_id: UUID
    table: str
    dining: Dining
    placed_at: datetime
    lines: tuple[PricedLine, ...]
    total: Money


class OrderValidator:
    """Checks orders against one site's menu and routes; built once at start-up, then pure."""

    def __init__(self, cfg: SiteConfig, routes: RouteTable) -> None:
        """Build the lookup tables an order is checked against.

        Args:
            cfg: the site (tables, menu, courses and limits).
            routes: the site's routing rules.
        """
        self._routes = routes
        self._currency = cfg.site.currency
        self._lang = cfg.site.languages[0]
        self._max_lines = cfg.delivery.max_lines_per_order
        self._max_qty = cfg.delivery.max_qty
        self._tables = cfg.tables.all_ids()
        self._tables_hint = _tables_hint(cfg)
        self._items: dict[str, Item] = {i.id: i for i in cfg.items}
        self._mods: dict[str, Modifier] = {m.id: m for m in cfg.modifiers}
        self._group_course = {g.id: g.course for g in cfg.groups}
        self._courses = {c.number: c.name for c in cfg.courses}
        self._prep_stations = frozenset(s.id for s in cfg.stations if s.kind is StationKind.PREP)

    def validate(
        self, req: OrderRequest, unavailable: Collection[str] = ()
    ) -> PricedOrder | list[FieldError]:
        """Check, price and route a whole order.

        Args:
            req: the decoded order.
            unavailable: item ids that are 86'd right now (on top of the menu's ``available``).

        Returns:
            The priced order, or every problem found (never an empty list).
        """
        errors: list[FieldError] = []
        if req.table not in self._tables:
            errors.append(
                FieldError(
                    path="table",
                    message=f"unknown table '{req.table}'; this site's tables are "
                    f"{self._tables_hint}",
                )
            )
        if len(req.items) > self._max_lines:
            errors.append(
                FieldError(
                    path="items",
                    message=f"{len(req.items)} lines; an order may have at most "
                    f"{self._max_lines}: split it into several orders",
                )
            )
        first_use: dict[str, int] = {}
        lines: list[PricedLine] = []
        for n, line in enumerate(req.items):
            path = f"items[{n}]"
            if line.line_id in first_use:
                errors.append(
                    FieldError(
                        path=f"{path}.line_id",
                        message=f"line_id '{line.line_id}' is already used by "
                        f"items[{first_use[line.line_id]}]; give each line its own line_id",
                    )
                )
            else:
                first_use[line.line_id] = n
            result = self.validate_line(line, req.dining, path, unavailable)
            if isinstance(result, PricedLine):
                lines.append(result)
            else:
                errors.extend(result)
        if errors:
            return errors
        total = sum(ln.line_total for ln in lines)
        return PricedOrder(
            order_id=req.order_id,
            table=req.table,
            dining=req.dining,
            placed_at=req.placed_at,
            lines=tuple(lines),
            total=Money(amount=total, currency=self._currency),
        )

    def validate_line(
        self,
        line: OrderLine,
        dining: Dining,
        path: str,
        unavailable: Collection[str] = (),
    ) -> PricedLine | list[FieldError]:
        """Check, price and route one line (also used for ``modify_line`` commands).

        Args:
            line: the line as the tablet sent it.
            dining: the order's dining option (routing may depend on it).
            path: where the line is in the message, e.g. ``items[2]``, prefixed to error paths;
                ``""`` when the line's fields are top-level (a ``modify_line`` command).
            unavailable: item ids that are 86'd right now.

        Returns:
            The priced line, or every problem found with it (never an empty list).
        """
        errors: list[FieldError] = []
        item = self._check_item(line.item, _join(path, "item"), unavailable, errors)
        if line.qty < 1:
            errors.append(
                FieldError(
                    path=_join(path, "qty"),
                    message=f"qty must be at least 1 (got {line.qty}); to drop a line, leave "
                    "it out or send void_line",
                )
            )
        elif line.qty > self._max_qty:
            # Not echoing the number: it may be thousands of digits long.
            errors.append(
                FieldError(
                    path=_join(path, "qty"),
                    message=f"absurd quantity: at most {self._max_qty} of one item per line",
                )
            )
        mods = self._check_modifiers(line.modifiers, item, _join(path, "modifiers"), errors)
        if line.course is not None and line.course not in self._courses:
            errors.append(
                FieldError(
                    path=_join(path, "course"),
                    message=f"unknown course {line.course}; this site's courses are "
                    + ", ".join(f"{n} ({name})" for n, name in sorted(self._courses.items())),
                )
            )
        if errors or item is None:
            return errors
        route = self._route(item, mods, dining, path)
        if isinstance(route, FieldError):
            return [route]
        prep = item.prep_s + sum(m.prep_delta_s for m in mods)
        unit = item.price + sum(m.price for m in mods)
        return PricedLine(
            line_id=line.line_id,
            item=item.id,
            name=item.names.get(self._lang, item.id),
            qty=line.qty,
            modifiers=tuple(m.id for m in mods),
            note=line.note,
            course=self._course_of(line, item),
            station=route.station,
            also=route.also,
            prep_s=max(0, prep),  # "rare" may take more off than a quick item has
            unit_price=unit,
            line_total=unit * line.qty,
        )

    # --- internals -----------------------------------------------------------------------------

    def _check_item(
        self, item_id: str, path: str, unavailable: Collection[str], errors: list[FieldError]
    ) -> Item | None:
        item = self._items.get(item_id)
        if item is None:
            close = difflib.get_close_matches(item_id, self._items, n=3)
            hint = f"; did you mean {_quoted(close)}?" if close else ""
            errors.append(
                FieldError(
                    path=path,
                    message=f"unknown item '{item_id}'{hint} (the retained menu topic lists "
                    "every item on sale)",
                )
            )
            return None
        if not item.available or item.id in unavailable:
            errors.append(
                FieldError(
                    path=path,
                    message=f"'{item.names.get(self._lang, item.id)}' ({item.id}) is not "
                    "available right now (86'd); remove the line or choose another item",
                )
            )
        return item

    def _check_modifiers(
        self, mod_ids: list[str], item: Item | None, path: str, errors: list[FieldError]
    ) -> list[Modifier]:
        mods: list[Modifier] = []
        seen: set[str] = set()
        for k, mod_id in enumerate(mod_ids):
            where = f"{path}[{k}]"
            if mod_id in seen:
                errors.append(
                    FieldError(
                        path=where,
                        message=f"modifier '{mod_id}' is listed twice; list each modifier once",
                    )
                )
                continue
            seen.add(mod_id)
            mod = self._mods.get(mod_id)
            if mod is None:
                errors.append(
                    FieldError(path=where, message=f"unknown modifier '{mod_id}'; {_allowed(item)}")
                )
            elif item is not None and mod_id not in item.modifiers:
                errors.append(
                    FieldError(
                        path=where,
                        message=f"modifier '{mod_id}' is not allowed on '{item.id}'; "
                        f"{_allowed(item)}",
                    )
                )
            else:
                mods.append(mod)
        return mods

    def _course_of(self, line: OrderLine, item: Item) -> int:
        if line.course is not None:
            return line.course
        if item.course is not None:
            return item.course
        return self._group_course.get(item.group, 1)

    def _route(
        self, item: Item, mods: list[Modifier], dining: Dining, path: str
    ) -> Resolution | FieldError:
        res = self._routes.resolve(item.id, (m.id for m in mods), dining)
        # The config check makes these impossible for a site loaded with load_site; a config built
        # another way must still never send a line to no station, two stations or the expo.
        if isinstance(res, Unrouted | Ambiguous) or res.station not in self._prep_stations:
            why = (
                "no station"
                if isinstance(res, Unrouted)
                else "more than one station"
                if isinstance(res, Ambiguous)
                else f"'{res.station}', which is not a prep station"
            )
            return FieldError(
                path=path,
                message=f"'{item.id}' routes to {why} for {dining.value}: the site's routing "
                "rules need fixing (tell the manager)",
            )
        return res


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _allowed(item: Item | None) -> str:
    if item is None:
        return "the menu lists each item's modifiers"
    if not item.modifiers:
        return f"'{item.id}' takes no modifiers"
    return f"'{item.id}' allows: {', '.join(item.modifiers)}"


def _quoted(ids: list[str]) -> str:
    return " or ".join(f"'{i}'" for i in ids)


def _tables_hint(cfg: SiteConfig) -> str:
    t = cfg.tables
    parts = [f"{t.prefix}1..{t.prefix}{t.count}"] if t.count else []
    parts += sorted(t.ids)
    if len(parts) > _LIST_MAX:
        parts = [*parts[:_LIST_MAX], "..."]
    return ", ".join(parts) or "(none)"
