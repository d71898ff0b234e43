"""The device service: polls the site's Modbus appliances, judges their availability, writes.

``DeviceService`` is a :class:`~gateway.lifecycle.Service` (STYLE.md 1): one named poller task
per Modbus connection (``devices:poll:{host}:{port}``) and one fan-out task. Entering tries
every connection once, all at the same time, and returns with the pollers running; a device
that is down at start is not an error (it starts offline, and its connection keeps retrying).

Connections come from a factory given to the service (``connect``, a
:data:`~gateway.devices.connector.ConnectionFactory`), one per ``(host, port)``: the gateway
passes :func:`gateway.devices.connection.modbus_connection`, tests pass fakes, and this module
never imports pymodbus.

Data flows one way: pollers report each poll; the service turns it into :class:`DeviceReadings`
(only values actually read, never filled in from an earlier poll) and
:class:`AvailabilityChanged` (once per change) for its :class:`DeviceOutbox`, the MQTT bridge.
Readings of MQTT sensor nodes arrive through :meth:`DeviceService.submit` and reach the
subscribers the same way, without being published again.

What a device was found to refuse (its sparse register map, :mod:`gateway.devices.sparse`) is
kept per device in memory and in ``{state.dir}/device_maps.json``
(:mod:`~gateway.devices.maps_store`: read when the service is made, written atomically whenever
a device's map grows), so a restart plans around it at once. Each new finding is logged once,
with the fix to put in the profile.

Queues and their overflow policies:

* requests to a device: one in flight per connection, writes first (the connection's gate);
* readings to in-process subscribers (:meth:`DeviceService.subscribe`): one bounded buffer per
  subscriber, drained by the fan-out task; when a subscriber falls behind, its *oldest* readings
  are dropped and counted in ``Subscription.dropped`` (logged once): a reading is a snapshot, so
  the newest are the ones worth keeping;
* readings to a recorder (:meth:`DeviceService.record`, the telemetry history): no buffer here
  at all. The recorder is called with each reading as it is taken and keeps it in a bounded
  queue of its own, whose overflow it counts and alerts; a durable record must not sit behind a
  queue that drops the oldest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.contract import DeviceState
from gateway.devices.availability import Availability
from gateway.devices.codec import decode_point
from gateway.devices.events import DeviceReadings
from gateway.devices.fanout import Fanout, Subscription
from gateway.devices.gate import Priority
from gateway.devices.guard import Refused
from gateway.devices.maps_store import MAPS_FILE, load_maps, maps_text, write_maps
from gateway.devices.plan import plan_reads
from gateway.devices.poller import DeviceStats, Poller, PollJob
from gateway.devices.sparse import covered_registers, ranges
from gateway.devices.tuning import Tuning
from gateway.errors import ConfigError, ConfigProblem, DeviceError
from gateway.lifecycle import Service

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gateway.clock import Clock
    from gateway.config import DeviceInstance, SiteConfig
    from gateway.devices.audit import AuditLog
    from gateway.devices.availability import Outcome
    from gateway.devices.codec import Value
    from gateway.devices.connector import Connection, ConnectionFactory
    from gateway.devices.events import AvailabilityChanged, DeviceOutbox, ReadingsCallback
    from gateway.devices.guard import Approved, WriteGuard, WriteRequest
    from gateway.devices.profile import ModbusPoint, Profile, Table
    from gateway.devices.sparse import DeviceMap

__all__ = ["DeviceService", "Tuning"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Target:
    device: DeviceInstance
    profile: Profile
    connection: Connection


def _interval(point: ModbusPoint, device: DeviceInstance, profile: Profile) -> float:
    """A point's poll interval: its own, else the site's for the device, else the profile's.

    The site's ``poll_s`` is also the fastest any point of that device is polled: a site that
    slows a device down (a weak link, a slow controller) means all of it.
    """
    base = device.poll_s or profile.settings.poll_s
    if point.poll_s is None:
        return base
    return max(point.poll_s, device.poll_s) if device.poll_s else point.poll_s


def _regs(point: ModbusPoint) -> list[tuple[Table, int]]:
    return [(point.table, a) for a in range(point.address, point.address + point.registers)]


def _jobs(device: DeviceInstance, profile: Profile) -> list[PollJob]:
    by_interval: dict[float, list[ModbusPoint]] = defaultdict(list)
    for point in profile.points:
        by_interval[_interval(point, device, profile)].append(point)
    settings = profile.settings
    covered = covered_registers(profile.points)
    return [
        PollJob(
            device=device.id,
            unit=device.unit,
            interval=interval,
            timeout_s=settings.timeout_s,
            blocks=tuple(plan_reads(points, settings)),
            settings=settings,
            points=tuple(points),
            covered=covered,
        )
        for interval, points in sorted(by_interval.items())
    ]


class DeviceService(Service):
    """The site's appliances and sensors, as readings, availability and guarded writes.

    A :class:`~gateway.lifecycle.Service` named ``devices``: entering (``async with``, or the
    supervisor) tries every connection once and returns with the loops running
    (``devices:poll:{host}:{port}`` per connection, ``devices:fanout``); a loop that fails
    makes the service leave with ``ServiceFailed``.
    """

    name = "devices"

    def __init__(  # noqa: PLR0917 - the signature agreed in docs/design/devices.md
        self,
        cfg: SiteConfig,
        profiles: Mapping[str, Profile],
        outbox: DeviceOutbox,
        guard: WriteGuard,
        audit: AuditLog,
        clock: Clock,
        *,
        connect: ConnectionFactory,
        tuning: Tuning | None = None,
        on_fault: Callable[[str, str], None] | None = None,
    ) -> None:
        """Plan the connections and polls; nothing is opened before ``async with``.

        Args:
            cfg: the site; its ``devices`` are watched.
            profiles: loaded profiles by id.
            outbox: where readings and availability changes go (the MQTT bridge).
            guard: approves or refuses every write.
            audit: records every write attempt.
            clock: wall time for the stamps of records, monotonic time for every wait.
            connect: makes the connection to each ``(host, port)``, once per pair, with
                ``tuning`` (the gateway passes
                :func:`gateway.devices.connection.modbus_connection`; tests pass fakes).
            tuning: timing knobs (defaults suit a kitchen).
            on_fault: told ``(device, reason)`` once when a device starts reporting its own
                failure (Modbus exception 4: it needs service), for an alert; the device is
                also degraded or offline with that reason.

        Raises:
            ConfigError: a device names a profile that is not loaded, or a Modbus device has
                no host (``check_devices`` reports both when the site file is loaded).
        """
        self._outbox = outbox
        self._guard = guard
        self._audit = audit
        self._clock = clock
        self.tuning = t = tuning or Tuning()
        self._targets: dict[str, _Target] = {}
        self._avail: dict[str, Availability] = {}
        # When each MQTT sensor node was last heard, on the monotonic clock (a wall-clock step
        # must not make a sensor look fresh or silent).
        self._sensors: dict[str, float | None] = {}
        connections: dict[tuple[str, int], Connection] = {}
        jobs: dict[tuple[str, int], list[PollJob]] = defaultdict(list)
        problems: list[ConfigProblem] = []
        for n, d in enumerate(cfg.devices):
            profile = profiles.get(d.profile)
            if profile is None:
                problems.append(
                    ConfigProblem(
                        f"devices[{n}].profile",
                        f"profile '{d.profile}' is not loaded",
                        "fix the id or add its directory to devices_profiles",
                    )
                )
            elif profile.profile.protocol == "mqtt":
                self._sensors[d.id] = None
            elif d.host is None:
                problems.append(
                    ConfigProblem(f"devices[{n}].host", "a Modbus device needs one", "add it")
                )
            else:
                key = (d.host, d.port)
                if key not in connections:
                    # One connection per (host, port): units behind one Modbus TCP gateway
                    # share it, and its poller takes their requests in turn (STYLE.md 8).
                    connections[key] = connect(d.host, d.port, t)
                self._targets[d.id] = _Target(d, profile, connections[key])
                self._avail[d.id] = Availability(d.id, clock, offline_after=t.offline_after)
                jobs[key] += _jobs(d, profile)
        if problems:
            raise ConfigError(None, problems)
        self._maps_path = cfg.state.dir / MAPS_FILE
        on_profile = {d: target.profile.profile.id for d, target in self._targets.items()}
        self._maps = load_maps(self._maps_path, on_profile)
        self._maps_failed = False
        # The file's next content, written by the "maps" loop on a thread (it fsyncs: never on
        # the event loop, which an SD card's fsync could stall for tens of milliseconds).
        self._maps_unsaved: str | None = None
        self._maps_dirty = asyncio.Event()
        self._maps_lock = threading.Lock()
        self._pollers = [
            Poller(
                connections[key],
                job_list,
                self,
                clock,
                backoff_max_s=t.backoff_max_s,
                tick_s=t.poll_tick_s,
                timeout_cap_s=t.timeout_cap_s,
                maps=self._maps,
                learnt=self._learnt,
                fault=on_fault,
            )
            for key, job_list in jobs.items()
        ]
        # Per device, the holes already said (those of a map loaded at start count as said).
        self._told: dict[str, set[tuple[Table, int]]] = {
            d: {(t, a) for t, addresses in m.avoid.items() for a in addresses}
            for d, m in self._maps.items()
        }
        self._fanout = Fanout(t.subscriber_buffer)
        self._watchers: list[Callable[[AvailabilityChanged], None]] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Try every connection once (concurrently), then start the pollers and the fan-out."""
        async with asyncio.TaskGroup() as first:
            for p in self._pollers:
                first.create_task(p.connection.connect(), name=f"connect:{p.connection.name}")
        for p in self._pollers:
            self.spawn(p.run(), f"poll:{p.connection.name}")
        self.spawn(self._fanout.run(), "fanout")
        self.spawn(self._keep_maps(), "maps")
        up = sum(p.connection.connected for p in self._pollers)
        log.info(
            "device service ready: %d Modbus devices on %d connections (%d connected), "
            "%d MQTT sensors",
            len(self._targets), len(self._pollers), up, len(self._sensors),
        )  # fmt: skip

    async def stop(self) -> None:
        """Close the connections (the pollers have stopped), say the devices are not watched."""
        for p in self._pollers:
            p.connection.close()
        text, self._maps_unsaved = self._maps_unsaved, None
        if text is not None:  # learnt after the last write: kept for next time
            await asyncio.to_thread(self._write_maps, text)
        # A retained "online" would outlive us and mislead every screen that reads it.
        stopped = [a.stop("the gateway stopped polling it") for a in self._avail.values()]
        for change in stopped:
            if change is not None:
                self._announce(change)
        log.info("device service stopped")

    # --- readings in and out ------------------------------------------------------------

    def polled(self, device: str, outcome: Outcome, detail: str, values: dict[str, Value]) -> None:
        """Take one poll's result from a poller (``PollSink``)."""
        now = self._clock.now()
        change = self._avail[device].observe(outcome, detail, now)
        if change is not None:
            self._announce(change)
        if values:
            readings = DeviceReadings(device, now, values)
            self._outbox.send(readings)
            self._fanout.publish(readings)

    def _learnt(self, device: str, device_map: DeviceMap, undefined: list[ModbusPoint]) -> None:
        """A poller learnt more of a device's map: say it once, with the fix; keep it."""
        profile = self._targets[device].profile.profile.id
        if undefined:
            ids = ", ".join(p.id for p in undefined)
            codes = sorted({device_map.undefined[p.id] for p in undefined})
            log.warning(
                "device %s does not define %s (exception %s): not polled; "
                "fix: remove those [[points]] from profile %s",
                device, ids, "/".join(map(str, codes)), profile,
            )  # fmt: skip
        # Holes (registers no point covers) learnt since the last time: said once each.
        told = self._told.setdefault(device, set())
        points = {a for p in self._targets[device].profile.points for a in _regs(p)}
        for table, addresses in sorted(device_map.avoid.items()):
            holes = {a for a in addresses if (table, a) not in points and (table, a) not in told}
            told.update((table, a) for a in holes)
            if holes:
                log.warning(
                    "device %s refuses reads across %s registers %s: it is read around them; "
                    "fix: max_gap = 0 under [modbus] in profile %s saves the first refusal",
                    device, table.value, ranges(holes), profile,
                )  # fmt: skip
        maps = {d: (self._targets[d].profile.profile.id, m) for d, m in self._maps.items()}
        # Serialised here, on the loop, so the thread writes a consistent snapshot.
        self._maps_unsaved = maps_text(maps)
        self._maps_dirty.set()

    async def _keep_maps(self) -> None:
        while True:
            await self._maps_dirty.wait()
            self._maps_dirty.clear()
            # Taken here, on the loop: the thread never touches what the loop updates.
            text, self._maps_unsaved = self._maps_unsaved, None
            if text is not None:
                await asyncio.to_thread(self._write_maps, text)

    def _write_maps(self, text: str) -> None:
        # One write at a time: a write cancelled at shutdown goes on in its thread, and the
        # last one (stop's, the newest text) must land after it, not interleave with it.
        try:
            with self._maps_lock:
                write_maps(self._maps_path, text)
        except OSError as err:
            if not self._maps_failed:  # kept in memory; said once
                log.warning("cannot keep device maps in %s: %s", self._maps_path, err)
                self._maps_failed = True

    def faulty(self) -> frozenset[str]:
        """Devices reporting their own failure (Modbus exception 4) now: a person must act.

        Each one is also degraded or offline with that reason, counted in
        ``DeviceStats.faults`` and logged once when it starts.
        """
        return frozenset().union(*(p.faulty for p in self._pollers))

    def device_maps(self) -> dict[str, DeviceMap]:
        """What each device was found to refuse (devices with nothing learnt are absent)."""
        return {d: m for d, m in self._maps.items() if m}

    def submit(self, readings: DeviceReadings) -> None:
        """Take validated readings of an MQTT sensor node (from the MQTT bridge)."""
        if readings.device not in self._sensors:
            return  # the bridge only subscribes to known sensors; a stray one is not ours
        self._sensors[readings.device] = self._clock.monotonic()
        self._fanout.publish(readings)

    def subscribe(self, callback: ReadingsCallback) -> Subscription:
        """Call ``callback`` with every reading (Modbus and MQTT), from the fan-out task.

        The callback runs in the event loop and must not block. Readings wait in a bounded
        buffer (``Tuning.subscriber_buffer``); past it the oldest are dropped and counted in the
        returned subscription's ``dropped``. ``Subscription.close()`` unsubscribes.
        """
        return self._fanout.subscribe(callback)

    def _announce(self, change: AvailabilityChanged) -> None:
        self._outbox.send(change)
        for watcher in self._watchers:
            watcher(change)

    def on_availability(self, callback: Callable[[AvailabilityChanged], None]) -> None:
        """Call ``callback`` with every availability change, as it is announced (must not block).

        For services that judge a device by its availability (a fault detector's "silent").
        """
        self._watchers.append(callback)

    def record(self, callback: ReadingsCallback) -> None:
        """Call ``callback`` with every reading (Modbus and MQTT) at once, as it is taken.

        For a consumer that must see every reading (the telemetry history): nothing is
        buffered or dropped here, so the callback must only queue the reading (bounded, with an
        overflow policy of its own) and return; it runs in the event loop, in the poller's turn.
        """
        self._fanout.record(callback)

    # --- state as data --------------------------------------------------------------------

    def availability(self, device: str) -> DeviceState:
        """A device's state; an MQTT node is offline when silent for ``sensor_silence_s``.

        Raises:
            KeyError: ``device`` is not a device of this site.
        """
        if device in self._avail:
            return self._avail[device].state
        if device not in self._sensors:
            raise KeyError(f"no device {device!r} at this site")
        seen = self._sensors[device]
        fresh = seen is not None and self._clock.monotonic() - seen < self.tuning.sensor_silence_s
        return DeviceState.ONLINE if fresh else DeviceState.OFFLINE

    def poll_stats(self) -> dict[str, DeviceStats]:
        """Poll counters and recent interval jitter of every Modbus device."""
        return {dev: s for p in self._pollers for dev, s in p.stats.items()}

    def jitter_s(self) -> list[float]:
        """Every recent poll-interval jitter sample (seconds, late positive), all devices."""
        return [x for p in self._pollers for s in p.stats.values() for x in s.jitter_s]

    # --- writes ---------------------------------------------------------------------------

    async def write(self, request: WriteRequest) -> Approved | Refused:
        """Write through the guard, ahead of the polls waiting on that connection; audit it.

        Every attempt is in the audit log: ``refused`` (with the reason; nothing sent),
        ``approved`` (before anything is sent: an unauditable write is never sent), then
        ``written`` (with the value read back) or ``failed`` (with the error; a write that
        timed out may still have been applied). A ``self_clearing`` point (a command the device
        resets once done) is not read back: the device accepting the write confirms it.

        Returns:
            The guard's verdict: ``Approved`` once written and read back, or ``Refused``.

        Raises:
            DeviceError: the device did not take the write, or took it but the value read back
                differs (the device clamped or ignored it).
            AuditError: the audit log cannot be written.
        """
        verdict = self._guard.check(request)
        if isinstance(verdict, Refused):
            self._audit.record(request, "refused", verdict.reason)
            return verdict
        target = self._targets[request.device]  # the guard approves known Modbus devices only
        point, words, d = verdict.point, verdict.words, target.device
        self._audit.record(request, "approved", "words " + " ".join(f"{w:#06x}" for w in words))
        conn, timeout_s = target.connection, target.profile.settings.timeout_s
        written = False
        try:
            await conn.write(
                point.table, point.address, words, unit=d.unit, device=d.id, timeout_s=timeout_s
            )
            written = True
            if point.self_clearing:
                self._audit.record(request, "written", "self-clearing: not read back")
                return verdict
            back = await conn.read(
                point.table, point.address, point.registers, unit=d.unit, device=d.id,
                timeout_s=timeout_s, priority=Priority.WRITE,
            )  # fmt: skip
        except DeviceError as err:
            outcome = "written" if written else "failed"
            self._audit.record(request, outcome, ("no read back: " if written else "") + err.detail)
            raise
        except asyncio.CancelledError:
            self._audit.record(request, "written" if written else "failed", "cancelled")
            raise
        shown = decode_point(point, back, target.profile.settings)
        if back != words:
            # The device took a write (so "written"), but not this value: it clamped or ignored
            # it, and whoever asked must not believe the setpoint is what they sent.
            self._audit.record(request, "written", f"read back {shown!r}, not the value sent")
            raise DeviceError(d.id, f"{point.id} reads back {shown!r} after the write")
        self._audit.record(request, "written", f"read back {shown!r}")
        return verdict
