"""``gateway demo``: a simulated dinner service through a real gateway, in one command.

It finds a broker (the configured one if it answers, else a Mosquitto it starts, else the
embedded pure-Python broker), starts a simulated appliance for each Modbus device of the site
(:mod:`gateway.demo_appliances`), the gateway on a kitchen clock running ``--speed`` times
faster than real time (the appliances' physics runs on the same speed), a fleet of simulated
tablets and one simulated screen per station, and shows what happens live: orders per minute,
replies, tickets per station, order-to-screen latency, who is online, the appliances and their
key readings, and the active alerts (or the last alert events). Ctrl-C or SIGTERM stops
everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections import deque
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Self

from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from gateway.app import Gateway
from gateway.clock import ScaledClock
from gateway.contract import Alert, AlertsActive, DeviceState, DeviceStatus, Telemetry, Topics
from gateway.demo_appliances import DemoAppliances, devices_summary, devices_table
from gateway.devices.profile import load_profiles
from gateway.errors import BrokerStartError
from gateway.transport.broker import EmbeddedBroker, MosquittoProcess
from gateway.transport.mqtt import MqttClient
from gateway.transport.url import parse_broker_url
from simulators.arrivals import DinnerCurve, DinnerService
from simulators.cli import DEFAULT_CONFIG, load_for_site, protocol_of, run_with_signals, wait_stop
from simulators.kds import KitchenScreens
from simulators.stats import RateMeter
from simulators.tablets import TabletFleet

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from rich.console import RenderableType

    from gateway.config import SiteConfig
    from gateway.contract import TelemetryValue
    from gateway.devices.profile import Profile
    from gateway.transport.mqtt import InboundMessage

__all__ = ["main", "probe_broker"]

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 1.0
_VIEW_INTERVAL_S = 0.5
_SUMMARY_EVERY_S = 5.0
#: Roles of the site's devices (appliances, sensor nodes), shown apart from the people's clients.
_DEVICE_ROLES = frozenset({"appliance", "sensor"})


# --- finding a broker ------------------------------------------------------------------------


def _mqtt_string(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None
) -> bytes:
    """An MQTT 3.1.1 CONNECT packet (clean session, 10 s keepalive), for probing a broker."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big")
    body += _mqtt_string(client_id)
    body += _mqtt_string(username) if username is not None else b""
    body += _mqtt_string(password) if password is not None else b""
    length, size = b"", len(body)
    while True:  # MQTT's variable-length "remaining length"
        size, digit = divmod(size, 128)
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            return b"\x10" + length + body


async def probe_broker(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = _PROBE_TIMEOUT_S,
) -> bool:
    """Whether an MQTT broker at ``url`` accepts a connection (TCP, then CONNECT/CONNACK)."""
    address = parse_broker_url(url)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=True if address.tls else None
            )
            writer.write(connect_packet("gateway-demo-probe", username, password))
            await writer.drain()
            connack = await reader.readexactly(4)
            writer.write(b"\xe0\x00")  # DISCONNECT
            await writer.drain()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()
    return connack[0] == 0x20 and connack[3] == 0


async def _start_broker(cfg: SiteConfig, url: str | None, stack: AsyncExitStack) -> tuple[str, str]:
    """Pick a broker; returns its URL and a sentence saying which one it is."""
    wanted = url or cfg.mqtt.url
    if await probe_broker(wanted, username=cfg.mqtt.username, password=cfg.mqtt.password()):
        return wanted, f"the broker at {wanted}"
    try:
        mosquitto = stack.enter_context(MosquittoProcess())
    except BrokerStartError as err:
        log.info("no Mosquitto (%s); using the embedded broker", err)
    else:
        return mosquitto.url, f"Mosquitto started on {mosquitto.url} (nothing answered at {wanted})"
    embedded = await stack.enter_async_context(EmbeddedBroker())
    return embedded.url, f"embedded amqtt broker on {embedded.url}, MQTT 3.1.1 (no Mosquitto)"


# --- watching presence, readings and alerts ---------------------------------------------------


class Monitor:
    """Subscribes to presence, device readings and alerts, as a manager's screen would."""

    def __init__(self, site: str, url: str) -> None:
        """Prepare the monitor's client for ``site`` on the broker at ``url``."""
        self._topics = Topics(site)
        self._client = MqttClient(
            url, f"demo-monitor-{site}", clean_start=True, protocol=protocol_of(url)
        )
        self.online: dict[str, tuple[str, DeviceState]] = {}
        #: The latest value of each point, by device (a telemetry message has only what was read).
        self.readings: dict[str, dict[str, TelemetryValue]] = {}
        #: The last alert events, and how many there were.
        self.alerts: deque[Alert] = deque(maxlen=5)
        self.alert_count = 0
        #: The retained set of active alerts, as the gateway last published it.
        self.active: AlertsActive | None = None

    async def __aenter__(self) -> Self:
        """Connect and subscribe."""
        await self._client.__aenter__()
        self._client.set_handler(self._on)
        self._client.subscribe(self._topics.device_status("+"))
        self._client.subscribe(self._topics.device_telemetry("+"))
        self._client.subscribe(self._topics.alerts)
        self._client.subscribe(self._topics.alerts_active)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Disconnect."""
        await self._client.__aexit__(et, e, tb)

    def _on(self, msg: InboundMessage) -> None:
        try:
            if msg.topic == self._topics.alerts:
                self.alerts.append(Alert.model_validate_json(msg.payload))
                self.alert_count += 1
            elif msg.topic == self._topics.alerts_active:
                active = AlertsActive.model_validate_json(msg.payload)
                if self.active is None or active.seq >= self.active.seq:
                    self.active = active
            elif msg.topic.endswith("/telemetry"):
                reading = Telemetry.model_validate_json(msg.payload)
                self.readings.setdefault(reading.device, {}).update(reading.values)
            else:
                status = DeviceStatus.model_validate_json(msg.payload)
                self.online[status.device] = (status.role, status.state)
        except ValidationError:
            log.debug("monitor ignored a malformed message on %s", msg.topic)
        finally:
            self._client.ack(msg)


# --- the view --------------------------------------------------------------------------------


class Demo:
    """Everything the demo runs, and how it is shown."""

    def __init__(
        self,
        cfg: SiteConfig,
        broker: str,
        *,
        gateway: Gateway,
        fleet: TabletFleet,
        screens: KitchenScreens,
        monitor: Monitor,
        speed: float,
        profiles: Mapping[str, Profile],
    ) -> None:
        """Keep the parts to report on."""
        self.cfg, self.broker, self.gateway, self.profiles = cfg, broker, gateway, profiles
        self.fleet, self.screens, self.monitor, self.speed = fleet, screens, monitor, speed
        self.started = time.monotonic()
        self._rate = RateMeter(window_s=60.0, started_at=self.started)
        self._orders_seen = 0

    def tick(self) -> None:
        """Feed the order-rate meter (called every view interval)."""
        now, total = time.monotonic(), self.fleet.result.counters.orders
        self._rate.mark(now, total - self._orders_seen)
        self._orders_seen = total

    def _latency(self) -> str:
        p50, p99 = (self.screens.latency.percentile(q) for q in (50, 99))
        if p50 is None or p99 is None:
            return "-"
        return f"p50 {p50 * 1000:.1f} ms / p99 {p99 * 1000:.1f} ms"

    def _online(self) -> tuple[int, int]:
        """Online gateway, tablets and screens (the site's devices are counted apart)."""
        states = [s for r, s in self.monitor.online.values() if r not in _DEVICE_ROLES]
        return sum(s is DeviceState.ONLINE for s in states), len(states)

    def _device_states(self) -> dict[str, DeviceState]:
        return {d: s for d, (r, s) in self.monitor.online.items() if r in _DEVICE_ROLES}

    def _devices_summary(self) -> str:
        if not self.cfg.devices:
            return ""
        states, readings = self._device_states(), self.monitor.readings
        return devices_summary(self.cfg.devices, self.profiles, states, readings) + "; "

    def _telemetry(self) -> str:
        rec = self.gateway.telemetry
        if rec is None:
            return ""
        parts = [f"history {rec.stats.written} readings"]
        if rec.queued:
            parts.append(f"{rec.queued} queued")
        if rec.stats.failing:
            parts.append(f"FAILING: {rec.stats.failing}")
        now = time.time()
        for sink in self.gateway.sinks:
            st = sink.stats
            lag = st.lag_s(now)
            lag_text = "inf" if lag == float("inf") else f"{lag:.1f} s"
            parts.append(f"{sink.sink} {st.state}, behind {st.pending} ({lag_text})")
        return ", ".join(parts)

    def summary_line(self) -> str:
        """One line for logs and CI (``--no-ui``)."""
        c = self.fleet.result.counters
        shown = sum(s.shown for s in self.screens.counters.values())
        bumped = sum(s.bumps for s in self.screens.counters.values())
        up, known = self._online()
        rejected = c.rejected + c.replies_without_id
        return (
            f"[{time.monotonic() - self.started:5.0f} s] orders {c.orders} "
            f"({self._rate.per_minute(time.monotonic()):.0f}/min), accepted {c.accepted}, "
            f"rejected {rejected}, unanswered {len(self.fleet.result.unanswered())}, "
            f"retries {c.retries}; tickets shown {shown}, bumped {bumped}; "
            f"latency {self._latency()}; online {up}/{known}; {self._devices_summary()}"
            + (f"telemetry {self._telemetry()}; " if self.gateway.telemetry else "")
            + f"alerts {self._active_count()} active ({self.monitor.alert_count} events)"
        )

    def render(self) -> RenderableType:
        """The live view."""
        c = self.fleet.result.counters
        rejected = c.rejected + c.replies_without_id
        g = self.gateway.stats
        head = Table.grid(padding=(0, 2))
        head.add_row("broker", self.broker)
        kitchen = self.cfg.site.name
        head.add_row(
            "kitchen",
            f"{kitchen} - kitchen clock x{self.speed:g}, "
            f"{time.monotonic() - self.started:.0f} s real",
        )
        head.add_row(
            "orders",
            f"{c.orders} sent, {self._rate.per_minute(time.monotonic()):.0f}"
            f"/min; accepted {c.accepted}, rejected {rejected} "
            f"({sum(c.malformed.values())} malformed on purpose); "
            f"retries {c.retries}, duplicates {c.resends}",
        )
        head.add_row(
            "gateway",
            f"tickets sent {g.tickets_sent}, resent {g.tickets_resent}, "
            f"redirects {g.redirects}, duplicate orders {g.orders_duplicate}",
        )
        head.add_row("latency", f"order to screen {self._latency()}")
        if self.gateway.telemetry is not None:
            head.add_row("telemetry", self._telemetry())
        stations = Table(
            "station", "open", "shown", "updated", "bumped", "dupes hidden", title="Screens"
        )
        for station, sc in self.screens.counters.items():
            stations.add_row(
                station,
                str(self.screens.open_count(station)),
                str(sc.shown),
                str(sc.updates),
                str(sc.bumps),
                str(sc.duplicates_suppressed),
            )
        up, known = self._online()
        online = Table("role", "online", "offline", title=f"Online {up}/{known}")
        for role in sorted({r for r, _ in self.monitor.online.values()} - _DEVICE_ROLES):
            mine = {d: s for d, (r, s) in self.monitor.online.items() if r == role}
            down = sorted(d for d, s in mine.items() if s is not DeviceState.ONLINE)
            online.add_row(role, f"{len(mine) - len(down)}/{len(mine)}", ", ".join(down) or "-")
        parts: list[RenderableType] = [head, stations, online]
        if self.cfg.devices:
            parts.append(
                devices_table(
                    self.cfg.devices, self.profiles, self._device_states(), self.monitor.readings
                )
            )
        parts.append(self._alerts())
        return Group(*parts)

    def _active_count(self) -> int:
        active = self.monitor.active
        return 0 if active is None else len(active.alerts)

    def _alerts(self) -> Table:
        """The active alerts; with none, the last alert events."""
        active = self.monitor.active.alerts if self.monitor.active is not None else []
        alerts = Table(
            "priority", "alert", "state", "message",
            title=f"Alerts ({len(active)} active, {self.monitor.alert_count} events)",
        )  # fmt: skip
        for a in active:
            state = f"acknowledged by {a.acked_by}" if a.acked_by else "unacknowledged"
            alerts.add_row(a.priority.value, a.alert_id, state, a.message)
        if not active:
            for e in reversed(self.monitor.alerts):
                alerts.add_row(e.priority.value, e.alert_id, e.event.value, e.message)
        return alerts


async def _show(demo: Demo, ui: bool, console: Console) -> None:
    """Refresh the view (or print a summary line) until cancelled."""
    if not ui:
        while True:
            await asyncio.sleep(_SUMMARY_EVERY_S)
            demo.tick()
            print(demo.summary_line(), flush=True)  # noqa: T201 -- the demo's output
    # auto_refresh=False: Live would otherwise refresh from a thread of its own.
    with Live(demo.render(), console=console, auto_refresh=False, transient=False) as live:
        while True:
            await asyncio.sleep(_VIEW_INTERVAL_S)
            demo.tick()
            live.update(demo.render(), refresh=True)


# --- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway demo",
        description="A simulated dinner service through a real gateway, shown live.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="site file")
    p.add_argument("--mqtt-url", default=None, help="(None: the site file's)")
    p.add_argument("--speed", type=float, default=20.0, help="kitchen time / real time")
    p.add_argument("--rate", type=float, default=60.0, help="orders per minute at the peak")
    p.add_argument("--duration", type=float, default=None, help="seconds (None: until Ctrl-C)")
    p.add_argument("--state-dir", type=Path, default=None, help="(None: a temporary dir)")
    p.add_argument("--tablets", type=int, default=8, help="simulated tablets")
    p.add_argument("--seed", type=int, default=None, help="for a reproducible service")
    p.add_argument("--no-ui", action="store_true", help="print a summary every few seconds")
    p.add_argument("--influx-url", default=None,
                   help="also stream telemetry to this InfluxDB (None: the local history only)")
    p.add_argument("--with-tsdb", action="store_true",
                   help="start a local VictoriaMetrics (Debian's victoria-metrics) and stream "
                   "telemetry to it")  # fmt: skip
    return p


async def _run(
    args: argparse.Namespace, cfg: SiteConfig, stop: asyncio.Event, console: Console
) -> int:
    async with AsyncExitStack() as stack:
        url, broker = await _start_broker(cfg, args.mqtt_url, stack)
        state_dir = args.state_dir
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-demo-")))
        influx_url = args.influx_url
        if args.with_tsdb and influx_url is None:
            from gateway.telemetry.victoria import VictoriaMetrics  # noqa: PLC0415

            tsdb = stack.enter_context(VictoriaMetrics(data_dir=state_dir / "tsdb"))
            influx_url = tsdb.url
            print(f"demo: VictoriaMetrics on {tsdb.url} (data in {tsdb.data_dir})", flush=True)  # noqa: T201
        cfg = cfg.with_overrides(mqtt_url=url, state_dir=state_dir, influx_url=influx_url)
        profiles = load_profiles(cfg.devices_profiles)
        if any(profiles[d.profile].profile.protocol == "modbus" for d in cfg.devices):
            # Before the gateway, so that its first poll finds them.
            appliances = await stack.enter_async_context(
                DemoAppliances(cfg, profiles, speed=args.speed, seed=args.seed)
            )
            for moved in appliances.moved:
                print(f"demo: {moved.line()}", flush=True)  # noqa: T201
            cfg = appliances.cfg
        protocol = protocol_of(url)
        clock = ScaledClock(args.speed)
        # The demo never needs the rates a small broker window limits: a note, not a warning.
        gateway = await stack.enter_async_context(
            Gateway(cfg, clock=clock, small_window_level=logging.INFO)
        )
        monitor = await stack.enter_async_context(Monitor(cfg.site.id, url))
        curve = DinnerCurve(peak_per_min=args.rate)
        fleet = TabletFleet(
            cfg,
            url,
            tablets=args.tablets,
            seed=args.seed,
            clock=clock,
            speed=args.speed,
            # Start half an hour before the rush so the curve shows within minutes.
            schedule=DinnerService(curve, speed=args.speed, start_at_s=curve.peak_at_s - 1800),
            resend_fraction=0.02,
            malformed_fraction=0.03,
            void_fraction=0.05,
            response_topic_fraction=0.1,
            protocol=protocol,
            client_prefix="demo",
        )
        screens = KitchenScreens(
            cfg,
            url,
            speed=args.speed,
            clock=clock,
            protocol=protocol,
            client_prefix="demo",
            placed_mono=fleet.placed_mono,
        )
        await stack.enter_async_context(screens)
        await stack.enter_async_context(fleet)
        demo = Demo(
            cfg,
            broker,
            gateway=gateway,
            fleet=fleet,
            screens=screens,
            monitor=monitor,
            speed=args.speed,
            profiles=profiles,
        )
        if args.no_ui:
            print(f"demo: {broker}; gateway ready", flush=True)  # noqa: T201
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(fleet.run(), name="demo-orders"),
                tg.create_task(_show(demo, not args.no_ui, console), name="demo-view"),
            ]
            await wait_stop(stop, args.duration)
            for task in tasks:
                task.cancel()
        demo.tick()
        final = demo.summary_line()
    print(f"demo stopped: {final}", flush=True)  # noqa: T201
    return 0


def main(argv: list[str]) -> int:
    """Run the demo; returns the exit code (0 after Ctrl-C, SIGTERM or ``--duration``)."""
    args = _parser().parse_args(argv)
    console = Console(stderr=False)
    handler: logging.Handler
    if args.no_ui:
        handler = logging.StreamHandler()
    else:
        handler = RichHandler(console=console, show_path=False)
        # RichHandler draws the time and the level itself; left without a formatter, it would get
        # basicConfig's default "%(levelname)s:%(name)s:%(message)s" and show the level twice.
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    # The simulated appliances' servers log what the demo handles itself (a taken port, which
    # it moves; clients that go away); the gateway reports every device's health on its own.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    cfg = load_for_site(args.config)
    return run_with_signals(lambda stop: _run(args, cfg, stop, console))
