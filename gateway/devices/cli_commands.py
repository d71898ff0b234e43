"""``gateway device docs | read | write``: the commands themselves (``gateway/cli.py`` wires them).

* ``docs PROFILE`` prints a profile's register map (a profile id, or the path of a profile file).
* ``read DEVICE`` reads every point of a Modbus device once, in as few requests as the profile
  allows, and prints the decoded values in aligned columns (point, value and unit, error when
  any, name), then how many requests it took, how long, and the slowest answer: about the
  fastest the device can be polled. It is a one-off connection of its own, not the running
  gateway's poller, so it works while the gateway is stopped (and while it runs, if the device
  takes a second connection). It starts from what the gateway learnt of the device's map
  (``{state.dir}/device_maps.json``), splits a read refused with exception 2 as the poller
  does, names the points the device lacks (their error column) and prints the profile fix.
* ``write DEVICE POINT VALUE`` puts the write through the same :class:`WriteGuard` the gateway
  uses. Refused: the reason is printed, nothing is sent, exit code 3. Approved: the words are
  written, the point is read back and printed. Every attempt is in ``{state.dir}/audit.jsonl``,
  and the "approved" record is written *before* anything is sent: a write that cannot be audited
  is never sent.

The rate limit of a command-line write counts only that process's writes: each ``gateway device
write`` is one write, and the running gateway's own limit is unaffected by it.

Device I/O goes through :class:`~gateway.devices.connection.ModbusConnection`, the one place
pymodbus is used; a ``DeviceError`` from it ends the command with one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from gateway.devices.audit import AuditLog
from gateway.devices.codec import decode_point
from gateway.devices.connection import ModbusConnection
from gateway.devices.gate import Priority
from gateway.devices.guard import Refused, WriteGuard, WriteRequest
from gateway.devices.maps_store import MAPS_FILE, load_maps
from gateway.devices.pace import Pace
from gateway.devices.plan import plan_reads
from gateway.devices.profile import PointType, load_profile, load_profiles
from gateway.devices.refusals import Policy, policy, run_probe
from gateway.devices.sparse import DeviceMap, Probe, covered_registers, ranges
from gateway.devices.tuning import Tuning
from gateway.errors import (
    DeviceError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnavailable,
    GatewayError,
)
from gateway.runner import run_async

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping, Sequence

    from gateway.config import DeviceInstance, SiteConfig
    from gateway.devices.codec import Value
    from gateway.devices.guard import Approved
    from gateway.devices.plan import ReadBlock
    from gateway.devices.profile import ModbusPoint, ModbusSettings, Profile

__all__ = [
    "EXIT_REFUSED",
    "docs",
    "parse_value",
    "read_device",
    "run_command",
    "write_device",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REFUSED = 3

AUDIT_FILE = "audit.jsonl"

_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})


def _say(text: str, stream: TextIO | None) -> None:
    # None means the process's stdout, looked up now: tests (and callers) may have replaced it.
    (stream or sys.stdout).write(text + "\n")


def run_command(main: Coroutine[Any, Any, int]) -> int:
    """Run an async command on the gateway's event loop (uvloop) and return its exit code."""
    codes: list[int] = []

    async def keep_code() -> None:
        codes.append(await main)

    run_async(keep_code())
    return codes[0]


# --- docs ----------------------------------------------------------------------------------


def docs(name: str, dirs: Sequence[Path] = (), out: TextIO | None = None) -> int:
    """Print the register map of a profile given by id or by file path.

    Args:
        name: a profile id (built in, or in ``dirs``) or the path of a profile file.
        dirs: extra profile directories (the site's ``devices_profiles``).
        out: where the map is written (default: stdout).

    Returns:
        The exit code: 0, or 1 when no such profile exists.

    Raises:
        ConfigError: the profile file is invalid.
    """
    path = Path(name)
    if name.endswith(".toml") or path.is_file():
        profile = load_profile(path)
    else:
        profiles = load_profiles(tuple(dirs))
        found = profiles.get(name)
        if found is None:
            known = ", ".join(sorted(profiles)) or "(none)"
            _say(f"gateway: error: no profile '{name}'; known profiles: {known}", sys.stderr)
            return EXIT_ERROR
        profile = found
    # Imported here: another module of this package, written separately, renders the map.
    from gateway.devices.docs import register_map  # noqa: PLC0415

    _say(register_map(profile).rstrip("\n"), out)
    return EXIT_OK


# --- a one-off Modbus connection -----------------------------------------------------------


class _Device:
    """One device over a short-lived connection of its own: reads and writes for one command."""

    def __init__(self, device: DeviceInstance, settings: ModbusSettings) -> None:
        if device.host is None:
            raise DeviceUnavailable(device.id, "it has no host in the site file")
        self._device = device
        self._timeout_s = settings.timeout_s
        # A command makes one attempt and reports a dead device at once: no backoff to wait for.
        self._conn = ModbusConnection(
            device.host, device.port, connect_timeout_s=max(1.0, settings.timeout_s)
        )

    async def __aenter__(self) -> Self:
        if not await self._conn.connect():
            self._conn.close()
            raise DeviceUnavailable(self._device.id, f"cannot connect to {self._conn.name}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._conn.close()

    @property
    def device_id(self) -> str:
        """The device's id."""
        return self._device.id

    async def read(self, block: ReadBlock, timeout_s: float | None = None) -> list[int]:
        """The registers (or 0/1 bits) of one planned read."""
        d = self._device
        return await self._conn.read(
            block.table,
            block.start,
            block.count,
            unit=d.unit,
            device=d.id,
            timeout_s=self._timeout_s if timeout_s is None else timeout_s,
            priority=Priority.WRITE,
        )

    async def write(self, point: ModbusPoint, words: list[int]) -> None:
        """Write approved words to the point's registers (or its coil)."""
        d = self._device
        await self._conn.write(
            point.table, point.address, words, unit=d.unit, device=d.id, timeout_s=self._timeout_s
        )


def _modbus_device(
    cfg: SiteConfig, profiles: Mapping[str, Profile], device_id: str
) -> tuple[DeviceInstance, Profile]:
    device = next((d for d in cfg.devices if d.id == device_id), None)
    if device is None:
        known = ", ".join(d.id for d in cfg.devices) or "(none)"
        msg = f"no device '{device_id}' in the site file; devices: {known}"
        raise GatewayError(msg)
    profile = profiles.get(device.profile)
    if profile is None:
        raise GatewayError(f"{device_id}: no profile '{device.profile}' is loaded")
    if profile.profile.protocol != "modbus" or device.host is None:
        raise GatewayError(f"{device_id} is not a Modbus TCP device (no host, or an MQTT profile)")
    return device, profile


def _show(point: ModbusPoint, value: Value) -> str:
    """A decoded value as a cook or technician reads it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(round(value, 6)) if isinstance(value, float) else str(value)
    label = point.enum.get(text) if isinstance(value, int) else None
    return f"{text} ({label})" if label else text


# --- read ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    value: str = ""
    error: str = ""


class _Reader:
    """One read of every point, learning the device's map as the poller does."""

    def __init__(self, link: _Device, profile: Profile, device_map: DeviceMap) -> None:
        self._link = link
        self._profile = profile
        self.map = device_map
        self._covered = covered_registers(profile.points)
        self.pace = Pace(profile.settings.timeout_s, Tuning().timeout_cap_s)
        self.requests = 0
        self.rows: dict[str, _Row] = {p.id: _Row() for p in profile.points}

    async def read_all(self) -> None:
        settings, m = self._profile.settings, self.map
        for block in plan_reads(m.readable(self._profile.points), settings, avoid=m.avoid,
                                cuts=m.cuts):  # fmt: skip
            try:
                self._show(block, await self._read(block))
            except DeviceRefused as err:
                what = policy(err.code)
                if what is Policy.SPLIT:
                    await self._probe(block)
                elif what is Policy.UNSUPPORTED:
                    m.add_undefined(block.points, err.code)
                elif what is Policy.UNREACHABLE:
                    raise  # the unit is not there: one line says it all
                else:
                    for p in block.points:
                        self.rows[p.id].error = err.detail
        for pid, code in m.undefined.items():
            if pid in self.rows:
                self.rows[pid].error = _UNDEFINED.get(code, f"refused (exception {code})")

    async def _probe(self, block: ReadBlock) -> None:
        probe = Probe(block, self._covered.get(block.table, frozenset()), self.map)
        try:
            await run_probe(probe, self._read)
        finally:
            # What was read before another error ended the probe is shown all the same.
            for part, words in probe.read:
                self._show(part, words)

    async def _read(self, block: ReadBlock) -> list[int]:
        """One request; a busy device is asked again, a slow one gets one longer wait."""
        for attempt in range(_BUSY_TRIES):
            self.requests += 1
            loop = asyncio.get_running_loop()
            sent = loop.time()
            try:
                words = await self._link.read(block, self.pace.timeout_s)
            except DeviceTimeout:
                if self.pace.timeout_s >= self.pace.cap_s:
                    raise
                self.pace = Pace(self.pace.cap_s, self.pace.cap_s)  # slow, maybe: one try more
                continue
            except DeviceRefused as err:
                if policy(err.code) is not Policy.BUSY or attempt == _BUSY_TRIES - 1:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
                continue
            self.pace.answered(loop.time() - sent)
            return words
        raise DeviceTimeout(self._link.device_id, self.pace.timeout_s)

    def _show(self, block: ReadBlock, words: list[int]) -> None:
        settings = self._profile.settings
        for p in block.points:
            self.rows[p.id].value = _show(p, decode_point(p, block.words_for(p, words), settings))


_BUSY_TRIES = 4
_UNDEFINED = {
    2: "not defined by the device (exception 2)",
    1: "the device lacks this table's function (exception 1)",
}


async def read_device(cfg: SiteConfig, device_id: str, out: TextIO | None = None) -> int:
    """Read every point of a Modbus device once and print a table of decoded values.

    A read the device refuses with exception 2 is split and bisected as the gateway's poller
    does, starting from what the gateway learnt already (``{state.dir}/device_maps.json``);
    points the device lacks show that in their error column, and the fix for the profile is
    printed under the table. A busy device is asked again; a slow one gets one longer wait.

    Args:
        cfg: the site (devices and profile directories).
        device_id: the device to read.
        out: where the table is written (default: stdout).

    Returns:
        The exit code: 0 when every point the device defines was read, 1 when some read
        failed otherwise (those points show the error).

    Raises:
        GatewayError: no such Modbus device; DeviceError when it does not answer.
    """
    profiles = load_profiles(cfg.devices_profiles)
    device, profile = _modbus_device(cfg, profiles, device_id)
    info = profile.profile
    known = load_maps(cfg.state.dir / MAPS_FILE, {device.id: info.id}).get(device.id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _Device(device, profile.settings) as link:
        reader = _Reader(link, profile, known or DeviceMap())
        await reader.read_all()
    took = loop.time() - started
    where = f"{device.host}:{device.port} unit {device.unit}"
    _say(f"{device.id} ({info.vendor} {info.model}) at {where}", out)
    vwidth = max(len(r.value) for r in reader.rows.values())
    uwidth = max(len(p.unit) for p in profile.points)
    header: tuple[str, ...] = ("point", "value".rjust(vwidth) + " " * (uwidth + 1), "error", "name")
    rows: list[tuple[str, ...]] = [
        # The value right-aligned and its unit just after it, as a number is read.
        (p.id, f"{reader.rows[p.id].value:>{vwidth}} {p.unit:<{uwidth}}", reader.rows[p.id].error,
         p.name)
        for p in profile.points
    ]  # fmt: skip
    if not any(r[2] for r in rows):  # no error column when there is nothing in it
        header, rows = (header[0], header[1], header[3]), [(r[0], r[1], r[3]) for r in rows]
    for line in _columns(header, rows):
        _say(line, out)
    slowest = reader.pace.slowest_s
    answers = "no answer timed" if slowest is None else f"slowest answer {slowest * 1000:.0f} ms"
    _say(
        f"{reader.requests} requests in {took:.2f} s ({answers}): polled at most about every "
        f"{max(took, 0.01):.2f} s",
        out,
    )
    if all(p.id in reader.map.undefined for p in profile.points):
        # Not a sparse map: a wrong unit id, or a profile of another device.
        _say(f"{device.id} refuses every point: check its unit id and its profile", out)
        return EXIT_ERROR
    for line in _fixes(reader.map, profile):
        _say(line, out)
    failed = any(r.error for pid, r in reader.rows.items() if pid not in reader.map.undefined)
    return EXIT_ERROR if failed else EXIT_OK


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _fixes(device_map: DeviceMap, profile: Profile) -> list[str]:
    """What to change in the profile so the device is not asked what it refuses."""
    lines: list[str] = []
    pid = profile.profile.id
    if device_map.undefined:
        ids = ", ".join(sorted(device_map.undefined))
        lines.append(f"not defined by the device: {ids}; fix: remove those [[points]] from {pid}")
    covered = covered_registers(profile.points)
    for table, addresses in sorted(device_map.avoid.items()):
        gaps = [a for a in addresses if a not in covered[table]]
        if gaps:
            lines.append(
                f"reads across {table.value} {ranges(gaps)} are refused: read around them; "
                f"fix: max_gap = 0 under [modbus] in {pid} saves the first refusal"
            )
    return lines


# --- write ---------------------------------------------------------------------------------


def parse_value(point: ModbusPoint | None, text: str) -> Value:
    """The command line's VALUE as the point's kind of value; the guard judges the result.

    Text that does not parse stays text, so the guard refuses it as the wrong type and the
    attempt is audited like any other.
    """
    if point is not None and point.type is PointType.STRING:
        return text
    if point is not None and point.type is PointType.BIT:
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


async def write_device(  # noqa: PLR0917 - the command's positional words, in their order
    cfg: SiteConfig,
    device_id: str,
    point_id: str,
    text: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    profiles: Mapping[str, Profile] | None = None,
    guard: WriteGuard | None = None,
    audit: AuditLog | None = None,
) -> int:
    """Write one value through the guard, read it back, and audit every step.

    Args:
        cfg: the site (devices, profile directories, state directory for the audit log).
        device_id: the device to write.
        point_id: the point to write.
        text: the value as typed.
        out: where the result is written (default: stdout).
        err: where a refusal is written (default: stderr).
        profiles: loaded profiles (default: load the site's).
        guard: the guard to ask (default: a new one; pass one to share its rate window and
            counters across several writes).
        audit: the audit log (default: ``{state.dir}/audit.jsonl``, opened and closed here).

    Returns:
        The exit code: 0 written, 3 refused by the guard (nothing was sent).

    Raises:
        DeviceError: the device did not answer or refused the write (audited as "failed"), or
            took it but a register reads back another value (audited as "written").
        AuditError: the audit log cannot be written (nothing was sent).
    """
    if profiles is None:
        profiles = load_profiles(cfg.devices_profiles)
    if guard is None:
        guard = WriteGuard(profiles, cfg.devices)
    if audit is None:
        fsync = cfg.state.durability == "full"
        with AuditLog(cfg.state.dir / AUDIT_FILE, fsync=fsync) as own:
            return await write_device(
                cfg, device_id, point_id, text, out, err, profiles=profiles, guard=guard, audit=own
            )
    device = next((d for d in cfg.devices if d.id == device_id), None)
    profile = profiles.get(device.profile) if device is not None else None
    point = profile.point(point_id) if profile is not None else None
    request = WriteRequest(device_id, point_id, parse_value(point, text), "cli")
    verdict = guard.check(request)
    if isinstance(verdict, Refused):
        audit.record(request, "refused", verdict.reason)
        what = f"{device_id}.{point_id} = {text}"
        _say(f"refused: {what}: {verdict.reason} (nothing was sent)", err or sys.stderr)
        return EXIT_REFUSED
    assert device is not None
    assert profile is not None
    return await _send(device, profile, verdict, audit, out)


async def _send(
    device: DeviceInstance, profile: Profile, ok: Approved, audit: AuditLog, out: TextIO | None
) -> int:
    request, point = ok.request, ok.point
    audit.record(request, "approved", "words " + " ".join(f"{w:#06x}" for w in ok.words))
    settings = profile.settings
    block = plan_reads([point], settings)[0]
    written = False
    try:
        async with _Device(device, settings) as link:
            await link.write(point, ok.words)
            written = True
            if point.self_clearing:
                # The device resets it once it has acted: a read-back would say nothing.
                audit.record(request, "written", "self-clearing: not read back")
                _say(f"{device.id}.{point.id}: written (the device clears it itself)", out)
                return EXIT_OK
            raw = block.words_for(point, await link.read(block))
    except DeviceError as e:
        if not written:
            # A write that timed out may still have been applied: the record says what we know.
            audit.record(request, "failed", e.detail)
            raise
        # The device took the write: the record must say so, even without a read-back.
        audit.record(request, "written", f"no read back: {e.detail}")
        raise DeviceError(device.id, f"written, but reading it back failed: {e.detail}") from None
    shown = _show(point, decode_point(point, raw, settings))
    if raw != ok.words:
        # The device took a write but holds another value: it clamped or ignored it, and the
        # operator must not believe the setting is what they typed (as DeviceService.write).
        audit.record(request, "written", f"read back {shown}, not the value sent")
        raise DeviceError(device.id, f"{point.id} reads back {shown} after the write")
    audit.record(request, "written", f"read back {shown}")
    _say(f"{device.id}.{point.id} = {shown} {point.unit}".rstrip() + " (written, read back)", out)
    return EXIT_OK
