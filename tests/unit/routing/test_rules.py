"""Routing rules: which station cooks a line, and the load-time check that each goes to one."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.config import SiteConfig, StationKind
from gateway.contract import Dining
from gateway.errors import ConfigError, ConfigProblem
from gateway.routing.rules import Ambiguous, Resolution, RouteTable, Unrouted, check_routes
from gateway.site_file import load_site, parse_site

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-site.toml"
TAKEAWAY_AND_DELIVERY = ["takeaway", "delivery"]


def site(routes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A small site with three prep stations and an expo; ``routes`` decide everything."""
    data: dict[str, Any] = {
        "site": {"id": "bistro", "name": "Bistro"},
        "tables": {"count": 2},
        "stations": [
            {"id": "grill", "name": "Grill"},
            {"id": "fry", "name": "Fryer"},
            {"id": "cold", "name": "Cold"},
            {"id": "expo", "name": "Expo", "kind": "expo"},
        ],
        "groups": [
            {"id": "mains", "names": {"en": "Mains"}},
            {"id": "drinks", "names": {"en": "Drinks"}},
        ],
        "modifiers": [
            {"id": "fries", "names": {"en": "With fries"}},
            {"id": "salad", "names": {"en": "With salad"}},
            {"id": "rare", "names": {"en": "Rare"}},
        ],
        "items": [
            {
                "id": "steak",
                "group": "mains",
                "names": {"en": "Steak"},
                "price": 2000,
                "prep_s": 600,
                "modifiers": ["fries", "salad", "rare"],
            },
            {"id": "cola", "group": "drinks", "names": {"en": "Cola"}, "price": 300, "prep_s": 10},
        ],
        "routes": routes,
    }
    data.update(copy.deepcopy(extra))
    return data


@cache
def demo() -> SiteConfig:
    return load_site(DEMO)


def table(routes: list[dict[str, Any]]) -> RouteTable:
    # model_validate, not parse_site: these tests look at resolve() on sites the check would refuse.
    return RouteTable(SiteConfig.model_validate(site(routes)))


def check(routes: list[dict[str, Any]]) -> list[ConfigProblem]:
    return check_routes(SiteConfig.model_validate(site(routes)))


BASE = [{"group": "mains", "station": "grill"}, {"group": "drinks", "station": "cold"}]


# --- resolve -----------------------------------------------------------------------------------


def test_group_rule() -> None:
    res = table(BASE).resolve("steak", [], Dining.DINE_IN)
    assert res == Resolution("grill", (), 0)


def test_item_rule_beats_group_rule() -> None:
    res = table([*BASE, {"item": "steak", "station": "fry"}]).resolve("steak", [], Dining.DINE_IN)
    assert isinstance(res, Resolution)
    assert (res.station, res.rule) == ("fry", 2)


def test_modifier_rule_beats_item_rule() -> None:
    routes = [*BASE, {"item": "steak", "station": "fry"}, {"modifier": "salad", "station": "cold"}]
    rt = table(routes)
    res = rt.resolve("steak", ["rare", "salad"], Dining.DINE_IN)
    assert isinstance(res, Resolution)
    assert res.station == "cold"
    # A modifier without a rule of its own does not change anything.
    res = rt.resolve("steak", ["rare"], Dining.DINE_IN)
    assert isinstance(res, Resolution)
    assert res.station == "fry"


def test_dining_specific_rule_wins_at_the_same_level() -> None:
    routes = [*BASE, {"group": "drinks", "station": "fry", "dining": TAKEAWAY_AND_DELIVERY}]
    rt = table(routes)
    assert check(routes) == []
    for dining, station in [
        (Dining.DINE_IN, "cold"),
        (Dining.TAKEAWAY, "fry"),
        (Dining.DELIVERY, "fry"),
    ]:
        res = rt.resolve("cola", [], dining)
        assert isinstance(res, Resolution)
        assert res.station == station


def test_dining_specific_rule_does_not_beat_a_more_specific_level() -> None:
    routes = [
        {"group": "mains", "station": "grill", "dining": ["takeaway"]},
        {"group": "mains", "station": "cold"},
        {"item": "steak", "station": "fry"},
    ]
    res = table(routes).resolve("steak", [], Dining.TAKEAWAY)
    assert isinstance(res, Resolution)
    assert res.station == "fry"
    routes = [{"item": "steak", "station": "grill", "dining": ["takeaway"]}]
    routes.append({"modifier": "fries", "station": "fry"})
    res = table(routes).resolve("steak", ["fries"], Dining.TAKEAWAY)
    assert isinstance(res, Resolution)
    assert res.station == "fry"


def test_no_matching_rule_is_unrouted() -> None:
    rt = table([{"group": "mains", "station": "grill", "dining": ["delivery"]}])
    assert rt.resolve("steak", [], Dining.DINE_IN) == Unrouted()
    assert rt.resolve("no_such_item", [], Dining.DELIVERY) == Unrouted()


def test_two_rules_at_the_same_rank_are_ambiguous() -> None:
    res = table([*BASE, {"group": "mains", "station": "fry"}]).resolve("steak", [], Dining.DINE_IN)
    assert res == Ambiguous(rules=(0, 2), stations=("fry", "grill"))


def test_two_modifiers_to_different_stations_are_ambiguous() -> None:
    routes = [
        *BASE,
        {"modifier": "fries", "station": "fry"},
        {"modifier": "salad", "station": "cold"},
    ]
    res = table(routes).resolve("steak", ["fries", "salad"], Dining.DINE_IN)
    assert isinstance(res, Ambiguous)
    assert res.stations == ("cold", "fry")


def test_same_station_twice_is_not_ambiguous_and_alsos_are_merged() -> None:
    routes = [
        {"group": "mains", "station": "grill", "also": ["fry"]},
        {"group": "mains", "station": "grill", "also": ["cold", "grill"]},
        {"group": "drinks", "station": "cold"},
    ]
    res = table(routes).resolve("steak", [], Dining.DINE_IN)
    assert res == Resolution("grill", ("cold", "fry"), 0)


def test_also_sends_a_copy_on_purpose() -> None:
    routes = [*BASE, {"item": "steak", "station": "grill", "also": ["fry"]}]
    res = table(routes).resolve("steak", [], Dining.DINE_IN)
    assert res == Resolution("grill", ("fry",), 2)
    assert check(routes) == []


def test_resolve_accepts_any_iterable_of_modifiers() -> None:
    routes = [*BASE, {"modifier": "fries", "station": "fry"}]
    res = table(routes).resolve("steak", (m for m in ["fries"]), Dining.DINE_IN)
    assert isinstance(res, Resolution)
    assert res.station == "fry"


# --- check_routes ------------------------------------------------------------------------------


def test_clean_routes_have_no_problems() -> None:
    assert check(BASE) == []


def test_item_routing_to_no_station_is_reported_per_dining_with_a_fix() -> None:
    found = check([{"group": "mains", "station": "grill"}])
    assert len(found) == len(Dining)
    assert {p.key for p in found} == {"items[1]"}
    assert all("routes to no station" in p.message for p in found)
    assert found[0].fix == "add a [[routes]] entry for group 'drinks' or item 'cola'"


def test_unrouted_for_one_dining_option_only() -> None:
    routes = [BASE[0], {"group": "drinks", "station": "cold", "dining": ["dine_in"]}]
    found = check(routes)
    assert [p.message for p in found] == [
        "item 'cola' routes to no station for takeaway",
        "item 'cola' routes to no station for delivery",
    ]


def test_item_routing_to_two_stations_is_reported_with_the_rules() -> None:
    found = check([*BASE, {"group": "drinks", "station": "fry"}])
    assert {p.key for p in found} == {"items[1]"}
    assert "routes to cold and fry" in found[0].message
    assert "routes[1], routes[2]" in found[0].message
    assert "'also'" in found[0].fix


def test_ambiguity_through_a_modifier_combination_is_found() -> None:
    routes = [
        *BASE,
        {"modifier": "fries", "station": "fry"},
        {"modifier": "salad", "station": "cold"},
    ]
    found = check(routes)
    assert found
    assert all("with modifier(s) fries, salad" in p.message for p in found)


def test_route_to_the_expo_or_an_unknown_station() -> None:
    routes = [
        {"group": "mains", "station": "expo"},
        {"group": "drinks", "station": "cold", "also": ["bar"]},
    ]
    found = {p.key: p for p in check(routes)}
    assert "expo station" in found["routes[0].station"].message
    assert found["routes[0].station"].fix == "route to a prep station"
    assert found["routes[1].also"].fix == "use one of: cold, expo, fry, grill"


def test_problems_are_not_repeated() -> None:
    found = check([*BASE, {"group": "drinks", "station": "fry"}])
    assert len(found) == len(set(found))


def test_parse_site_refuses_ambiguous_routing() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(
            site([*BASE, {"item": "cola", "station": "fry"}, {"item": "cola", "station": "grill"}])
        )
    assert {p.key for p in err.value.problems} == {"items[1]"}


# --- the demo site -----------------------------------------------------------------------------


def test_demo_every_item_routes_to_exactly_one_prep_station() -> None:
    cfg = demo()
    rt = RouteTable(cfg)
    prep = {s.id for s in cfg.stations if s.kind is StationKind.PREP}
    for item in cfg.items:
        for dining in Dining:
            for mods in [(), *((m,) for m in item.modifiers)]:
                res = rt.resolve(item.id, mods, dining)
                assert isinstance(res, Resolution), (item.id, dining, mods)
                assert res.station in prep
                assert res.station not in res.also


@pytest.mark.parametrize(
    ("item", "mods", "dining", "station", "also"),
    [
        ("arancini", (), Dining.DINE_IN, "fry", ()),  # item beats group (starters -> cold)
        ("burrata", (), Dining.DINE_IN, "cold", ()),
        ("mixed_grill", (), Dining.DINE_IN, "grill", ("fry",)),
        ("caesar", ("grilled_chicken",), Dining.DINE_IN, "grill", ()),  # modifier beats group
        ("caesar", ("no_onion",), Dining.DINE_IN, "cold", ()),
        ("cola", (), Dining.DINE_IN, "bar", ()),
        ("cola", ("ice",), Dining.TAKEAWAY, "cold", ()),  # dining-specific group rule
        ("espresso", (), Dining.DELIVERY, "cold", ()),
    ],
)
def test_demo_routes(
    item: str, mods: tuple[str, ...], dining: Dining, station: str, also: tuple[str, ...]
) -> None:
    res = RouteTable(demo()).resolve(item, mods, dining)
    assert isinstance(res, Resolution)
    assert (res.station, res.also) == (station, also)
