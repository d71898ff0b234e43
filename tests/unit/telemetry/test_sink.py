"""The sink's loop against a scripted writer: retries, refusals, halving, the durable cursor.

The database itself is exercised in tests/integration/test_telemetry.py; here the writer is a
script of answers, so each failure kind is shown on its own, fast.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.clock import SystemClock
from gateway.errors import SinkError
from gateway.telemetry.history import History, HistoryReader, Row
from gateway.telemetry.lanes import Cursor
from gateway.telemetry.sink import Sink

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SERIES = ("fridge-1", "fridge", (("device", "fridge-1"),), "fridge,device=fridge-1")


class Script:
    """A writer that answers from a script, then takes everything."""

    def __init__(self, answers: list[SinkError | None] | None = None,
                 refuse: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.answers = list(answers or [])
        self.refuse = refuse
        self.bodies: list[str] = []
        self.taken: list[str] = []
        self.made = 0

    def make(self) -> Script:
        self.made += 1
        return self

    def write(self, body: str) -> None:
        self.bodies.append(body)
        if self.answers:
            answer = self.answers.pop(0)
            if answer is not None:
                raise answer
        if self.refuse is not None and any(self.refuse(line) for line in body.split("\n")):
            raise SinkError("influx", "rejected", 400, "bad line")
        self.taken += body.split("\n")

    def close(self) -> None:
        pass


def fill(path: Path, n: int, start: int = 0) -> int:
    with History(path, "normal") as h:
        rows = [
            Row(SERIES, (start + i) * 1000, safety=False, fields=f"n={start + i}i")
            for i in range(n)
        ]
        return h.append(rows)[1]


async def run_sink(path: Path, script: Script, until: Callable[[Sink], bool],
                   **kw: object) -> tuple[Sink, list[tuple[str, str]]]:  # fmt: skip
    alerts: list[tuple[str, str]] = []
    sink = Sink("influx", path, script.make, SystemClock(), batch_points=kw.pop("batch", 100),  # type: ignore[arg-type]
                flush_s=0.01, alert=lambda lvl, kind, _t, _s: alerts.append((lvl, kind)),
                **kw)  # type: ignore[arg-type]  # fmt: skip
    async with sink:
        with HistoryReader(path) as r:
            sink.notify(r.head())
        async with asyncio.timeout(20):
            while not until(sink):
                await asyncio.sleep(0.01)
    return sink, alerts


def values(lines: list[str]) -> list[int]:
    return [int(line.split(" ")[1][2:-1]) for line in lines]


def test_an_outage_is_retried_with_backoff_then_everything_arrives(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    head = fill(path, 250)
    down = SinkError("influx", "unavailable", None, "connection refused")
    script = Script([down, down, down])
    sink, alerts = asyncio.run(run_sink(path, script, lambda s: s.cursor.done >= head))
    assert sorted(values(script.taken)) == list(range(250))
    assert sink.stats.errors["unavailable"] == 3
    assert alerts == [
        ("medium", "telemetry_sink_unavailable"),
        ("clear", "telemetry_sink_unavailable"),
    ]
    with HistoryReader(path) as r:
        assert r.cursor("influx") == Cursor(head, head, head)  # durable
        assert r.sinks()[0].state == "ok"


def test_a_restarted_sink_goes_on_from_its_cursor(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    fill(path, 120)
    first = Script()
    asyncio.run(run_sink(path, first, lambda s: s.cursor.done >= 120))
    head = fill(path, 30, start=120)
    second = Script()
    asyncio.run(run_sink(path, second, lambda s: s.cursor.done >= head))
    assert values(second.taken) == list(range(120, 150))  # nothing twice, nothing skipped


def test_a_refused_token_is_not_retried_as_if_it_might_pass(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    fill(path, 10)
    no = SinkError("influx", "refused", 401, "the token is not accepted")
    script = Script([no, no])
    sink, alerts = asyncio.run(
        run_sink(path, script, lambda s: s.cursor.done >= 10, recheck_s=0.3)
    )
    assert ("critical", "telemetry_sink_refused") in alerts
    assert sink.stats.errors["refused"] == 2
    assert len(script.bodies) == 3  # one try per recheck, not a tight retry loop
    assert script.made == 3  # the writer is made again each time: a fixed token file counts


def test_bad_lines_are_found_by_halving_and_only_they_are_given_up(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    fill(path, 64)
    script = Script(refuse=lambda line: line.startswith("fridge") and " n=13i " in line)
    sink, alerts = asyncio.run(run_sink(path, script, lambda s: s.cursor.done >= 64))
    assert sorted(values(script.taken)) == [n for n in range(64) if n != 13]
    assert sink.stats.rejected == {"fridge-1": 1}
    assert alerts == [("medium", "telemetry_rejected")]
    with HistoryReader(path) as r:
        assert [(d, n) for d, _reason, n, _f, _l in r.drops()] == [("fridge-1", 1)]


def test_a_backlog_drains_beside_live_readings(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    fill(path, 1000)  # the backlog after an outage

    async def main() -> tuple[Sink, Script]:
        script = Script()
        sink = Sink("influx", path, script.make, SystemClock(), batch_points=100, flush_s=0.01,
                    alert=lambda *_: None)  # fmt: skip
        async with sink:
            with HistoryReader(path) as r:
                sink.notify(r.head())
            # A live reading arrives once the backlog is draining: it must not wait for all of it.
            while sink.cursor.done < 200:
                await asyncio.sleep(0.001)
            sink.notify(fill(path, 1, start=5000))
            async with asyncio.timeout(20):
                while sink.cursor.done < 1001:
                    await asyncio.sleep(0.01)
        return sink, script

    _sink, script = asyncio.run(main())
    order = values(script.taken)
    assert sorted(order) == [*range(1000), 5000]
    assert order.index(5000) < 600  # went by the live lane, ahead of most of the backlog
    backlog = [v for v in order if v != 5000]
    assert backlog == sorted(backlog)  # the backlog in time order
