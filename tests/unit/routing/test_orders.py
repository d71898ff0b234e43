"""Semantic validation and pricing of orders (gateway.routing.orders)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import SiteConfig, StationKind
from gateway.contract import Dining, FieldError, Money, OrderLine, OrderRequest
from gateway.routing.orders import OrderValidator, PricedLine, PricedOrder
from gateway.routing.rules import RouteTable
from gateway.site_file import load_site

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-site.toml"
PLACED = datetime(2026, 1, 1, 19, 0, tzinfo=UTC)
ORDER_ID = UUID("00000000-0000-4000-8000-000000000001")


@cache
def demo() -> SiteConfig:
    return load_site(DEMO)


@cache
def validator() -> OrderValidator:
    return OrderValidator(demo(), RouteTable(demo()))


def line(line_id: str, item: str, qty: int = 1, *mods: str, **kw: Any) -> OrderLine:
    return OrderLine(line_id=line_id, item=item, qty=qty, modifiers=list(mods), **kw)


def order(*lines: OrderLine, table: str = "T1", dining: Dining = Dining.DINE_IN) -> OrderRequest:
    return OrderRequest(
        order_id=ORDER_ID, table=table, items=list(lines), placed_at=PLACED, dining=dining
    )


def accept(req: OrderRequest, v: OrderValidator | None = None, **kw: Any) -> PricedOrder:
    result = (v or validator()).validate(req, **kw)
    assert isinstance(result, PricedOrder), result
    return result


def reject(req: OrderRequest, v: OrderValidator | None = None, **kw: Any) -> dict[str, str]:
    result = (v or validator()).validate(req, **kw)
    assert isinstance(result, list), result
    assert result
    return {e.path: e.message for e in result}


def small_site(**overrides: Any) -> SiteConfig:
    """A site built without the load-time checks, to reach paths the checks normally prevent."""
    data: dict[str, Any] = {
        "site": {"id": "bistro", "name": "Bistro", "currency": "GBP"},
        "delivery": {"max_lines_per_order": 3, "max_qty": 5},
        "tables": {"ids": ["A"]},
        "stations": [
            {"id": "grill", "name": "Grill"},
            {"id": "expo", "name": "Expo", "kind": "expo"},
        ],
        "groups": [{"id": "mains", "names": {"en": "Mains"}, "course": 1}],
        "modifiers": [{"id": "rare", "names": {"en": "Rare"}, "prep_delta_s": -120}],
        "items": [
            {
                "id": "minute_steak",
                "group": "mains",
                "names": {"en": "Minute steak"},
                "price": 900,
                "prep_s": 60,
                "modifiers": ["rare"],
            },
        ],
        "routes": [{"group": "mains", "station": "grill"}],
    }
    data.update(overrides)
    return SiteConfig.model_validate(data)


def small_validator(**overrides: Any) -> OrderValidator:
    cfg = small_site(**overrides)
    return OrderValidator(cfg, RouteTable(cfg))


# --- accepted orders -------------------------------------------------------------------------


def test_prices_routes_and_times_a_demo_order() -> None:
    priced = accept(
        order(
            line("1", "burger", 2, "rare", "extra_cheese", note="no bun"),
            line("2", "bruschetta"),
            line("3", "cola", 1, "ice", "large"),
            line("4", "caesar", 1, "grilled_chicken"),
        )
    )
    burger, bruschetta, cola, caesar = priced.lines
    assert burger == PricedLine(
        line_id="1",
        item="burger",
        name="Trattoria burger",
        qty=2,
        modifiers=("rare", "extra_cheese"),
        note="no bun",
        course=2,
        station="grill",
        also=(),
        prep_s=600 - 120,
        unit_price=1450 + 150,
        line_total=3200,
    )
    assert (bruschetta.station, bruschetta.course, bruschetta.line_total) == ("cold", 1, 650)
    assert (cola.station, cola.unit_price) == ("bar", 550)
    assert (caesar.station, caesar.prep_s, caesar.unit_price) == ("grill", 480, 1450)
    assert priced.total == Money(amount=3200 + 650 + 550 + 1450, currency="EUR")
    assert (priced.order_id, priced.table, priced.dining) == (ORDER_ID, "T1", Dining.DINE_IN)
    assert priced.placed_at == PLACED


def test_also_and_dining_come_from_the_route_table() -> None:
    priced = accept(order(line("1", "mixed_grill"), line("2", "cola"), dining=Dining.TAKEAWAY))
    assert (priced.lines[0].station, priced.lines[0].also) == ("grill", ("fry",))
    assert priced.lines[1].station == "cold"  # takeaway drinks are packed at the cold pass
    assert priced.dining is Dining.TAKEAWAY


def test_course_is_line_then_item_then_group() -> None:
    priced = accept(
        order(
            line("1", "tiramisu", course=1),  # a dessert as a starter: the server's call
            line("2", "espresso"),  # item course 3, group (drinks) course 1
            line("3", "ribeye"),  # group course 2
        )
    )
    assert [ln.course for ln in priced.lines] == [1, 3, 2]


def test_name_is_in_the_sites_first_language() -> None:
    cfg = demo().model_copy(update={"site": demo().site.model_copy(update={"languages": ("it",)})})
    v = OrderValidator(cfg, RouteTable(cfg))
    assert accept(order(line("1", "espresso")), v).lines[0].name == "Caffè"


def test_modifier_prep_never_takes_prep_below_zero() -> None:
    priced = accept(order(line("1", "minute_steak", 1, "rare"), table="A"), small_validator())
    assert priced.lines[0].prep_s == 0
    assert priced.total == Money(amount=900, currency="GBP")


def test_placed_at_far_from_now_is_not_an_error() -> None:
    for placed in (datetime(1999, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)):
        req = order(line("1", "water")).model_copy(update={"placed_at": placed})
        assert accept(req).placed_at == placed


def test_validate_line_alone_uses_the_given_path() -> None:
    v = validator()
    ok = v.validate_line(line("9", "ribeye", 1, "well_done"), Dining.DINE_IN, "items[0]")
    assert isinstance(ok, PricedLine)
    assert ok.prep_s == 900 + 180
    bad = v.validate_line(line("9", "ribeye", 0, "ice"), Dining.DINE_IN, "line")
    assert isinstance(bad, list)
    assert {e.path for e in bad} == {"line.qty", "line.modifiers[0]"}


def test_validate_line_with_an_empty_path_gives_top_level_paths() -> None:
    # modify_line commands carry qty and modifiers at the top level of the message.
    bad = validator().validate_line(line("9", "ribeye", 99, "rare", "ice"), Dining.DINE_IN, "")
    assert isinstance(bad, list)
    assert {e.path for e in bad} == {"qty", "modifiers[1]"}


# --- rejected orders: each problem at its path -------------------------------------------------


def test_unknown_table() -> None:
    errors = reject(order(line("1", "water"), table="T41"))
    assert set(errors) == {"table"}
    assert "unknown table 'T41'" in errors["table"]
    assert "T1..T40" in errors["table"]
    assert "BAR1" in errors["table"]


def test_too_many_lines() -> None:
    lines = [line(str(n), "minute_steak") for n in range(4)]
    errors = reject(order(*lines, table="A"), small_validator())
    assert set(errors) == {"items"}
    assert "at most 3" in errors["items"]


def test_duplicate_line_id_names_the_first_use() -> None:
    errors = reject(order(line("a", "water"), line("b", "cola"), line("a", "soup")))
    assert set(errors) == {"items[2].line_id"}
    assert "items[0]" in errors["items[2].line_id"]


def test_unknown_item_suggests_close_matches() -> None:
    errors = reject(order(line("1", "burgers")))
    assert set(errors) == {"items[0].item"}
    assert "unknown item 'burgers'" in errors["items[0].item"]
    assert "did you mean 'burger'" in errors["items[0].item"]
    assert "did you mean" not in reject(order(line("1", "zzzzzzzz")))["items[0].item"]


def test_item_unavailable_in_config_or_86d() -> None:
    items = (demo().items[0].model_copy(update={"available": False}), *demo().items[1:])
    cfg = demo().model_copy(update={"items": items})
    v = OrderValidator(cfg, RouteTable(cfg))
    assert "not available" in reject(order(line("1", "bruschetta")), v)["items[0].item"]
    errors = reject(order(line("1", "water"), line("2", "ribeye")), unavailable={"ribeye"})
    assert set(errors) == {"items[1].item"}
    assert "'Ribeye steak' (ribeye) is not available" in errors["items[1].item"]


def test_quantity_limits() -> None:
    errors = reject(order(line("1", "water", 0), line("2", "water", -3), line("3", "water", 51)))
    assert set(errors) == {"items[0].qty", "items[1].qty", "items[2].qty"}
    assert "at least 1" in errors["items[0].qty"]
    assert "absurd quantity" in errors["items[2].qty"]
    assert "at most 50" in errors["items[2].qty"]
    accept(order(line("1", "water", 50)))


def test_huge_quantity_does_not_blow_up_the_message() -> None:
    errors = reject(order(line("1", "water", 10**5000)))
    assert len(errors["items[0].qty"]) < 200


def test_modifier_problems() -> None:
    errors = reject(
        order(
            line("1", "burger", 1, "rare", "rare"),  # duplicate
            line("2", "burger", 1, "mayo"),  # unknown
            line("3", "ribeye", 1, "ice"),  # exists, not allowed on the item
            line("4", "water", 1, "ice"),  # item takes no modifiers
        )
    )
    assert set(errors) == {
        "items[0].modifiers[1]",
        "items[1].modifiers[0]",
        "items[2].modifiers[0]",
        "items[3].modifiers[0]",
    }
    assert "listed twice" in errors["items[0].modifiers[1]"]
    assert "unknown modifier 'mayo'" in errors["items[1].modifiers[0]"]
    assert "allows: rare, well_done, no_onion" in errors["items[1].modifiers[0]"]
    assert "not allowed on 'ribeye'" in errors["items[2].modifiers[0]"]
    assert "allows: rare, well_done" in errors["items[2].modifiers[0]"]
    assert "'water' takes no modifiers" in errors["items[3].modifiers[0]"]


def test_unknown_modifier_on_unknown_item_is_still_reported() -> None:
    errors = reject(order(line("1", "nope", 1, "mayo")))
    assert set(errors) == {"items[0].item", "items[0].modifiers[0]"}


def test_unknown_course_lists_the_courses() -> None:
    errors = reject(order(line("1", "water", course=4)))
    assert errors == {
        "items[0].course": "unknown course 4; this site's courses are "
        "1 (starters), 2 (mains), 3 (desserts)"
    }


def test_every_problem_is_reported_at_once() -> None:
    errors = reject(
        order(
            line("1", "nope"),
            line("1", "ribeye", 0, "ice", course=9),
            line("3", "water"),
            table="X",
        )
    )
    assert set(errors) == {
        "table",
        "items[0].item",
        "items[1].line_id",
        "items[1].qty",
        "items[1].modifiers[0]",
        "items[1].course",
    }


def test_a_site_that_skipped_the_config_check_still_never_misroutes() -> None:
    unrouted = small_validator(routes=[{"item": "other", "station": "grill"}])
    errors = reject(order(line("1", "minute_steak"), table="A"), unrouted)
    assert "routes to no station" in errors["items[0]"]
    to_expo = small_validator(routes=[{"group": "mains", "station": "expo"}])
    errors = reject(order(line("1", "minute_steak"), table="A"), to_expo)
    assert "not a prep station" in errors["items[0]"]
    two = small_validator(
        routes=[{"group": "mains", "station": "grill"}, {"group": "mains", "station": "fry"}]
    )
    errors = reject(order(line("1", "minute_steak"), table="A"), two)
    assert "more than one station" in errors["items[0]"]


# --- properties ----------------------------------------------------------------------------


@st.composite
def valid_orders(draw: st.DrawFn) -> OrderRequest:
    cfg = demo()
    lines = []
    for n in range(draw(st.integers(1, 12))):
        item = draw(st.sampled_from(cfg.items))
        allowed = st.sampled_from(item.modifiers) if item.modifiers else st.nothing()
        mods = draw(st.lists(allowed, unique=True))
        course = draw(st.none() | st.sampled_from([c.number for c in cfg.courses]))
        qty = draw(st.integers(1, cfg.delivery.max_qty))
        lines.append(line(f"L{n}", item.id, qty, *mods, course=course))
    return OrderRequest(
        order_id=draw(st.uuids()),
        table=draw(st.sampled_from(sorted(cfg.tables.all_ids()))),
        items=lines,
        placed_at=PLACED,
        dining=draw(st.sampled_from(Dining)),
    )


@settings(max_examples=150)
@given(valid_orders())
def test_valid_orders_are_accepted_and_priced_consistently(req: OrderRequest) -> None:
    priced = accept(req)
    prep = {s.id for s in demo().stations if s.kind is StationKind.PREP}
    assert priced.total.amount == sum(ln.line_total for ln in priced.lines)
    assert priced.total.currency == demo().site.currency
    assert [ln.line_id for ln in priced.lines] == [ln.line_id for ln in req.items]
    for ln in priced.lines:
        assert ln.station in prep  # exactly one station, a prep station, never the expo
        assert ln.station not in ln.also
        assert ln.line_total == ln.unit_price * ln.qty
        assert ln.prep_s >= 0


_PATH = re.compile(r"^(table|items(\[\d+\](\.(line_id|item|qty|course|modifiers\[\d+\]))?)?)$")
_ids = st.sampled_from(["burger", "ribeye", "water", "cola", "caesar", "nope", "Burger"])
_mods = st.sampled_from(["rare", "ice", "grilled_chicken", "large", "mayo"])


@st.composite
def any_orders(draw: st.DrawFn) -> OrderRequest:
    lines = [
        line(
            draw(st.sampled_from(["a", "b", "c"])),
            draw(_ids),
            draw(st.integers(-2, 60)),
            *draw(st.lists(_mods, max_size=3)),
            course=draw(st.none() | st.integers(-1, 10)),
        )
        for _ in range(draw(st.integers(1, 5)))
    ]
    return OrderRequest(
        order_id=uuid4(),
        table=draw(st.sampled_from(["T1", "T99", "BAR2"])),
        items=lines,
        placed_at=PLACED,
        dining=draw(st.sampled_from(Dining)),
    )


@settings(max_examples=200)
@given(any_orders(), st.sets(_ids, max_size=2))
def test_any_order_gets_a_priced_order_or_located_errors(
    req: OrderRequest, unavailable: set[str]
) -> None:
    result = validator().validate(req, unavailable)
    if isinstance(result, PricedOrder):
        assert result.total.amount == sum(ln.line_total for ln in result.lines)
        assert not {ln.item for ln in result.lines} & unavailable
        return
    assert result
    for err in result:
        assert isinstance(err, FieldError)
        assert _PATH.match(err.path), err.path
        assert err.message
