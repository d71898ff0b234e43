"""What the plugs share while the gateway is put together (``gateway.plugs``, ``gateway.app``).

Each plug builds one service and the adapters it needs from a :class:`Wiring` and puts what it
made back on it for the plugs after it: the store for the order service, the MQTT client and
its dispatcher for every adapter, the device service for the appliance actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.codec import encode
from gateway.contract import DeviceState, DeviceStatus
from gateway.events import AlertOut, Notice

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gateway.bridge import MqttBridge
    from gateway.clock import Clock
    from gateway.clockwatch import ClockWatch
    from gateway.config import SiteConfig
    from gateway.devices.actions import ActionService
    from gateway.devices.bridge import DeviceBridge
    from gateway.devices.events import AvailabilityChanged, ReadingsCallback
    from gateway.devices.profile import Profile
    from gateway.devices.service import DeviceService
    from gateway.events import Outbox
    from gateway.lifecycle import Supervisor
    from gateway.routing.service import OrderService
    from gateway.store.deadletters import DeadLetterLog
    from gateway.store.sqlite import Store
    from gateway.telemetry.alerts_service import AlertService
    from gateway.telemetry.recorder import Recorder
    from gateway.telemetry.sink import Sink
    from gateway.telemetry.watch import FaultWatch
    from gateway.transport.dispatch import DeadLetter, Dispatcher
    from gateway.transport.mqtt import MqttClient

__all__ = ["Wiring"]

#: The state directory's files; the newest write among them dates the newest durable record.
STATE_FILES = (
    "gateway.db", "gateway.db-wal", "audit.jsonl", "dead_letters.jsonl", "clock.json",
    "telemetry.db", "telemetry.db-wal", "alerts.json", "alerts.jsonl",
)  # fmt: skip


@dataclass
class Wiring:
    """What the plugs share while the gateway is put together; each plug adds what it makes.

    Attributes:
        cfg: the site.
        clock: kitchen time, for the order path (the demo runs it faster than real time).
        real_clock: real time, for polling, device availability, the clock watch and whatever
            waits on screens and the network (a screen heartbeats in real seconds).
        supervisor: enters each service; leaves them in reverse.
        time: whether the wall clock can be trusted (steps, NTP synchronisation).
        store: the durable state.
        dead_letters: messages given up on.
        mqtt: the one MQTT client.
        dispatcher: routes inbound messages by topic filter to the adapter that claimed it.
        bridge: the order path's MQTT adapter.
        alerts: the alert service (every alert goes through it; until it is running, alerts
            wait here).
        outbox: where the order service's events go (the bridge, maybe tapped by a service
            that also wants to see them).
        telemetry: the recorder of every reading (the history), when the site has devices.
        sinks: where the history streams to (InfluxDB), when configured.
        recorders: what the device service hands every reading to, as it is taken.
        watchers: what the device service tells of every availability change.
        faults: the fault watch (every device's detectors), when the site has devices.
        devices: the device service, when the site has appliances or sensors.
        device_bridge: its MQTT adapter.
        actions: the appliance actions, when the site has any.
        orders: the order service.
    """

    cfg: SiteConfig
    clock: Clock
    real_clock: Clock
    supervisor: Supervisor
    time: ClockWatch = field(init=False)
    store: Store = field(init=False)
    dead_letters: DeadLetterLog = field(init=False)
    mqtt: MqttClient = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    bridge: MqttBridge = field(init=False)
    alerts: AlertService | None = None
    outbox: Outbox = field(init=False)
    telemetry: Recorder | None = None
    sinks: list[Sink] = field(default_factory=list)
    recorders: list[ReadingsCallback] = field(default_factory=list)
    watchers: list[Callable[[AvailabilityChanged], None]] = field(default_factory=list)
    faults: FaultWatch | None = None
    devices: DeviceService | None = None
    device_bridge: DeviceBridge | None = None
    actions: ActionService | None = None
    orders: OrderService = field(init=False)
    _early_alerts: list[AlertOut] = field(default_factory=list)
    _profiles: Mapping[str, Profile] | None = None

    def profiles(self) -> Mapping[str, Profile]:
        """The device profiles (built in, and the site's), read once for every plug."""
        if self._profiles is None:
            from gateway.devices.profile import load_profiles  # noqa: PLC0415 - devices only

            self._profiles = load_profiles(self.cfg.devices_profiles)
        return self._profiles

    def alert(self, level: str, kind: str, text: str, subject: str = "gateway") -> None:
        """Tell people: the alert ``{subject}:{kind}`` at priority ``level``.

        ``level`` is ``critical``, ``high``, ``medium`` or ``low``; ``clear`` says the condition
        behind the alert is over. Held until the alert service runs (the clock watch speaks
        before it starts).
        """
        self.notice(AlertOut(Notice(level, kind, subject, text)))

    def notice(self, out: AlertOut) -> None:
        """Hand a service's alert to the alert service (held until there is one)."""
        if self.alerts is None:
            self._early_alerts.append(out)
        else:
            self.alerts.notice(out.alert)

    def take_early_alerts(self) -> None:
        """Hand the alerts raised before the alert service existed to it."""
        early, self._early_alerts = self._early_alerts, []
        for out in early:
            self.notice(out)

    def status(self, state: DeviceState) -> bytes:
        """The gateway's own retained status message."""
        cfg = self.cfg
        now = self.clock.now()
        return encode(DeviceStatus(device=cfg.client_id, state=state, role="gateway", at=now))

    @property
    def status_topic(self) -> str:
        """Where the gateway's own status is retained."""
        return f"rst/{self.cfg.site.id}/device/{self.cfg.client_id}/status"

    def dead_letter(self, letter: DeadLetter) -> None:
        """Keep a message the gateway gave up on, and tell people (before it is acknowledged)."""
        self.dead_letters.record(letter)
        text = (
            f"a message on {letter.topic} could not be handled after {letter.attempts} "
            f"attempts ({letter.error}); it is kept in {self.dead_letters.path}"
        )
        self.alert("critical", "dead_letter", text, subject=letter.owner)
