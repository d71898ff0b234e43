"""Which station cooks a line: routing rules by group, item and modifier, and dining option.

The more specific level wins (modifier over item over group); at the same level a rule that names
the dining option wins over a rule for every option. Two winning rules that disagree are an error
found when the config loads, never a ticket made twice at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

from gateway.config import Route, SiteConfig, StationKind
from gateway.contract import Dining
from gateway.errors import ConfigProblem

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_LEVEL = {"modifier": 3, "item": 2, "group": 1}


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a line goes.

    Attributes:
        station: the one prep station that cooks it.
        also: stations that get a copy because a route says so explicitly.
        rule: index of the winning rule in ``routes``.
    """

    station: str
    also: tuple[str, ...]
    rule: int


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Two or more rules of equal rank disagree."""

    rules: tuple[int, ...]
    stations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unrouted:
    """No rule matches."""


class RouteTable:
    """Resolves lines to stations for one site's routes (pure, built once at start-up)."""

    def __init__(self, cfg: SiteConfig) -> None:
        """Index the routes by their target."""
        self._group_of = {i.id: i.group for i in cfg.items}
        self._by_target: dict[tuple[str, str], list[tuple[int, Route]]] = {}
        for n, r in enumerate(cfg.routes):
            level, target = _target(r)
            self._by_target.setdefault((level, target), []).append((n, r))

    def resolve(
        self, item: str, modifiers: Iterable[str], dining: Dining
    ) -> Resolution | Ambiguous | Unrouted:
        """Find the station for one line."""
        candidates: list[tuple[int, int, Route]] = []
        keys = [("modifier", m) for m in modifiers]
        keys += [("item", item), ("group", self._group_of.get(item, ""))]
        for level, target in keys:
            for n, r in self._by_target.get((level, target), ()):
                if r.dining and dining not in r.dining:
                    continue
                rank = _LEVEL[level] * 2 + (1 if r.dining else 0)
                candidates.append((rank, n, r))
        if not candidates:
            return Unrouted()
        best = max(c[0] for c in candidates)
        winners = [(n, r) for rank, n, r in candidates if rank == best]
        stations = sorted({r.station for _, r in winners})
        if len(stations) > 1:
            return Ambiguous(tuple(n for n, _ in winners), tuple(stations))
        n, r = winners[0]
        also = tuple(sorted({s for _, w in winners for s in w.also} - {r.station}))
        return Resolution(r.station, also, n)


def _target(r: Route) -> tuple[str, str]:
    if r.modifier is not None:
        return "modifier", r.modifier
    if r.item is not None:
        return "item", r.item
    assert r.group is not None  # guaranteed by Route's validator
    return "group", r.group


def check_routes(cfg: SiteConfig) -> list[ConfigProblem]:
    """Every item, for every dining option and modifier combination, goes to exactly one station."""
    problems: list[ConfigProblem] = []
    table = RouteTable(cfg)
    routed_mods = {r.modifier for r in cfg.routes if r.modifier is not None}
    for n, item in enumerate(cfg.items):
        mods = [m for m in item.modifiers if m in routed_mods]
        combos: list[Sequence[str]] = [(), *([m] for m in mods), *combinations(mods, 2)]
        for dining in Dining:
            for combo in combos:
                res = table.resolve(item.id, combo, dining)
                with_mods = f" with modifier(s) {', '.join(combo)}" if combo else ""
                if isinstance(res, Unrouted):
                    problems.append(
                        ConfigProblem(
                            f"items[{n}]",
                            f"item '{item.id}' routes to no station for {dining.value}{with_mods}",
                            f"add a [[routes]] entry for group '{item.group}' or item '{item.id}'",
                        )
                    )
                elif isinstance(res, Ambiguous):
                    rules = ", ".join(f"routes[{r}]" for r in res.rules)
                    problems.append(
                        ConfigProblem(
                            f"items[{n}]",
                            f"item '{item.id}' routes to {' and '.join(res.stations)} for "
                            f"{dining.value}{with_mods} ({rules})",
                            "keep one of these routes, make one more specific, or list the "
                            "second station in 'also' if both must get it",
                        )
                    )
    problems.extend(_dedupe_station_problems(cfg))
    return _unique(problems)


def _dedupe_station_problems(cfg: SiteConfig) -> list[ConfigProblem]:
    problems = []
    kinds = {s.id: s.kind for s in cfg.stations}
    for n, r in enumerate(cfg.routes):
        for key, station in [("station", r.station), *(("also", s) for s in r.also)]:
            if station not in kinds:
                problems.append(
                    ConfigProblem(
                        f"routes[{n}].{key}",
                        f"unknown station '{station}'",
                        f"use one of: {', '.join(sorted(kinds))}",
                    )
                )
            elif kinds[station] is StationKind.EXPO:
                problems.append(
                    ConfigProblem(
                        f"routes[{n}].{key}",
                        f"'{station}' is the expo station, which sees every order anyway",
                        "route to a prep station",
                    )
                )
    return problems


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[ConfigProblem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
