"""Telemetry: every reading kept in the local history, and streamed to InfluxDB when configured.

Entered before the device service, so that it leaves after it: every reading the devices take
up to their stop is written. The device plug hands each reading to the recorders on the wiring
(``Wiring.recorders``): the devices know nothing of telemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.telemetry.sink import LineWriter
    from gateway.wiring import Wiring


async def plug(w: Wiring) -> None:
    """The recorder (the history) and its sinks, when the site has devices."""
    cfg = w.cfg
    if not cfg.devices:
        return
    from gateway.telemetry.recorder import Recorder  # noqa: PLC0415
    from gateway.telemetry.schema import schemas_for_site  # noqa: PLC0415
    from gateway.telemetry.sink import Sink  # noqa: PLC0415

    def alert(level: str, kind: str, text: str, subject: str) -> None:
        w.alert(level, kind, text, subject)

    path = cfg.state.dir / "telemetry.db"
    schemas = schemas_for_site(cfg, w.profiles())
    recorder = Recorder(
        cfg.telemetry, path, cfg.state.durability, schemas, w.real_clock, alert=alert,
        cursors=lambda: [s.cursor for s in w.sinks],
    )  # fmt: skip
    w.telemetry = await w.supervisor.enter(recorder, "telemetry")
    w.recorders.append(recorder.take)
    influx = cfg.telemetry.influx
    if influx is not None:

        def make_writer() -> LineWriter:
            # Imported here: influxdb-client is loaded only by a site that streams to one.
            from gateway.telemetry.influx import InfluxWriter  # noqa: PLC0415

            return InfluxWriter(influx)

        sink = Sink(
            "influx", path, make_writer, w.real_clock, batch_points=influx.batch_points,
            flush_s=influx.flush_s, alert=alert,
        )  # fmt: skip
        recorder.on_written(sink.notify)
        w.sinks.append(await w.supervisor.enter(sink))
