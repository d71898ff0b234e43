"""The alert service: every alert of the gateway, durable, escalated, acknowledged over MQTT.

Entered right after the MQTT client, before any service that raises alerts; the clock watch,
which speaks before either, has its alerts held by the wiring until now (``Wiring.alert``).
It leaves after those services, so what they say while stopping is still kept and published.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.telemetry.alerts_bridge import AlertBridge
from gateway.telemetry.alerts_service import AlertService
from gateway.telemetry.alerts_store import AlertStore

if TYPE_CHECKING:
    from gateway.telemetry.alerts import AlertEvent
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The alert service and its MQTT adapter (claims ``rst/{site}/alerts/ack``)."""
    cfg = w.cfg
    store = AlertStore(
        cfg.state.dir, fsync=cfg.state.durability == "full", time_uncertain=w.time.uncertain
    )
    bridge = AlertBridge(cfg.site.id, w.mqtt)
    # Real time: people acknowledge in real minutes, whatever the demo's kitchen clock does.
    service = AlertService(cfg.alerts, store, bridge, w.real_clock)
    bridge.attach(service.take_ack, w.dispatcher)

    if cfg.devices:  # the alert timeline beside the readings, in the telemetry history
        from gateway.telemetry.notes import alert_note  # noqa: PLC0415 - with devices only

        def note(ev: AlertEvent) -> None:
            rec = w.telemetry
            if rec is None or not rec.running:
                return
            a = ev.alert
            rec.note(alert_note(
                cfg.site.id, device=a.subject, rule=a.rule, priority=a.priority.value,
                event=ev.event, active=ev.event != "cleared", at=ev.at, value=a.value,
                limit=a.limit,
            ))  # fmt: skip

        service.on_event(note)
    w.alerts = await w.supervisor.enter(service, "alerts")
    w.take_early_alerts()
