"""The site file on disk: read its TOML, validate it into a :class:`SiteConfig`, cross-check it.

``load_site(path)`` returns a :class:`~gateway.config.SiteConfig` or raises
:class:`~gateway.errors.ConfigError` listing *every* problem at once, each with the key and a fix.
Schema problems (wrong types, unknown keys) come from pydantic, through the models of
:mod:`gateway.config`; :func:`check_site` then checks that the values agree with each other (ids
are unique, references exist, every item routes to exactly one station, names exist in every
language the tablets show) and hands the devices and the routes to the checks their own packages
own (:func:`gateway.devices.checks.check_devices`, :func:`gateway.routing.rules.check_routes`).

This module sits above the models and above those checks, which is why it is not part of
:mod:`gateway.config`: the checks need the models' types, and the models need nothing here.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from typing import TYPE_CHECKING

from pydantic import ValidationError

from gateway.config import SiteConfig, StationKind, problems_from_validation
from gateway.devices.checks import check_devices
from gateway.devices.profile import load_profiles
from gateway.devices.rules import merge_rules
from gateway.errors import ConfigError, ConfigProblem
from gateway.routing.rules import check_routes

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["check_site", "load_site", "parse_site"]


def parse_site(data: dict[str, object], path: Path | None = None) -> SiteConfig:
    """Validate an already-parsed TOML mapping and cross-check it.

    Args:
        data: the mapping ``tomllib`` made of the file (or a test built).
        path: the file it came from, named in the error; None when there is none.

    Raises:
        ConfigError: with every problem found, schema and cross-references alike.
    """
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(path, problems_from_validation(err)) from None
    problems = check_site(cfg)
    if problems:
        raise ConfigError(path, problems)
    return cfg


def load_site(path: Path) -> SiteConfig:
    """Read, validate and cross-check a site file; its relative paths are made relative to it.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has problems (every one of them).
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(
            path, [ConfigProblem("(file)", f"cannot read: {err.strerror}", "check the path")]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(
            path, [ConfigProblem("(file)", f"not valid TOML: {err}", "fix the syntax")]
        ) from None
    return _relative_to(parse_site(data, path), path.parent)


def _relative_to(cfg: SiteConfig, base: Path) -> SiteConfig:
    """Resolve the file's relative paths against its own directory, not the working directory.

    ``gateway run --config /etc/gateway/site.toml`` started from ``/`` must not put its state in
    ``/state``. Paths given on the command line stay relative to where the command runs.
    """

    def fix(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    state = cfg.state.model_copy(update={"dir": fix(cfg.state.dir)})
    mqtt = cfg.mqtt
    if mqtt.password_file is not None:
        mqtt = mqtt.model_copy(update={"password_file": fix(mqtt.password_file)})
    telemetry = cfg.telemetry
    influx = telemetry.influx
    if influx is not None and influx.token_file is not None:
        influx = influx.model_copy(update={"token_file": fix(influx.token_file)})
        telemetry = telemetry.model_copy(update={"influx": influx})
    dirs = tuple(fix(d) for d in cfg.devices_profiles)
    return cfg.model_copy(
        update={"state": state, "mqtt": mqtt, "telemetry": telemetry, "devices_profiles": dirs}
    )


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
    problems += _device_rules(cfg)
    return problems


def _device_rules(cfg: SiteConfig) -> list[ConfigProblem]:
    """Each device's ``rules`` override rules its profile has, with fields their kinds have."""
    if not any(d.rules for d in cfg.devices):
        return []
    try:
        profiles = load_profiles(tuple(d for d in cfg.devices_profiles if d.is_dir()))
    except ConfigError:
        return []  # check_devices has named the broken profile file
    problems: list[ConfigProblem] = []
    for n, d in enumerate(cfg.devices):
        profile = profiles.get(d.profile)
        if profile is None or not d.rules:
            continue  # an unknown profile is check_devices' problem
        _, found = merge_rules(
            profile.rules,
            d.rules,
            profile.point_kinds(),
            key=f"devices[{n}].rules",
            owner=f"profile {d.profile}",
        )
        problems += found
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
