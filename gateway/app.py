"""The gateway process: one root of everything that runs.

``Gateway`` enters, in order: the durable store, the order service (which loads open orders and
queues unacknowledged tickets for resending), then the MQTT client (connected and subscribed),
then, when the site has devices, the device service (Modbus pollers running, MQTT sensor nodes
subscribed), and announces itself ``online`` (its last will says ``offline``). Leaving reverses
the order.
``run_gateway`` runs one until SIGINT/SIGTERM or ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from gateway.bridge import MqttBridge
from gateway.clock import Clock, SystemClock
from gateway.codec import encode
from gateway.contract import DeviceState, DeviceStatus
from gateway.devices.actions import ActionService, Catalog
from gateway.routing.service import OrderService, OrderStats
from gateway.store.sqlite import Store
from gateway.transport.mqtt import MqttClient, Will

if TYPE_CHECKING:
    from types import TracebackType

    from gateway.config import SiteConfig
    from gateway.devices.bridge import DeviceBridge
    from gateway.devices.service import DeviceService
    from gateway.events import Outbox

log = logging.getLogger(__name__)

_GC_YOUNG_THRESHOLD = 20_000
_SMALL_BROKER_WINDOW = 100  # below it a broker holds throughput to its round trips


class Gateway:
    """The running gateway; ready (connected, state loaded) once ``async with`` has entered."""

    def __init__(self, cfg: SiteConfig, *, clock: Clock | None = None) -> None:
        """Prepare; nothing starts before ``async with``."""
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self._stack = AsyncExitStack()
        self.service: OrderService | None = None
        self.mqtt: MqttClient | None = None
        self.devices: DeviceService | None = None
        self.device_bridge: DeviceBridge | None = None

    @property
    def stats(self) -> OrderStats:
        """The order service's counters."""
        assert self.service is not None, "the gateway is not running"
        return self.service.stats

    @property
    def _status_topic(self) -> str:
        return f"rst/{self.cfg.site.id}/device/{self.cfg.client_id}/status"

    def _status(self, state: DeviceState) -> bytes:
        return encode(
            DeviceStatus(
                device=self.cfg.client_id, state=state, role="gateway", at=datetime.now(UTC)
            )
        )

    async def __aenter__(self) -> Self:
        """Start everything; raises GatewayError (nothing left running) if any part fails."""
        cfg = self.cfg
        try:
            store = self._stack.enter_context(
                Store(cfg.state.dir / "gateway.db", cfg.state.durability)
            )
            status_topic = self._status_topic
            self.mqtt = MqttClient(
                cfg.mqtt.url,
                cfg.client_id,
                username=cfg.mqtt.username,
                password=cfg.mqtt.password(),
                keepalive_s=cfg.mqtt.keepalive_s,
                will=Will(status_topic, self._status(DeviceState.OFFLINE)),
            )
            bridge = MqttBridge(cfg.site.id, self.mqtt, cfg.delivery.max_payload_bytes)
            outbox: Outbox = bridge
            actions: ActionService | None = None
            if cfg.devices:
                self.devices = self._device_service()
                if cfg.appliance_actions:
                    # Tickets the order service sends pass by the action service on their way
                    # out: a fry ticket that fires starts its vat's timer (guarded like any write).
                    actions = ActionService(
                        cfg.appliance_actions,
                        Catalog.from_site(cfg),
                        self.devices.write,
                        self.clock,
                    )
                    outbox = actions.tap(bridge)
            self.service = OrderService(cfg, store, self.clock, outbox)
            # Handlers are attached before connecting: the broker delivers the messages it
            # queued for our session right after CONNACK. The device bridge goes last: it takes
            # sensor telemetry and hands every other message on to the order bridge.
            bridge.attach(self.service.submit)
            if self.devices is not None:
                assert self.device_bridge is not None
                self.device_bridge.attach(self.devices.submit, chain=bridge.handle)
            await self._stack.enter_async_context(self.mqtt)
            if self.devices is not None:
                await self._stack.enter_async_context(self.devices)
            if actions is not None:
                await self._stack.enter_async_context(actions)
            await self._stack.enter_async_context(self.service)
            self.mqtt.on_connection_change(self._on_reconnect)
            self.mqtt.publish(status_topic, self._status(DeviceState.ONLINE), retain=True)
            self._check_broker_window()
        except BaseException:
            await self._stack.aclose()
            raise
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
        self._stack.callback(gc.set_threshold, *thresholds)
        self._stack.callback(gc.unfreeze)
        log.info("gateway %s ready on %s", cfg.client_id, cfg.mqtt.url)
        return self

    def _check_broker_window(self) -> None:
        """Say so once when the broker keeps our publishes to a few in flight."""
        assert self.mqtt is not None
        window = self.mqtt.inflight_window
        if window < _SMALL_BROKER_WINDOW:
            log.warning(
                "the MQTT broker at %s takes only %d unacknowledged messages from a client at a "
                "time (its Receive Maximum); under load the gateway then waits on each round "
                "trip. For Mosquitto, set 'max_inflight_messages 1000' in mosquitto.conf.",
                self.cfg.mqtt.url, window,
            )  # fmt: skip

    def _device_service(self) -> DeviceService:
        """Build the device service and its MQTT bridge on the gateway's one MQTT client."""
        # Imported here: a site without appliances never loads pymodbus.
        from gateway.devices.audit import AuditLog  # noqa: PLC0415
        from gateway.devices.bridge import DeviceBridge  # noqa: PLC0415
        from gateway.devices.guard import WriteGuard  # noqa: PLC0415
        from gateway.devices.profile import load_profiles  # noqa: PLC0415
        from gateway.devices.service import DeviceService  # noqa: PLC0415

        cfg = self.cfg
        assert self.mqtt is not None
        profiles = load_profiles(cfg.devices_profiles)
        fsync = cfg.state.durability == "full"
        audit = self._stack.enter_context(AuditLog(cfg.state.dir / "audit.jsonl", fsync=fsync))
        self.device_bridge = bridge = DeviceBridge(cfg.site.id, self.mqtt, cfg.devices, profiles)
        guard = WriteGuard(profiles, cfg.devices)
        return DeviceService(cfg, profiles, bridge, guard, audit, self.clock)

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
        assert self.service is not None
        assert self.mqtt is not None
        self.service.resend_now()
        self.mqtt.publish(self._status_topic, self._status(DeviceState.ONLINE), retain=True)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Say offline (cleanly) and stop everything in reverse order."""
        if self.mqtt is not None and self.mqtt.connected:
            self.mqtt.publish(self._status_topic, self._status(DeviceState.OFFLINE), retain=True)
        await self._stack.__aexit__(et, e, tb)


async def run_gateway(
    cfg: SiteConfig, *, clock: Clock | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run a gateway until SIGINT/SIGTERM or until ``stop`` is set."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with Gateway(cfg, clock=clock):
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("gateway stopped")
