"""Appliances and sensors (the device service) and appliance actions, when the site has them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.errors import AuditError

if TYPE_CHECKING:
    from gateway.clockwatch import Step
    from gateway.wiring import Wiring

log = logging.getLogger(__name__)


async def plug_devices(w: Wiring) -> None:
    """Modbus appliances and MQTT sensor nodes, when the site has any."""
    cfg = w.cfg
    if not cfg.devices:
        return
    # Imported here: a site without appliances never loads pymodbus.
    from gateway.devices.audit import AuditLog  # noqa: PLC0415
    from gateway.devices.bridge import DeviceBridge  # noqa: PLC0415
    from gateway.devices.connection import modbus_connection  # noqa: PLC0415
    from gateway.devices.guard import WriteGuard  # noqa: PLC0415
    from gateway.devices.service import DeviceService  # noqa: PLC0415

    profiles = w.profiles()
    fsync = cfg.state.durability == "full"
    audit = await w.supervisor.enter(
        AuditLog(cfg.state.dir / "audit.jsonl", fsync=fsync, time_uncertain=w.time.uncertain),
        "audit",
    )
    def mark_step(step: Step) -> None:
        # The records above a step may carry times off by it: the log marks the place. One
        # that cannot be written is not worth stopping the clock watch for: the audit log
        # refuses appliance writes then anyway, and says why.
        try:
            audit.note_clock_step(step.size_s)
        except AuditError as err:
            log.warning("cannot mark the clock's step in the audit log: %s", err)

    w.time.on_step.append(mark_step)
    bridge = DeviceBridge(cfg.site.id, w.mqtt, cfg.devices, profiles)
    guard = WriteGuard(profiles, cfg.devices, monotonic=w.real_clock.monotonic)
    def fault(device: str, reason: str) -> None:
        # A controller reporting its own failure (Modbus exception 4) needs a service engineer.
        w.alert("high", "device_fault", f"{device}: {reason}", subject=device)

    w.devices = DeviceService(
        cfg, profiles, bridge, guard, audit, w.real_clock, connect=modbus_connection,
        on_fault=fault,
    )  # fmt: skip
    w.device_bridge = bridge
    bridge.attach(w.devices.submit, w.dispatcher)
    for recorder in w.recorders:  # the telemetry history, the fault watch: entered before us
        w.devices.record(recorder)
    for watcher in w.watchers:
        w.devices.on_availability(watcher)
    await w.supervisor.enter(w.devices, "devices")


async def plug_actions(w: Wiring) -> None:
    """Appliance actions (a fired fry ticket starts its vat's timer), when the site has any."""
    if w.devices is None or not w.cfg.appliance_actions:
        return
    from gateway.devices.actions import ActionService, Catalog  # noqa: PLC0415

    # Tickets the order service sends pass by the action service on their way out; its writes
    # are guarded and audited like any other.
    actions = ActionService(
        w.cfg.appliance_actions, Catalog.from_site(w.cfg), w.devices.write, w.clock
    )
    w.outbox = actions.tap(w.outbox)
    w.actions = await w.supervisor.enter(actions, "actions")
