"""The gateway process: one supervisor, and the services it runs, named once in ``PLUGS``.

``Gateway`` enters the plugs of :data:`PLUGS` in order; each (a module of :mod:`gateway.plugs`)
builds one service and the adapters it needs from the shared :class:`~gateway.wiring.Wiring`
and enters it through the :class:`~gateway.lifecycle.Supervisor`, or does nothing when the site
has no use for it (a site without appliances has no device service).
Then the topic dispatcher is opened, so the first message reaches a service only once every
service is ready, and the gateway announces itself ``online`` (its last will says
``offline``). Leaving stops the services in reverse order. Adding a service is one plug module
and one line in ``PLUGS``; the README lists them in this order.

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
from typing import TYPE_CHECKING, Self

from gateway.clock import Clock, SystemClock
from gateway.contract import DeviceState
from gateway.lifecycle import Service, Supervisor
from gateway.plugs import (
    alerting,
    appliances,
    faults,
    messaging,
    orders,
    state,
    telemetry,
    timekeeping,
)
from gateway.sdnotify import Notifier, watchdog, watchdog_interval
from gateway.wiring import Wiring

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from gateway.config import SiteConfig
    from gateway.devices.bridge import DeviceBridge
    from gateway.devices.service import DeviceService
    from gateway.routing.service import OrderService, OrderStats
    from gateway.telemetry.alerts_service import AlertService
    from gateway.telemetry.recorder import Recorder
    from gateway.telemetry.sink import Sink
    from gateway.transport.dispatch import Dispatcher
    from gateway.transport.mqtt import MqttClient

log = logging.getLogger(__name__)

_GC_YOUNG_THRESHOLD = 20_000
_SMALL_BROKER_WINDOW = 100  # below it a broker holds throughput to its round trips


#: Every service of the gateway, in start order (they stop in reverse).
PLUGS: tuple[Callable[[Wiring], Awaitable[None]], ...] = (
    timekeeping.plug,  # clock
    state.plug,  # store, dead-letters
    messaging.plug,  # mqtt
    alerting.plug,  # alerts: before every service that raises one
    telemetry.plug,  # telemetry, telemetry-influx: when the site has devices (before them)
    faults.plug,  # haccp, faults: when the site has devices (before them)
    appliances.plug_devices,  # audit, devices: when the site has devices
    appliances.plug_actions,  # actions: when the site has appliance actions
    orders.plug,  # orders
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
    def alerts(self) -> AlertService:
        """The alert service."""
        assert self._w.alerts is not None
        return self._w.alerts

    @property
    def devices(self) -> DeviceService | None:
        """The device service, if the site has devices."""
        return self._w.devices

    @property
    def device_bridge(self) -> DeviceBridge | None:
        """The device service's MQTT adapter, if the site has devices."""
        return self._w.device_bridge

    @property
    def telemetry(self) -> Recorder | None:
        """The telemetry recorder (the history), when the site has devices."""
        return self._w.telemetry

    @property
    def sinks(self) -> list[Sink]:
        """Where the history streams to (empty without a database configured)."""
        return self._w.sinks

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
            text = (
                f"the MQTT broker at {self.cfg.mqtt.url} takes only {window} unacknowledged "
                "messages from a client at a time (its Receive Maximum); under load the gateway "
                "then waits on each round trip. For Mosquitto, set 'max_inflight_messages 1000' "
                "in mosquitto.conf."
            )
            log.log(self._small_window_level, "%s", text)
            if self._small_window_level >= logging.WARNING:  # the demo does not need the rate
                self._w.alert("low", "broker_window", text)

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
