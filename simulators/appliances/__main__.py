"""``python -m simulators.appliances``: run simulated Modbus appliances until Ctrl-C.

Appliances come from a site file's ``[[devices]]`` (Modbus devices only; their hosts must be
loopback addresses) and/or from ``--profile PROFILE[@PORT]``. Prints one line per appliance with
its address, and one line per fault as it happens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from gateway.devices.profile import load_profiles
from gateway.errors import GatewayError
from simulators.appliances.activity import KitchenActivity
from simulators.appliances.faults import FaultWindow, parse_fault
from simulators.appliances.fleet import ApplianceFleet, appliances_for_site
from simulators.appliances.server import SimulatedAppliance
from simulators.cli import find_config, run_with_signals, wait_stop

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.appliances",
        description="Simulated Modbus appliances with physics and fault injection.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", type=Path, default=None, help="site file whose devices to run")
    p.add_argument(
        "--profile", action="append", default=[], metavar="PROFILE[@PORT]",
        help="also run one appliance of this profile (repeatable; port 0 or none: a free one)",
    )  # fmt: skip
    p.add_argument("--device", action="append", default=[], help="only these site devices")
    p.add_argument(
        "--fault", action="append", default=[], metavar="DEVICE:FAULT[=POINT]@START[+DURATION]",
        help="schedule a fault (hang, gone, stuck, compressor, booster), real seconds",
    )  # fmt: skip
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--tick", type=float, default=0.1, help="real seconds between physics steps")
    p.add_argument("--activity", action="store_true", help="random doors, baskets, dishes")
    p.add_argument("--seed", type=int, default=None, help="seed of --activity")
    p.add_argument("--duration", type=float, default=None, help="(None: until Ctrl-C)")
    p.add_argument("--verbose", action="store_true")
    return p


def _build(args: argparse.Namespace) -> list[SimulatedAppliance]:
    faults: dict[str, list[FaultWindow]] = {}
    for spec in args.fault:
        device, window = parse_fault(spec)
        faults.setdefault(device, []).append(window)
    options = {"speed": args.speed, "tick_s": args.tick}
    appliances: list[SimulatedAppliance] = []
    dirs: tuple[Path, ...] = ()
    cfg = None
    if args.config is not None:
        from gateway.site_file import load_site  # noqa: PLC0415 -- only with --config

        cfg = load_site(find_config(args.config))
        dirs = cfg.devices_profiles
    profiles = load_profiles(dirs)
    if cfg is not None:
        site_faults = {d: w for d, w in faults.items() if d in {x.id for x in cfg.devices}}
        appliances += appliances_for_site(
            cfg, profiles, only=args.device, faults=site_faults, **options
        )
    for n, spec in enumerate(args.profile, start=1):
        name, _, port = spec.partition("@")
        if name not in profiles:
            raise ValueError(f"unknown profile {name!r} (known: {', '.join(sorted(profiles))})")
        device_id = f"{name}-{n}"
        appliance = SimulatedAppliance(
            profiles[name], device_id=device_id, port=int(port or 0),
            faults=faults.get(device_id, ()), **options,
        )  # fmt: skip
        appliances.append(appliance)
    ids = {a.device_id for a in appliances}
    stray = sorted(set(faults) - ids)
    if stray:
        raise ValueError(f"faults for devices that are not simulated: {', '.join(stray)}")
    return appliances


def main(argv: list[str] | None = None) -> int:
    """Run the appliances; exit code 2 for a bad command line or site file."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s"
    )
    logging.getLogger("pymodbus").setLevel(logging.WARNING if args.verbose else logging.CRITICAL)
    try:
        appliances = _build(args)
    except (GatewayError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    if not appliances:
        print("nothing to simulate: give --config (Modbus devices) or --profile", file=sys.stderr)
        return 2

    async def run(stop: asyncio.Event) -> int:
        async with ApplianceFleet(appliances) as fleet:
            for a in fleet:
                print(
                    f"{a.device_id:<20} {a.profile.profile.id:<16} "
                    f"modbus://{a.host}:{a.port} unit {a.unit}"
                )
            sys.stdout.flush()
            async with asyncio.TaskGroup() as tg:
                if args.activity:
                    activity = KitchenActivity(
                        (a.model for a in fleet if a.physics_running), seed=args.seed
                    )
                    task = tg.create_task(activity.run(args.speed), name="kitchen-activity")
                await wait_stop(stop, args.duration)
                if args.activity:
                    task.cancel()
        return 0

    return run_with_signals(run)


if __name__ == "__main__":
    sys.exit(main())
