"""The ``gateway`` command: check a site file, export the contract, run the gateway, run the demo.

``gateway device docs|read|write`` works with appliances; its commands live in
``gateway/devices/cli_commands.py``.

Exit codes: 0 success (also after Ctrl-C or SIGTERM), 1 an error the operator has to act on
(one line on stderr, no traceback), 2 a bad site file or bad command-line usage, 3 a device write
refused by the write guard (nothing was sent). Unexpected exceptions keep their traceback: they
are bugs, and the traceback is what a bug report needs.

Heavy modules (the gateway itself, the demo) are imported only by the subcommand that needs them,
so ``check-config`` and ``contract`` stay fast and work without a broker.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gateway.contract_docs import stale_docs, write_docs
from gateway.errors import ConfigError, GatewayError, ServiceFailed
from gateway.runner import run_async
from gateway.site_file import load_site

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from gateway.clockwatch import ClockState, KernelSync
    from gateway.config import SiteConfig

__all__ = ["effective_config", "main"]

log = logging.getLogger("gateway")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_MQTT_URL = "GATEWAY_MQTT_URL"
ENV_STATE_DIR = "GATEWAY_STATE_DIR"
ENV_INFLUX_URL = "GATEWAY_INFLUX_URL"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2


def effective_config(
    cfg: SiteConfig,
    env: Mapping[str, str],
    *,
    mqtt_url: str | None = None,
    state_dir: Path | None = None,
    influx_url: str | None = None,
) -> SiteConfig:
    """Apply overrides to a loaded site: a flag wins over the environment, which wins over the file.

    Args:
        cfg: the site as loaded from its file.
        env: the environment (``os.environ`` in production); empty values count as unset.
        mqtt_url: ``--mqtt-url``, None when not given.
        state_dir: ``--state-dir``, None when not given.
        influx_url: ``--influx-url``, None when not given.

    Returns:
        A new frozen config; ``cfg`` is unchanged.
    """
    url = mqtt_url or env.get(ENV_MQTT_URL) or None
    env_dir = env.get(ENV_STATE_DIR)
    directory = state_dir or (Path(env_dir) if env_dir else None)
    influx = influx_url or env.get(ENV_INFLUX_URL) or None
    return cfg.with_overrides(mqtt_url=url, state_dir=directory, influx_url=influx)


def setup_logging(level: str) -> None:
    """Send log records at ``level`` and above to stderr, in one format."""
    logging.basicConfig(format=LOG_FORMAT, stream=sys.stderr)
    # basicConfig does nothing when a handler is already installed; the level must still apply.
    logging.getLogger().setLevel(level)


def _say(text: str, stream: TextIO | None = None) -> None:
    # The command's output is its interface, so it is written, not logged.
    (stream or sys.stdout).write(text + "\n")


def _summary(cfg: SiteConfig, path: Path) -> str:
    stations = ", ".join(s.id for s in cfg.stations)
    return (
        f"{path}: site '{cfg.site.id}' ({cfg.site.name}), {len(cfg.tables.all_ids())} tables, "
        f"{len(cfg.items)} items in {len(cfg.groups)} groups, {len(cfg.modifiers)} modifiers, "
        f"{len(cfg.courses)} courses, {len(cfg.stations)} stations: {stations}. "
        f"Routes OK: {len(cfg.routes)} rules send every item to exactly one station. "
        f"Broker {cfg.mqtt.url}, state in {cfg.state.dir}/ (durability {cfg.state.durability}). "
        f"Telemetry kept {cfg.telemetry.history_days:g} days"
        + (f", streamed to {cfg.telemetry.influx.url}." if cfg.telemetry.influx else ".")
    )


def _print_config_error(err: ConfigError, out: TextIO) -> None:
    where = err.path if err.path is not None else "configuration"
    _say(f"{where}: {len(err.problems)} problem(s):", out)
    for problem in err.problems:
        _say(f"  {problem}", out)


def _check_config(args: argparse.Namespace) -> int:
    path: Path = args.file
    cfg = load_site(path)
    _say(_summary(cfg, path))
    return EXIT_OK


def _contract(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if args.action == "export":
        for path in write_docs(directory):
            _say(f"wrote {path}")
        return EXIT_OK
    stale = stale_docs(directory)
    if not stale:
        _say(f"{directory} is up to date with gateway/contract.py")
        return EXIT_OK
    _say(f"{len(stale)} stale file(s) in {directory}:", sys.stderr)
    for path in stale:
        _say(f"  {path}", sys.stderr)
    _say("run `gateway contract export` and commit the result", sys.stderr)
    return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    cfg = effective_config(
        load_site(args.config),
        os.environ,
        mqtt_url=args.mqtt_url,
        state_dir=args.state_dir,
        influx_url=args.influx_url,
    )
    influx = cfg.telemetry.influx
    log.info(
        "site %s, broker %s, state in %s, telemetry to %s",
        cfg.site.id, cfg.mqtt.url, cfg.state.dir,
        "the local history" + (f" and {influx.url}" if influx else ""),
    )  # fmt: skip
    # Imported here: it pulls in paho, sqlite and the services, which the other commands skip.
    from gateway.app import run_gateway  # noqa: PLC0415

    # run_gateway itself turns SIGINT and SIGTERM into a clean stop and returns.
    run_async(run_gateway(cfg))
    return EXIT_OK


def _device(args: argparse.Namespace) -> int:
    # Imported here: pymodbus and the device modules are only needed by these commands.
    from gateway.devices import cli_commands as cmd  # noqa: PLC0415

    if args.device_command == "docs":
        dirs = load_site(args.config).devices_profiles if args.config else ()
        return cmd.docs(args.profile, dirs)
    cfg = effective_config(
        load_site(args.config), os.environ, state_dir=getattr(args, "state_dir", None)
    )
    # The command's own line says what failed; the connection's warnings would repeat it.
    setup_logging("ERROR")
    if args.device_command == "read":
        return cmd.run_command(cmd.read_device(cfg, args.device))
    return cmd.run_command(cmd.write_device(cfg, args.device, args.point, args.value))


def status_lines(
    state_dir: Path, kernel: KernelSync, saved: ClockState | None, now: datetime
) -> list[str]:
    """What ``gateway status`` prints about time: the kernel's view, then the gateway's."""
    if kernel.synchronised is None:
        lines = ["system clock: cannot ask the kernel whether it is synchronised"]
    elif kernel.synchronised:
        error = "" if kernel.max_error_s is None else f", max error {kernel.max_error_s:.3f} s"
        lines = [f"system clock: synchronised (kernel{error})"]
    else:
        unsynced = (
            "system clock: NOT synchronised: records are marked time-uncertain (fix: give the "
            "box a time source: chrony with the local network's NTP server, or an RTC module; "
            "see the README, 'Keeping time')"
        )
        lines = [unsynced]
    if saved is None:
        lines.append(f"gateway: no clock record in {state_dir} (it has not run here yet)")
        return lines
    seen = {True: "synchronised", False: "not synchronised", None: "unknown"}[saved.synchronised]
    since = "?" if saved.since is None else saved.since.isoformat(timespec="seconds")
    lines.append(f"gateway: has seen the clock {seen} since {since}")
    if saved.steps:
        at = "?" if saved.last_step_at is None else saved.last_step_at.isoformat(timespec="seconds")
        lines.append(
            f"gateway: {saved.steps} step(s) of the clock in its last run, the last "
            f"{saved.last_step_s:+.0f} s at {at}: records before it may carry a wrong time"
        )
    age = (now - saved.written_at).total_seconds()
    lines.append(f"gateway: clock record written {age:.0f} s ago ({state_dir / 'clock.json'})")
    return lines


def _status(args: argparse.Namespace) -> int:
    from gateway.clockwatch import kernel_sync, read_state  # noqa: PLC0415

    cfg = effective_config(load_site(args.config), os.environ, state_dir=args.state_dir)
    state_dir = cfg.state.dir
    saved = read_state(state_dir / "clock.json")
    for line in status_lines(state_dir, kernel_sync(), saved, datetime.now(UTC)):
        _say(line)
    return EXIT_OK


def _demo(argv: list[str]) -> int:
    from gateway.demo import main as demo_main  # noqa: PLC0415

    return demo_main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Edge gateway for restaurant kitchens.",
        epilog="Exit codes: 0 OK, 1 error, 2 bad site file or usage, 3 device write refused.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check-config", help="validate a site file and summarise it")
    check.add_argument("file", type=Path, metavar="FILE", help="the site file (TOML)")
    check.set_defaults(handler=_check_config)

    contract = sub.add_parser("contract", help="the MQTT contract documents under docs/")
    contract.add_argument("action", choices=("export", "check"), help="write, or verify")
    contract.add_argument("--dir", type=Path, default=Path("docs"), help="default: docs")
    contract.set_defaults(handler=_contract)

    run = sub.add_parser("run", help="run the gateway until Ctrl-C or SIGTERM")
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    run.add_argument("--mqtt-url", help=f"broker URL; overrides ${ENV_MQTT_URL} and the file")
    run.add_argument(
        "--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR} and the file"
    )
    run.add_argument(
        "--influx-url", help=f"stream telemetry to this InfluxDB; overrides ${ENV_INFLUX_URL}"
    )
    run.add_argument("--log-level", choices=LOG_LEVELS, default="INFO", type=str.upper)
    run.set_defaults(handler=_run)

    status = sub.add_parser("status", help="whether the clock can be trusted (and since when)")
    status.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    status.add_argument(
        "--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR} and the file"
    )
    status.set_defaults(handler=_status)

    _add_device_commands(sub)
    _add_telemetry_commands(sub)
    _add_alerts_commands(sub)
    _add_haccp_commands(sub)

    # The demo parses its own options: everything after `demo` is handed to it unchanged.
    sub.add_parser("demo", help="a simulated dinner service (gateway demo --help)", add_help=False)
    return parser


def _add_device_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    device = sub.add_parser("device", help="appliances: register maps, one-off reads, writes")
    actions = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    docs = actions.add_parser("docs", help="print a device profile's register map")
    docs.add_argument("profile", metavar="PROFILE", help="a profile id or a profile file")
    docs.add_argument(
        "--config", type=Path, metavar="FILE", help="also search this site's profile directories"
    )
    read = actions.add_parser("read", help="read and decode every point of a device once")
    read.add_argument("device", metavar="DEVICE", help="a device id from the site file")
    read.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    write = actions.add_parser(
        "write",
        help="write one value through the write guard, read it back, audit it",
        epilog="Exit code 3: the guard refused the write and nothing was sent.",
    )
    write.add_argument("device", metavar="DEVICE", help="a device id from the site file")
    write.add_argument("point", metavar="POINT", help="a writable point of its profile")
    write.add_argument("value", metavar="VALUE", help="a number, or true/false for a bit")
    write.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    write.add_argument(
        "--state-dir", type=Path, help=f"audit log directory; overrides ${ENV_STATE_DIR}"
    )
    device.set_defaults(handler=_device)


def _add_telemetry_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    telemetry = sub.add_parser("telemetry", help="the readings history: query it, see its sinks")
    actions = telemetry.add_subparsers(dest="telemetry_command", required=True, metavar="ACTION")
    query = actions.add_parser(
        "query",
        help="print a device's readings (one value per line)",
        epilog="Times without an offset are local. Default: the last hour.",
    )
    query.add_argument("device", metavar="DEVICE", help="a device id from the site file")
    query.add_argument("--point", metavar="P", help="only this point (or field) id")
    query.add_argument("--since", metavar="DURATION", help="e.g. 90s, 15m, 2h, 3d (default 1h)")
    query.add_argument("--from", dest="from_", metavar="TIME", help="e.g. 2026-12-04T18:00")
    query.add_argument("--to", metavar="TIME", help="(default: now)")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    status = actions.add_parser(
        "status",
        help="per sink: how far behind, the spool, what was dropped and why",
        epilog="Exit code 1: a sink is not ok, or readings were dropped.",
    )
    for p in (query, status):
        p.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
        p.add_argument(
            "--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR}"
        )
    telemetry.set_defaults(handler=_telemetry)


def _telemetry(args: argparse.Namespace) -> int:
    from gateway.telemetry import cli_commands as cmd  # noqa: PLC0415

    cfg = effective_config(load_site(args.config), os.environ, state_dir=args.state_dir)
    now = datetime.now(UTC)
    if args.telemetry_command == "status":
        return cmd.status(cfg, now)
    if args.from_ and args.since:
        _say("gateway telemetry query: give --since or --from, not both", sys.stderr)
        return EXIT_CONFIG
    try:
        until = cmd.parse_time(args.to) if args.to else now
        if args.from_:
            since = cmd.parse_time(args.from_)
        else:
            since = until - cmd.parse_duration(args.since or "1h")
    except ValueError as err:
        _say(f"gateway telemetry query: {err}", sys.stderr)
        return EXIT_CONFIG
    except OverflowError:  # a --since that reaches back before year 1
        _say(f"gateway telemetry query: --since {args.since or '1h'} reaches back before year 1; "
             "give a shorter duration, or --from", sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    return cmd.query(cfg, args.device, since=since, until=until, point=args.point,
                     fmt=args.format)  # fmt: skip


def _add_haccp_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    haccp = sub.add_parser("haccp", help="the food-safety (HACCP) record: report it, verify it")
    actions = haccp.add_subparsers(dest="haccp_command", required=True, metavar="ACTION")
    report = actions.add_parser(
        "report",
        help="the record of a period for an inspector: readings, excursions, actions, gaps",
        epilog="DATE: 2026-12-01 (a whole day: --to 2026-12-07 includes the 7th) or "
        "2026-12-01T18:00; local time without an offset. Exit code 1: the record is not intact "
        "(the report says where) or there is none.",
    )
    report.add_argument("--from", dest="from_", required=True, metavar="DATE")
    report.add_argument("--to", required=True, metavar="DATE")
    report.add_argument("--device", metavar="D", help="only this unit")
    report.add_argument("--format", choices=("csv", "pdf"), default="csv")
    report.add_argument("--output", type=Path, metavar="FILE", help="(default: standard output)")
    verify = actions.add_parser(
        "verify",
        help="check every record and the hash chain; name the first bad record",
        epilog="Exit code 1: a record is bad (its file, line and what is wrong are named).",
    )
    for p in (report, verify):
        p.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
        p.add_argument(
            "--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR}"
        )
    haccp.set_defaults(handler=_haccp)


def _haccp(args: argparse.Namespace) -> int:
    from gateway.telemetry import haccp_report as cmd  # noqa: PLC0415

    cfg = effective_config(load_site(args.config), os.environ, state_dir=args.state_dir)
    if args.haccp_command == "verify":
        return cmd.verify_command(cfg, sys.stdout)
    try:
        since, until = cmd.parse_date(args.from_), cmd.parse_date(args.to, end=True)
    except ValueError as err:
        _say(f"gateway haccp report: {err}", sys.stderr)
        return EXIT_CONFIG
    if until <= since:
        _say("gateway haccp report: --to must be after --from", sys.stderr)
        return EXIT_CONFIG
    if args.format == "pdf" and args.output is None and sys.stdout.isatty():
        _say("gateway haccp report: a PDF is not for a terminal; give --output FILE", sys.stderr)
        return EXIT_CONFIG
    return cmd.report(cfg, since=since, until=until, device=args.device, fmt=args.format,
                      output=args.output, now=datetime.now(UTC))  # fmt: skip


def _add_alerts_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser("alerts", help="the active alerts; acknowledge one")
    actions = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "list",
        help="print the active alerts from the state directory (beside a running gateway too)",
        epilog="Exit code 1: the alert store could not be read.",
    )
    show.add_argument("--all", action="store_true", help="also the alerts that are over")
    show.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    show.add_argument("--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR}")
    ack = actions.add_parser(
        "ack",
        help="acknowledge an alert through the gateway (over the broker); print its reply",
        epilog="Exit codes: 0 acknowledged (by this ack or an earlier one), 1 no broker or no "
        "reply within --timeout, 2 bad usage or site file, 3 not acknowledged: the alert is "
        "unknown or over, or the gateway refused the ack.",
    )
    ack.add_argument("alert_id", metavar="ID", help="e.g. fridge-1:cold_holding (alerts list)")
    ack.add_argument("--by", required=True, metavar="NAME", help="who takes it on")
    ack.add_argument("--note", required=True, metavar="TEXT", help="what was or will be done")
    ack.add_argument("--config", type=Path, required=True, metavar="FILE", help="the site file")
    ack.add_argument("--mqtt-url", help=f"broker URL; overrides ${ENV_MQTT_URL} and the file")
    ack.add_argument("--timeout", type=float, default=10.0, metavar="S",
                     help="seconds to wait for the reply (default 10)")  # fmt: skip
    backtest = actions.add_parser(
        "backtest",
        help="what the device's rules would have raised on a trace, or on the local history",
        epilog="A trace is CSV: time (ISO 8601 with an offset, or epoch seconds), point, value, "
        "and optionally device; `gateway telemetry query --format csv` prints one. Exit code "
        "2: a bad row (each is named), an unknown device, bad usage.",
    )
    backtest.add_argument("--device", required=True, metavar="DEVICE", help="a device id")
    source = backtest.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, metavar="FILE", help="readings in CSV")
    source.add_argument("--from", dest="from_", metavar="TIME", help="the local history from")
    backtest.add_argument("--to", metavar="TIME", help="(with --from; default: now)")
    backtest.add_argument("--format", choices=("table", "json"), default="table")
    backtest.add_argument("--config", type=Path, required=True, metavar="FILE",
                          help="the site file")  # fmt: skip
    backtest.add_argument(
        "--state-dir", type=Path, help=f"state directory; overrides ${ENV_STATE_DIR}"
    )
    alerts.set_defaults(handler=_alerts)


def _alerts(args: argparse.Namespace) -> int:
    from gateway.telemetry import alerts_cli as cmd  # noqa: PLC0415

    if args.alerts_command == "list":
        cfg = effective_config(load_site(args.config), os.environ, state_dir=args.state_dir)
        return cmd.list_alerts(cfg, show_all=args.all)
    if args.alerts_command == "backtest":
        return _backtest(args)
    cfg = effective_config(load_site(args.config), os.environ, mqtt_url=args.mqtt_url)
    # The command's own lines say what failed; the MQTT client's warnings would repeat them.
    setup_logging("ERROR")
    return cmd.ack(cfg, args.alert_id, by=args.by, note=args.note, timeout_s=args.timeout)


def _backtest(args: argparse.Namespace) -> int:
    from gateway.telemetry.backtest import backtest_command  # noqa: PLC0415
    from gateway.telemetry.cli_commands import parse_time  # noqa: PLC0415

    cfg = effective_config(load_site(args.config), os.environ, state_dir=args.state_dir)
    since = until = None
    if args.from_ is not None:
        try:
            since = parse_time(args.from_)
            until = parse_time(args.to) if args.to else datetime.now(UTC)
        except ValueError as err:
            _say(f"gateway alerts backtest: {err}", sys.stderr)
            return EXIT_CONFIG
    elif args.to is not None:
        _say("gateway alerts backtest: --to goes with --from", sys.stderr)
        return EXIT_CONFIG
    return backtest_command(cfg, args.device, trace=args.trace, since=since, until=until,
                            fmt=args.format)  # fmt: skip


def _leaves(group: BaseExceptionGroup[GatewayError]) -> list[GatewayError]:
    out: list[GatewayError] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


def _dispatch(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except ConfigError as err:
        _print_config_error(err, sys.stderr)
        return EXIT_CONFIG
    except ServiceFailed as err:
        # One line names the service and the cause; a cause that is not one of ours is a bug,
        # and the traceback is what its report needs.
        _say(f"gateway: error: {err}", sys.stderr)
        if not isinstance(err.cause, GatewayError):
            traceback.print_exception(err.cause, file=sys.stderr)
        return EXIT_ERROR
    except GatewayError as err:
        _say(f"gateway: error: {err}", sys.stderr)
        return EXIT_ERROR
    except BaseExceptionGroup as group:
        # A service failing inside the root TaskGroup arrives wrapped in a group.
        expected, rest = group.split(GatewayError)
        if expected is None or rest is not None:
            raise
        for leaf in _leaves(expected):
            _say(f"gateway: error: {leaf}", sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        # Ctrl-C before the gateway installed its own handler (e.g. while loading): not an error.
        return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gateway`` command.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.

    Returns:
        The process exit code.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(arguments)
    if args.command == "demo":
        return _dispatch(lambda _: _demo(arguments[arguments.index("demo") + 1 :]), args)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler: Callable[[argparse.Namespace], int] = args.handler
    return _dispatch(handler, args)


if __name__ == "__main__":
    sys.exit(main())
