"""The gateway process: one supervisor, and the services it runs, named once in ``PLUGS``.

``Gateway`` enters the plugs of :data:`PLUGS` in order; each builds one service (and the adapters
it needs) from the shared :class:`Wiring` and enters it through the :class:`Supervisor`, or
does nothing when the site has no use for it (a site without appliances has no device service).
Then the topic dispatcher is opened, so the first message reaches a service only once every
service is ready, and the gateway announces itself ``online`` (its last will says
``offline``). Leaving stops the services in reverse order. Adding a service is one plug
function and one line in ``PLUGS``; the README lists them in this order.

Whatever fails (a start, or a service's loop while running) leaves every service the same way
and comes out of ``Gateway`` as one :class:`~gateway.errors.ServiceFailed`, which the command
line prints as one line with exit code 1.

``run_gateway`` runs one until SIGINT/SIGTERM or ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from gateway.bridge import MqttBridge
from gateway.clock import Clock, SystemClock
from gateway.clockwatch import ClockWatch, check_start_time, newest_mtime
from gateway.codec import encode
from gateway.contract import AlertLevel, DeviceState, DeviceStatus
from gateway.lifecycle import Service, Supervisor
from gateway.routing.outbound import alert
from gateway.routing.service import OrderService, OrderStats
from gateway.sdnotify import Notifier, watchdog, watchdog_interval
from gateway.store.deadletters import DeadLetterLog
from gateway.store.sqlite import Store
from gateway.transport.dispatch import Dispatcher
from gateway.transport.mqtt import MqttClient, Will

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from gateway.config import SiteConfig
    from gateway.devices.actions import ActionService
    from gateway.devices.bridge import DeviceBridge
    from gateway.devices.service import DeviceService
    from gateway.events import AlertOut, Outbox
    from gateway.transport.dispatch import DeadLetter

log = logging.getLogger(__name__)

_GC_YOUNG_THRESHOLD = 20_000
_STATE_FILES = ("gateway.db", "gateway.db-wal", "audit.jsonl", "dead_letters.jsonl", "clock.json")
_SMALL_BROKER_WINDOW = 100  # below it a broker holds throughput to its round trips


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
        outbox: where the order service's events go (the bridge, maybe tapped by a service
            that also wants to see them).
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
    outbox: Outbox = field(init=False)
    devices: DeviceService | None = None
    device_bridge: DeviceBridge | None = None
    actions: ActionService | None = None
    orders: OrderService = field(init=False)
    _early_alerts: list[AlertOut] = field(default_factory=list)

    def alert(self, level: str, kind: str, text: str, subject: str = "gateway") -> None:
        """Tell people: published on the alerts topic (held until the MQTT client exists)."""
        out = alert(AlertLevel(level), kind, subject, text, self.clock.now())
        if hasattr(self, "bridge"):
            self.bridge.send(out)
        else:
            self._early_alerts.append(out)

    def send_early_alerts(self) -> None:
        """Publish the alerts raised before the MQTT client existed."""
        early, self._early_alerts = self._early_alerts, []
        for out in early:
            self.bridge.send(out)

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


async def plug_time(w: Wiring) -> None:
    """Whether the wall clock can be trusted; first, before anything writes a record."""
    state = w.cfg.state.dir
    state.mkdir(parents=True, exist_ok=True)
    # The newest write to the state files is the newest durable record's time, near enough.
    newest = newest_mtime(*(state / n for n in _STATE_FILES))
    w.time = await w.supervisor.enter(ClockWatch(w.real_clock, state / "clock.json", w.alert))
    if check_start_time(w.real_clock.now(), newest, w.alert):
        w.time.behind_records = True


async def plug_state(w: Wiring) -> None:
    """The durable store and the dead-letter file (both in the state directory)."""
    cfg = w.cfg
    full = cfg.state.durability == "full"
    w.store = await w.supervisor.enter(Store(cfg.state.dir / "gateway.db", cfg.state.durability),
                                       "store")  # fmt: skip
    w.dead_letters = await w.supervisor.enter(
        DeadLetterLog(cfg.state.dir / "dead_letters.jsonl", fsync=full, now=w.clock.now,
                      time_uncertain=w.time.uncertain)
    )  # fmt: skip


async def plug_mqtt(w: Wiring) -> None:
    """The MQTT client (connected when this returns), its dispatcher and the order bridge."""
    cfg = w.cfg
    w.mqtt = MqttClient(
        cfg.mqtt.url,
        cfg.client_id,
        username=cfg.mqtt.username,
        password=cfg.mqtt.password(),
        keepalive_s=cfg.mqtt.keepalive_s,
        will=Will(w.status_topic, w.status(DeviceState.OFFLINE)),
    )
    w.dispatcher = Dispatcher(w.mqtt, on_dead_letter=w.dead_letter)
    w.bridge = MqttBridge(cfg.site.id, w.mqtt, cfg.delivery.max_payload_bytes)
    w.outbox = w.bridge
    await w.supervisor.enter(w.mqtt, "mqtt")
    w.send_early_alerts()


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
    from gateway.devices.profile import load_profiles  # noqa: PLC0415
    from gateway.devices.service import DeviceService  # noqa: PLC0415

    profiles = load_profiles(cfg.devices_profiles)
    fsync = cfg.state.durability == "full"
    audit = await w.supervisor.enter(
        AuditLog(cfg.state.dir / "audit.jsonl", fsync=fsync, time_uncertain=w.time.uncertain),
        "audit",
    )
    bridge = DeviceBridge(cfg.site.id, w.mqtt, cfg.devices, profiles)
    guard = WriteGuard(profiles, cfg.devices, monotonic=w.real_clock.monotonic)
    w.devices = DeviceService(
        cfg, profiles, bridge, guard, audit, w.real_clock, connect=modbus_connection
    )
    w.device_bridge = bridge
    bridge.attach(w.devices.submit, w.dispatcher)
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


async def plug_orders(w: Wiring) -> None:
    """The order service: orders to tickets, exactly once (loads open orders when entered)."""
    w.orders = OrderService(w.cfg, w.store, w.clock, w.outbox, link_clock=w.real_clock)
    w.bridge.attach(w.orders.submit, w.dispatcher)
    await w.supervisor.enter(w.orders, "orders")
    if w.actions is not None:
        # Restored tickets were sent (and acted on) by an earlier run: their resends must not
        # start a fryer's timer again. Told now, before the order service's first tick resends.
        w.actions.already_sent(r.ticket_id for r in w.orders.kitchen.resends())


#: Every service of the gateway, in start order (they stop in reverse).
PLUGS: tuple[Callable[[Wiring], Awaitable[None]], ...] = (
    plug_time,
    plug_state,
    plug_mqtt,
    plug_devices,
    plug_actions,
    plug_orders,
)


class Gateway:
    """The running gateway; ready (connected, state loaded) once ``async with`` has entered."""

    def __init__(
        self,
        cfg: SiteConfig,
        *,
        clock: Clock | None = None,
        real_clock: Clock | None = None,
        small_window_level: int = logging.WARNING,
    ) -> None:
        """Prepare; nothing starts before ``async with``.

        Args:
            cfg: the site.
            clock: kitchen time for the order path (default: the system clock).
            real_clock: real time, for polling, screens, the network and the clock watch
                (default: the system clock; the demo's faster kitchen clock must not make the
                appliances polled faster, nor its screens look silent).
            small_window_level: the log level of the start-up note that the broker allows few
                messages in flight (the demo, which never needs the rate, lowers it).
        """
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self._real_clock = real_clock or SystemClock()
        self._small_window_level = small_window_level
        self._supervisor: Supervisor | None = None
        self._wiring: Wiring | None = None

    @property
    def _w(self) -> Wiring:
        assert self._wiring is not None, "the gateway is not running"
        return self._wiring

    @property
    def service(self) -> OrderService:
        """The order service."""
        return self._w.orders

    @property
    def mqtt(self) -> MqttClient:
        """The MQTT client."""
        return self._w.mqtt

    @property
    def dispatcher(self) -> Dispatcher:
        """The inbound topic dispatcher (its counters: ``dispatcher.stats``)."""
        return self._w.dispatcher

    @property
    def devices(self) -> DeviceService | None:
        """The device service, if the site has devices."""
        return self._w.devices

    @property
    def device_bridge(self) -> DeviceBridge | None:
        """The device service's MQTT adapter, if the site has devices."""
        return self._w.device_bridge

    @property
    def services(self) -> list[str]:
        """The names of the running services, in start order."""
        assert self._supervisor is not None, "the gateway is not running"
        return list(self._supervisor.names)

    @property
    def stats(self) -> OrderStats:
        """The order service's counters."""
        return self._w.orders.stats

    async def __aenter__(self) -> Self:
        """Start every service in order; raises ServiceFailed (nothing left running) on failure."""
        sup = self._supervisor = await Supervisor().__aenter__()
        w = self._wiring = Wiring(self.cfg, self.clock, self._real_clock, sup)
        try:
            for plug in PLUGS:
                await plug(w)
            w.mqtt.on_connection_change(self._on_reconnect)
            w.dispatcher.open()
            w.mqtt.publish(w.status_topic, w.status(DeviceState.ONLINE), retain=True)
            self._check_broker_window()
        except BaseException as exc:
            await sup.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tune_gc()
        log.info("gateway %s ready on %s (%s)", self.cfg.client_id, self.cfg.mqtt.url,
                 ", ".join(sup.names))  # fmt: skip
        return self

    def _tune_gc(self) -> None:
        # What exists now (profiles, connections, menu, open orders) lives as long as the
        # gateway: frozen, the garbage collector stops walking it on every full collection.
        # With 2,000 polled devices that cut the longest pause from ~90 ms to ~12 ms, the tail
        # of the poll-interval jitter (bench/RESULTS.md, bench/polling).
        gc.freeze()
        # Most of what a message allocates dies by reference counting; a young-generation
        # collection every 700 allocations (the default) mostly walks live work in progress.
        # bench/routing flat out, four alternating runs: 1,382 -> 1,462 orders/s on average.
        thresholds = gc.get_threshold()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, *thresholds[1:])
        self._restore_gc = thresholds

    def _check_broker_window(self) -> None:
        """Say so once when the broker keeps our publishes to a few in flight."""
        window = self._w.mqtt.inflight_window
        if window < _SMALL_BROKER_WINDOW:
            log.log(
                self._small_window_level,
                "the MQTT broker at %s takes only %d unacknowledged messages from a client at a "
                "time (its Receive Maximum); under load the gateway then waits on each round "
                "trip. For Mosquitto, set 'max_inflight_messages 1000' in mosquitto.conf.",
                self.cfg.mqtt.url, window,
            )  # fmt: skip

    def _on_reconnect(self, up: bool) -> None:
        """After a reconnect: resend what screens never acked, and say ``online`` again.

        Again on every connect, not only the first: the broker publishes our will (``offline``)
        when it loses us without a DISCONNECT, and a broker restarted from an old persistence
        file has lost or kept a stale retained status; either would show a working gateway as
        offline. Screens also take ``online`` as the sign that we listen again and send their
        recent bumps once more (the contract says why). It goes out after the resubscription.
        """
        if not up:
            return
        w = self._w
        w.orders.resend_now()
        w.mqtt.publish(w.status_topic, w.status(DeviceState.ONLINE), retain=True)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Say offline (cleanly) and stop every service in reverse order."""
        w, sup = self._w, self._supervisor
        assert sup is not None
        try:
            if w.mqtt.connected:
                w.mqtt.publish(w.status_topic, w.status(DeviceState.OFFLINE), retain=True)
            w.dispatcher.close()
        finally:
            restore = getattr(self, "_restore_gc", None)
            if restore is not None:
                gc.set_threshold(*restore)
                gc.unfreeze()
            await sup.__aexit__(et, e, tb)


class SystemdWatchdog(Service):
    """Pings systemd's watchdog while the event loop runs (a no-op outside systemd).

    Real time on purpose: a stuck loop stops the pings, and systemd restarts the gateway.
    """

    name = "systemd-watchdog"

    def __init__(self, notifier: Notifier) -> None:
        """Ping through ``notifier``, at half the interval systemd set (``$WATCHDOG_USEC``)."""
        self._notifier = notifier

    async def start(self) -> None:
        """Start pinging, if systemd watches us."""
        self.spawn(watchdog(SystemClock(), watchdog_interval(), self._notifier), "ping")


async def run_gateway(
    cfg: SiteConfig, *, clock: Clock | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run a gateway until SIGINT/SIGTERM or until ``stop`` is set.

    Under systemd (``deploy/kitchen-gateway.service``, ``Type=notify``) it says ``READY=1`` once
    every service is ready, pings the watchdog while running and says ``STOPPING=1`` first
    thing on the way out.

    Raises:
        ServiceFailed: a service could not start, or failed while running.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    notifier = Notifier.from_env()
    try:
        async with Gateway(cfg, clock=clock) as gateway, SystemdWatchdog(notifier):
            notifier.ready(f"site {cfg.site.id}: {', '.join(gateway.services)}")
            try:
                await stop.wait()
            finally:
                notifier.stopping()
    finally:
        notifier.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("gateway stopped")
