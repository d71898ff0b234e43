"""The devices' learnt register maps on disk: ``{state.dir}/device_maps.json``.

What a device was found to refuse (:class:`~gateway.devices.sparse.DeviceMap`) is kept so that
a restart plans around it at once instead of learning it again from refusals. One JSON file for
the site, written atomically (a temporary file in the same directory, flushed, then renamed over
the old one), so a crash leaves the old map or the new one, never half of one.

Each entry names the profile it was learnt with: a device moved to another profile starts
afresh. A file that cannot be read or parsed is ignored with one warning (the maps are learnt
again, which costs one refused read per merged read); deleting the file makes every device be
learnt again.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from gateway.devices.sparse import DeviceMap

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["MAPS_FILE", "load_maps", "maps_text", "save_maps", "write_maps"]

log = logging.getLogger(__name__)

MAPS_FILE = "device_maps.json"
_VERSION = 1


def load_maps(path: Path, profiles: Mapping[str, str]) -> dict[str, DeviceMap]:
    """The maps kept in ``path`` for devices still on the same profile.

    Args:
        path: the file.
        profiles: device id -> its profile id now; entries of other devices or profiles are
            dropped.

    Returns:
        Device id -> map; empty when there is no file, or (with one warning) a bad one.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        # Not UTF-8 (a damaged SD card, say) is as bad as unreadable: learn again, start.
        log.warning("cannot read %s (%s): device maps will be learnt again", path, err)
        return {}
    try:
        data = json.loads(text)
        _check_version(data)
        maps = {}
        for device, entry in dict(data["devices"]).items():
            if profiles.get(device) == entry["profile"]:
                maps[device] = DeviceMap.from_json(entry)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        log.warning(
            "ignoring %s, which is not a device map file (%s): device maps will be learnt again",
            path, err,
        )  # fmt: skip
        return {}
    return maps


def _check_version(data: dict[str, object]) -> None:
    if data.get("v") != _VERSION:
        raise ValueError(f"version {data.get('v')!r}, not {_VERSION}")


def maps_text(maps: Mapping[str, tuple[str, DeviceMap]]) -> str:
    """The file's content for every device's map (device id -> (profile id, map))."""
    data = {
        "v": _VERSION,
        "devices": {
            device: {"profile": profile, **m.to_json()}
            for device, (profile, m) in sorted(maps.items())
            if m
        },
    }
    return json.dumps(data, indent=1) + "\n"


def write_maps(path: Path, text: str) -> None:
    """Write ``text`` (from :func:`maps_text`) atomically: a temporary file, fsynced, renamed.

    Blocking (fsync): the service runs it on a thread, never on the event loop.

    Raises:
        OSError: the state directory cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def save_maps(path: Path, maps: Mapping[str, tuple[str, DeviceMap]]) -> None:
    """Write every device's map atomically (blocking; see :func:`write_maps`).

    Raises:
        OSError: the state directory cannot be written.
    """
    write_maps(path, maps_text(maps))
