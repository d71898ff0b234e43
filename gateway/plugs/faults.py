"""Fault detection and the food-safety record, when the site has devices.

Entered after the telemetry history (the detectors warm up from it) and before the device
service, so both are ready for its first reading and leave after its last. The device plug
hands them every reading (``Wiring.recorders``) and every availability change
(``Wiring.watchers``): the devices know nothing of either.

* ``haccp``: every food-safety unit's readings at the configured interval, its excursions and
  the corrective actions (an acknowledgement's note of a food-safety alert), hash-chained;
* ``faults``: every device's detectors; what they say goes to the alert service, and the
  food-safety ones to the HACCP record as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.devices.events import AvailabilityChanged
    from gateway.devices.profile import Profile
    from gateway.telemetry.alerts import AlertEvent
    from gateway.telemetry.haccp_service import HaccpRecorder
    from gateway.telemetry.signals import Signal
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The HACCP record and the fault watch, when the site has devices."""
    if not w.cfg.devices:
        return

    profiles = w.profiles()
    haccp = await _haccp(w, profiles)
    await _watch(w, profiles, haccp)
    site = w.cfg.site.id
    from gateway.telemetry.notes import availability_note  # noqa: PLC0415

    def availability(change: AvailabilityChanged) -> None:
        if haccp is not None:
            haccp.availability(change.device, change.state, change.at, change.reason)
        if w.telemetry is not None and w.telemetry.running:
            w.telemetry.note(availability_note(site, change))

    w.watchers.append(availability)


async def _haccp(w: Wiring, profiles: Mapping[str, Profile]) -> HaccpRecorder | None:
    """The food-safety record, when the site has food-safety units."""
    from gateway.telemetry.haccp_service import HaccpRecorder, food_safety_units  # noqa: PLC0415
    from gateway.telemetry.schema import schemas_for_site  # noqa: PLC0415

    cfg = w.cfg
    units = food_safety_units(schemas_for_site(cfg, profiles))
    if not units:
        return None

    def alert(level: str, kind: str, text: str, subject: str) -> None:
        w.alert(level, kind, text, subject)

    haccp = await w.supervisor.enter(
        HaccpRecorder(
            cfg.haccp, cfg.haccp.directory(cfg.state.dir), cfg.state.durability, units,
            w.real_clock, site=cfg.site.id, alert=alert, time_uncertain=w.time.uncertain,
        ),
        "haccp",
    )  # fmt: skip
    w.recorders.append(haccp.reading)

    def acted(ev: AlertEvent) -> None:
        # An acknowledgement's note of a food-safety alert is its corrective action.
        a = ev.alert
        if ev.event == "acknowledged" and a.food_safety and a.acked_by and a.note:
            haccp.action(a.alert_id, a.subject, a.acked_by, a.note, ev.at)

    if w.alerts is not None:
        w.alerts.on_event(acted)
    return haccp


async def _watch(
    w: Wiring, profiles: Mapping[str, Profile], haccp: HaccpRecorder | None
) -> None:
    """Every device's detectors; what they say to the alerts, excursions to the record."""
    from gateway.telemetry.detectors import detectors_for  # noqa: PLC0415
    from gateway.telemetry.watch import FaultWatch  # noqa: PLC0415

    cfg = w.cfg
    detectors = {d.id: detectors_for(d, profiles[d.profile]) for d in cfg.devices}
    watch = FaultWatch(detectors, w.real_clock, history=cfg.state.dir / "telemetry.db")
    if w.alerts is not None:
        watch.on_signal(w.alerts.signal)
    if haccp is not None:

        def excursion(s: Signal) -> None:
            if s.food_safety:
                haccp.signal(s)

        watch.on_signal(excursion)
    w.faults = await w.supervisor.enter(watch, "faults")
    w.recorders.append(watch.reading)
    w.watchers.append(watch.availability)
