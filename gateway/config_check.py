"""Cross-reference checks of a parsed site file: every problem at once, each with its fix.

Pydantic checks each value on its own; this module checks that the values agree with each other
(ids are unique, references exist, every item routes to exactly one station, names exist in every
language the tablets show, devices name loaded profiles and only narrow their write ranges).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from gateway.config import StationKind
from gateway.devices.checks import check_devices
from gateway.errors import ConfigProblem
from gateway.routing.rules import check_routes

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.config import SiteConfig


def check_site(cfg: SiteConfig) -> list[ConfigProblem]:
    """Return every cross-reference problem in ``cfg`` (empty when the site is usable)."""
    problems: list[ConfigProblem] = []
    problems += _duplicates("stations", (s.id for s in cfg.stations))
    problems += _duplicates("groups", (g.id for g in cfg.groups))
    problems += _duplicates("items", (i.id for i in cfg.items))
    problems += _duplicates("modifiers", (m.id for m in cfg.modifiers))
    problems += _duplicates("courses", (str(c.number) for c in cfg.courses))
    problems += _duplicates("tables", cfg.tables.ids)
    if not cfg.tables.all_ids():
        problems.append(ConfigProblem("tables", "no tables", "set tables.count or tables.ids"))
    references = _stations(cfg) + _references(cfg)
    problems += references + _names(cfg)
    # Routing is only meaningful once references resolve; otherwise it repeats the same problem.
    if not references:
        problems += check_routes(cfg)
    problems += check_devices(cfg)
    return problems


def _duplicates(section: str, ids: Iterable[str]) -> list[ConfigProblem]:
    counts = Counter(ids)
    return [
        ConfigProblem(section, f"id '{i}' is used {n} times", "give each entry its own id")
        for i, n in counts.items()
        if n > 1
    ]


def _stations(cfg: SiteConfig) -> list[ConfigProblem]:
    problems = []
    ids = {s.id for s in cfg.stations}
    expos = [s.id for s in cfg.stations if s.kind is StationKind.EXPO]
    if len(expos) > 1:
        problems.append(
            ConfigProblem("stations", f"{len(expos)} expo stations", "keep exactly one expo")
        )
    for n, s in enumerate(cfg.stations):
        if s.backup is None:
            continue
        if s.backup not in ids:
            problems.append(
                ConfigProblem(
                    f"stations[{n}].backup",
                    f"unknown station '{s.backup}'",
                    f"use one of: {', '.join(sorted(ids))}",
                )
            )
        elif s.backup == s.id:
            problems.append(
                ConfigProblem(
                    f"stations[{n}].backup", "a station cannot back itself up", "name another"
                )
            )
    return problems


def _references(cfg: SiteConfig) -> list[ConfigProblem]:
    problems = []
    groups = {g.id for g in cfg.groups}
    mods = {m.id for m in cfg.modifiers}
    items = {i.id for i in cfg.items}
    courses = {c.number for c in cfg.courses}
    for n, g in enumerate(cfg.groups):
        if g.course not in courses:
            problems.append(_unknown(f"groups[{n}].course", "course", str(g.course), courses))
    for n, i in enumerate(cfg.items):
        if i.group not in groups:
            problems.append(_unknown(f"items[{n}].group", "group", i.group, groups))
        if i.course is not None and i.course not in courses:
            problems.append(_unknown(f"items[{n}].course", "course", str(i.course), courses))
        problems.extend(
            _unknown(f"items[{n}].modifiers", "modifier", m, mods)
            for m in i.modifiers
            if m not in mods
        )
    for n, r in enumerate(cfg.routes):
        for key, value, known in (
            ("group", r.group, groups),
            ("item", r.item, items),
            ("modifier", r.modifier, mods),
        ):
            if value is not None and value not in known:
                problems.append(_unknown(f"routes[{n}].{key}", key, value, known))
    return problems


def _unknown(key: str, what: str, value: str, known: Iterable[object]) -> ConfigProblem:
    choices = ", ".join(sorted(str(k) for k in known)[:12]) or "(none defined)"
    return ConfigProblem(key, f"unknown {what} '{value}'", f"use one of: {choices}")


def _names(cfg: SiteConfig) -> list[ConfigProblem]:
    problems = []
    langs = set(cfg.site.languages)
    named = [
        *((f"groups[{n}].names", g.names) for n, g in enumerate(cfg.groups)),
        *((f"items[{n}].names", i.names) for n, i in enumerate(cfg.items)),
        *((f"modifiers[{n}].names", m.names) for n, m in enumerate(cfg.modifiers)),
    ]
    for key, names in named:
        missing = sorted(langs - names.keys())
        if missing:
            problems.append(
                ConfigProblem(
                    key,
                    f"no name in {', '.join(missing)}",
                    "add " + ", ".join(f'{m} = "..."' for m in missing),
                )
            )
    return problems
