"""Command lines of the simulators (``python -m simulators.tablets`` / ``simulators.kds``).

Also the small helpers the demo shares with them: finding the site file, running a coroutine on
uvloop with Ctrl-C / SIGTERM turned into a stop event, and waiting for that stop or a duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gateway.errors import GatewayError
from gateway.site_file import load_site
from gateway.transport.url import parse_broker_url
from simulators.arrivals import Burst, DinnerCurve, DinnerService, FixedRate, Schedule
from simulators.kds import KitchenScreens
from simulators.tablets import TabletFleet

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.config import SiteConfig

__all__ = [
    "find_config",
    "kds_main",
    "load_for_site",
    "run_with_signals",
    "tablets_main",
    "wait_stop",
]

DEFAULT_CONFIG = Path("examples/demo-site.toml")


def find_config(path: Path) -> Path:
    """Resolve a site file: as given, else relative to the source checkout holding this package."""
    if path.exists() or path.is_absolute():
        return path
    beside_repo = Path(__file__).resolve().parents[1] / path
    return beside_repo if beside_repo.exists() else path


def load_for_site(path: Path, site: str | None = None) -> SiteConfig:
    """Load a site file, optionally running it under another site id (``--site``)."""
    cfg = load_site(find_config(path))
    if site is not None and site != cfg.site.id:
        cfg = cfg.model_copy(update={"site": cfg.site.model_copy(update={"id": site})})
    return cfg


def protocol_of(url: str) -> Literal[4, 5]:
    """The MQTT protocol level a broker URL asks for (5 unless it says ``?protocol=4``)."""
    return parse_broker_url(url).protocol or 5


def run_with_signals(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run ``main(stop)`` on uvloop (if installed); SIGINT and SIGTERM set ``stop``."""

    async def wrapper() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        import uvloop  # noqa: PLC0415 -- optional: not on Windows
    except ImportError:  # pragma: no cover
        return asyncio.run(wrapper())
    return uvloop.run(wrapper())


async def wait_stop(stop: asyncio.Event, duration_s: float | None) -> None:
    """Return when ``stop`` is set or ``duration_s`` real seconds passed (never, if None)."""
    try:
        async with asyncio.timeout(duration_s):
            await stop.wait()
    except TimeoutError:
        pass


def _common(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--url", default=None, help="(None: the site file's)")
    p.add_argument("--site", default=None, help="(None: the site file's)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="site file")
    p.add_argument("--speed", type=float, default=1.0, help="kitchen seconds per real second")
    p.add_argument("--duration", type=float, default=None, help="(None: until Ctrl-C)")
    p.add_argument("--prefix", default="sim", help="MQTT client id prefix")
    return p


def _tablet_schedule(args: argparse.Namespace) -> Schedule:
    if args.count is not None and args.fixed_rate is None:
        return Burst(args.count)
    if args.fixed_rate is not None:
        return FixedRate(args.fixed_rate, args.count)
    return DinnerService(DinnerCurve(args.rate), speed=args.speed, start_at_s=args.start_at)


def _site_and_url(args: argparse.Namespace) -> tuple[SiteConfig, str] | None:
    """The site and broker URL a simulator runs against, or None after printing why not."""
    try:
        cfg = load_for_site(args.config, args.site)
    except GatewayError as err:
        print(err, file=sys.stderr)
        return None
    return cfg, args.url or cfg.mqtt.url


def tablets_main(argv: list[str]) -> int:
    """``python -m simulators.tablets``: send orders until done, Ctrl-C or ``--duration``."""
    p = _common("python -m simulators.tablets", "Simulated order tablets.")
    p.add_argument("--tablets", type=int, default=4)
    p.add_argument("--rate", type=float, default=60.0, help="orders per real minute at the peak")
    p.add_argument("--start-at", type=float, default=5400.0, help="kitchen s into the night")
    p.add_argument("--fixed-rate", type=float, default=None, help="orders per second, evenly")
    p.add_argument("--count", type=int, default=None, help="stop after this many orders")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--reply-timeout", type=float, default=5.0)
    p.add_argument("--resend-fraction", type=float, default=0.0)
    p.add_argument("--malformed-fraction", type=float, default=0.0)
    p.add_argument("--void-fraction", type=float, default=0.0)
    p.add_argument("--response-topic-fraction", type=float, default=0.0)
    p.add_argument("--no-fire", action="store_true", help="never send fire_course")
    args = p.parse_args(argv)
    loaded = _site_and_url(args)
    if loaded is None:
        return 2
    cfg, url = loaded

    async def main(stop: asyncio.Event) -> int:
        fleet = TabletFleet(
            cfg,
            url,
            schedule=_tablet_schedule(args),
            tablets=args.tablets,
            seed=args.seed,
            speed=args.speed,
            reply_timeout_s=args.reply_timeout,
            resend_fraction=args.resend_fraction,
            malformed_fraction=args.malformed_fraction,
            void_fraction=args.void_fraction,
            fire_courses=not args.no_fire,
            response_topic_fraction=args.response_topic_fraction,
            protocol=protocol_of(url),
            client_prefix=args.prefix,
            password=cfg.mqtt.password(),
            username=cfg.mqtt.username,
        )

        async def send_then_settle() -> None:
            await fleet.run()
            await fleet.wait_settled(4 * args.reply_timeout)
            stop.set()

        try:
            async with fleet, asyncio.TaskGroup() as tg:
                sender = tg.create_task(send_then_settle(), name="tablets-run")
                await wait_stop(stop, args.duration)
                sender.cancel()
        except GatewayError as err:
            print(err, file=sys.stderr)
            return 1
        c = fleet.result.counters
        summary = {k: getattr(c, k) for k in c.__slots__ if k != "malformed"}
        summary["malformed"] = dict(c.malformed)
        summary["unanswered"] = len(fleet.result.unanswered())
        print(json.dumps(summary, indent=1))
        return 0

    return run_with_signals(main)


def kds_main(argv: list[str]) -> int:
    """``python -m simulators.kds``: run the screens until Ctrl-C or ``--duration``."""
    p = _common("python -m simulators.kds", "Simulated kitchen display screens.")
    p.add_argument("--stations", nargs="*", default=None, help="(None: all)")
    p.add_argument("--heartbeat", type=float, default=5.0, help="real seconds between beats")
    p.add_argument("--item-done", action="store_true", help="report item_done per line")
    p.add_argument("--no-bump", action="store_true", help="ack but never bump")
    args = p.parse_args(argv)
    loaded = _site_and_url(args)
    if loaded is None:
        return 2
    cfg, url = loaded

    async def main(stop: asyncio.Event) -> int:
        screens = KitchenScreens(
            cfg,
            url,
            stations=args.stations,
            speed=args.speed,
            heartbeat_s=args.heartbeat,
            bump=not args.no_bump,
            item_done=args.item_done,
            protocol=protocol_of(url),
            client_prefix=args.prefix,
            password=cfg.mqtt.password(),
            username=cfg.mqtt.username,
        )
        try:
            async with screens:
                print(f"screens online: {', '.join(screens.stations)}", flush=True)
                await wait_stop(stop, args.duration)
        except GatewayError as err:
            print(err, file=sys.stderr)
            return 1
        for station, c in screens.counters.items():
            print(station, json.dumps({k: getattr(c, k) for k in c.__slots__}))
        return 0

    return run_with_signals(main)
