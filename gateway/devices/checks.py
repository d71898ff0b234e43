"""Config checks of the site's ``[[devices]]``: every problem at once, each with its fix.

Called by :func:`gateway.site_file.check_site` when the site file is loaded, so a device with
an unknown profile or a write range wider than its profile's stops the gateway at start-up with a
message naming the key, instead of surfacing at the first poll or the first write.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from gateway.devices.actions import check_actions
from gateway.devices.guard import check_device_writes
from gateway.devices.plan import plan_reads
from gateway.devices.profile import load_profiles
from gateway.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.config import DeviceInstance, SiteConfig
    from gateway.devices.profile import Profile

__all__ = ["check_devices", "read_notes"]


def check_devices(
    cfg: SiteConfig, profiles: Mapping[str, Profile] | None = None
) -> list[ConfigProblem]:
    """Return every problem with the site's devices (empty when they are usable).

    Args:
        cfg: the parsed site.
        profiles: the loaded profiles; None loads the built-in ones and ``devices_profiles``
            (a broken profile file is then reported as a problem too).

    Returns:
        Problems: a missing profile directory or broken profile file, duplicate device ids,
        unknown profiles or stations, a Modbus device without a host or an MQTT node with one,
        two devices at one Modbus address, points that cannot be read, and ``writes`` entries
        that do not narrow the profile's range.
    """
    if not cfg.devices and not cfg.devices_profiles and not cfg.appliance_actions:
        return []
    problems: list[ConfigProblem] = []
    if profiles is None:
        profiles, problems = _load(cfg)
    counts = Counter(d.id for d in cfg.devices)
    problems += [
        ConfigProblem("devices", f"id '{i}' is used {n} times", "give each device its own id")
        for i, n in counts.items()
        if n > 1
    ]
    stations = {s.id for s in cfg.stations}
    addresses: dict[tuple[str, int, int], str] = {}
    for n, d in enumerate(cfg.devices):
        key = f"devices[{n}]"
        if d.station is not None and d.station not in stations:
            choices = ", ".join(sorted(stations))
            problems.append(
                ConfigProblem(f"{key}.station", f"unknown station '{d.station}'", f"use {choices}")
            )
        profile = profiles.get(d.profile)
        if profile is None:
            known = ", ".join(sorted(profiles)[:20]) or "(none loaded)"
            problems.append(
                ConfigProblem(f"{key}.profile", f"unknown profile '{d.profile}'", f"use {known}")
            )
            continue
        if profile.profile.protocol == "mqtt":
            if d.host is not None:
                problems.append(
                    ConfigProblem(
                        f"{key}.host",
                        f"{d.profile} is an MQTT sensor node: it publishes by itself",
                        "remove host (and port, unit)",
                    )
                )
            continue
        problems += _modbus(key, d, profile, addresses)
    problems += check_device_writes(profiles, cfg.devices)
    problems += check_actions(cfg.appliance_actions, cfg, profiles)
    return problems


def read_notes(cfg: SiteConfig, profiles: Mapping[str, Profile] | None = None) -> list[str]:
    """Notes (not problems) on the site's Modbus profiles: merged reads across undefined registers.

    A read that spans registers no point defines works on a device that answers them and is
    refused with exception 2 by one that does not; the gateway then reads around them, so this
    is no error, but ``gateway check-config`` can show it before a device does.

    Returns:
        One line per such read of each profile a device of the site uses, with the fix.
    """
    # Imported here: the register-map module is only needed for these notes.
    from gateway.devices.docs import spanned_holes  # noqa: PLC0415
    from gateway.devices.sparse import ranges  # noqa: PLC0415

    if profiles is None:
        profiles = _load(cfg)[0]
    used = sorted({d.profile for d in cfg.devices if d.profile in profiles})
    return [
        f"profile {pid}: the read of {b.table.value} {b.start}..{b.start + b.count - 1} "
        f"(every {interval:g} s) spans {ranges(gaps)}, which no point defines; a device that "
        f"refuses them is read around them (max_gap = 0 under [modbus] saves the first refusal)"
        for pid in used
        if profiles[pid].profile.protocol == "modbus"
        for interval, b, gaps in spanned_holes(profiles[pid])
    ]


def _load(cfg: SiteConfig) -> tuple[dict[str, Profile], list[ConfigProblem]]:
    problems = [
        ConfigProblem(f"devices_profiles[{n}]", f"no directory {d}", "create it or fix the path")
        for n, d in enumerate(cfg.devices_profiles)
        if not d.is_dir()
    ]
    try:
        return load_profiles(cfg.devices_profiles), problems
    except ConfigError as err:
        problems += [
            ConfigProblem("devices_profiles", f"{err.path}: {p.key}: {p.message}", p.fix)
            for p in err.problems
        ]
        return {}, problems


def _modbus(
    key: str,
    d: DeviceInstance,
    profile: Profile,
    addresses: dict[tuple[str, int, int], str],
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if d.host is None:
        problems.append(
            ConfigProblem(f"{key}.host", f"{d.profile} is a Modbus device", "add its host")
        )
    else:
        other = addresses.setdefault((d.host, d.port, d.unit), d.id)
        if other != d.id:
            problems.append(
                ConfigProblem(
                    f"{key}.unit",
                    f"{d.id} and {other} are both unit {d.unit} at {d.host}:{d.port}",
                    "give each device behind one address its own unit",
                )
            )
    try:
        plan_reads(profile.points, profile.settings)
    except ValueError as err:
        problems.append(ConfigProblem(f"{key}.profile", str(err), "fix the profile"))
    return problems
