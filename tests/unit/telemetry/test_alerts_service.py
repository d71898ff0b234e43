"""The alert service: durable before announced, notices mapped, acks answered, escalation ticks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.clock import ManualClock
from gateway.config import AlertsConfig
from gateway.contract import AckStatus, AlertAck, FieldError
from gateway.errors import ServiceFailed, StoreError
from gateway.events import Notice
from gateway.telemetry.alerts_service import ENDS_BY_ITSELF, AckUnreadable, AlertService
from gateway.telemetry.alerts_store import AlertStore
from gateway.telemetry.signals import Priority, Signal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import datetime

    from gateway.telemetry.alerts import AckResult, AlertEvent, AlertRecord
    from gateway.telemetry.alerts_store import Snapshot

GATEWAY = Path(__file__).resolve().parents[3] / "gateway"


@dataclass
class Outlet:
    """Records what is announced, and checks that each event is on disk when it is."""

    history: Path
    said: list[tuple[str, object]] = field(default_factory=list)

    def _on_disk(self) -> set[int]:
        if not self.history.exists():
            return set()
        return {json.loads(line)["seq"] for line in self.history.read_text().splitlines()}

    def events(self, events: Sequence[AlertEvent]) -> None:
        on_disk = self._on_disk()
        for e in events:
            assert e.seq in on_disk, "announced before it was durable"
            self.said.append(("event", e))

    def active(self, alerts: Sequence[AlertRecord], seq: int, at: datetime) -> None:
        assert seq == 0 or seq in self._on_disk()
        self.said.append(("active", [a.alert_id for a in alerts]))

    def reply(self, route: object, result: AckResult, at: datetime) -> None:
        self.said.append(("reply", (route, result.status)))

    def ack(self, token: object) -> None:
        self.said.append(("ack", token))

    def kinds(self) -> list[tuple[str, str]]:
        return [(e.alert.alert_id, e.event) for w, e in self.said if w == "event"]  # type: ignore[attr-defined]


def run(state: Path, body: Callable[[AlertService, ManualClock, Outlet], Awaitable[None]],
        *, store: AlertStore | None = None, outlet: Outlet | None = None) -> Outlet:  # fmt: skip
    outlet = outlet or Outlet(state / "alerts.jsonl")
    clock = ManualClock()

    async def main() -> None:
        svc = AlertService(AlertsConfig(), store or AlertStore(state, fsync=True), outlet, clock)
        async with svc:
            await body(svc, clock, outlet)
            await svc.idle()

    asyncio.run(main())
    return outlet


def test_a_notice_is_written_then_published_with_the_active_set(tmp_path: Path) -> None:
    async def body(svc: AlertService, _c: ManualClock, out: Outlet) -> None:
        assert out.said == [("active", [])]  # the (empty) set, at start
        svc.notice(Notice("critical", "kds_silent", "grill", "the screen at grill is silent"))
        svc.notice(Notice("critical", "kds_silent", "grill", "still silent"))  # a repeat
        await svc.idle()
        assert out.kinds() == [("grill:kds_silent", "opened")]
        assert out.said[-1] == ("active", ["grill:kds_silent"])
        assert svc.stats.repeats == 1
        svc.notice(Notice("clear", "kds_silent", "grill", "the screen at grill is back"))

    out = run(tmp_path, body)
    assert out.kinds() == [("grill:kds_silent", "opened"), ("grill:kds_silent", "cleared")]
    assert out.said[-1] == ("active", [])


def test_one_shot_notices_end_with_their_ack_and_conditions_with_their_clear(
    tmp_path: Path,
) -> None:
    async def body(svc: AlertService, _c: ManualClock, out: Outlet) -> None:
        svc.notice(Notice("critical", "dead_letter", "orders", "a message ... kept"))
        svc.notice(Notice("critical", "disk_full", "gateway", "the disk is nearly full"))
        for alert_id in ("orders:dead_letter", "gateway:disk_full"):
            svc.take_ack(AlertAck(alert_id=alert_id, by="Marta", note="on it"), "route", alert_id)
        await svc.idle()
        assert [a.alert_id for a in svc.active] == ["gateway:disk_full"]  # until space is back
        assert svc.active[0].acked_by == "Marta"

    out = run(tmp_path, body)
    assert out.kinds() == [
        ("orders:dead_letter", "opened"),
        ("gateway:disk_full", "opened"),
        ("orders:dead_letter", "acknowledged"),
        ("orders:dead_letter", "cleared"),
        ("gateway:disk_full", "acknowledged"),
    ]


def test_an_ack_is_answered_and_acknowledged_only_after_it_is_on_disk(tmp_path: Path) -> None:
    async def body(svc: AlertService, _c: ManualClock, out: Outlet) -> None:
        svc.signal(Signal("open", "fridge-1", "cold_holding", Priority.HIGH,
                          ManualClock().now(), text="too warm"))  # fmt: skip
        ack = AlertAck(alert_id="fridge-1:cold_holding", by="Marta", note="door closed")
        svc.take_ack(ack, "r1", "m1")
        svc.take_ack(ack, "r2", "m2")  # the same ack again, before the first is written
        svc.take_ack(AlertAck(alert_id="nope:x", by="Marta", note="?"), "r3", "m3")
        errors = (FieldError(path="by", message="missing"),)
        svc.take_ack(AckUnreadable("fridge-1:cold_holding", errors), "r4", "m4")

    out = run(tmp_path, body)
    after = [(w, x) for w, x in out.said if w in ("reply", "ack")]
    assert after == [
        ("reply", ("r1", AckStatus.ACKNOWLEDGED)), ("ack", "m1"),
        ("reply", ("r2", AckStatus.ALREADY_ACKNOWLEDGED)), ("ack", "m2"),
        ("reply", ("r3", AckStatus.UNKNOWN)), ("ack", "m3"),
        ("reply", ("r4", AckStatus.REJECTED)), ("ack", "m4"),
    ]  # fmt: skip
    # The reply to the repeat came after the first ack's event was published (durable).
    said = [w for w, _ in out.said]
    assert said.index("event") < said.index("reply")


def test_unacknowledged_alerts_escalate_on_the_injected_clock(tmp_path: Path) -> None:
    async def body(svc: AlertService, clock: ManualClock, out: Outlet) -> None:
        svc.notice(Notice("high", "device_fault", "fryer-1", "fryer-1: internal failure"))
        await svc.idle()
        await clock.run(899)
        await svc.idle()
        assert out.kinds() == [("fryer-1:device_fault", "opened")]
        await clock.run(2)
        await svc.idle()
        await clock.run(600)
        await svc.idle()

    out = run(tmp_path, body)
    assert out.kinds() == [
        ("fryer-1:device_fault", "opened"),
        ("fryer-1:device_fault", "escalated"),
        ("fryer-1:device_fault", "renotified"),
    ]
    escalated = [e for w, e in out.said if w == "event"][1]
    assert escalated.alert.priority is Priority.CRITICAL  # type: ignore[attr-defined]


def test_levels_are_priorities_and_the_old_words_are_still_heard(tmp_path: Path) -> None:
    async def body(svc: AlertService, _c: ManualClock, _o: Outlet) -> None:
        svc.notice(Notice("warning", "a", "gateway", "old word"))
        svc.notice(Notice("info", "b", "gateway", "old word"))
        svc.notice(Notice("loud", "c", "gateway", "a typo"))
        await svc.idle()
        assert {a.alert_id: a.priority for a in svc.active} == {
            "gateway:a": Priority.MEDIUM, "gateway:b": Priority.LOW, "gateway:c": Priority.HIGH,
        }  # fmt: skip

    run(tmp_path, body)


def test_active_alerts_come_back_after_a_restart_and_are_announced_at_once(
    tmp_path: Path,
) -> None:
    async def first(svc: AlertService, _c: ManualClock, _o: Outlet) -> None:
        svc.notice(Notice("medium", "clock_unsynchronised", "gateway", "not synchronised"))
        svc.notice(Notice("critical", "disk_full", "gateway", "nearly full"))

    run(tmp_path, first)

    async def second(svc: AlertService, _c: ManualClock, out: Outlet) -> None:
        assert out.said == [("active", ["gateway:disk_full", "gateway:clock_unsynchronised"])]
        svc.notice(Notice("critical", "disk_full", "gateway", "nearly full"))  # still: a repeat
        await svc.idle()
        assert out.kinds() == []

    run(tmp_path, second)


def test_what_is_queued_at_the_stop_is_written_and_announced(tmp_path: Path) -> None:
    async def body(svc: AlertService, _c: ManualClock, _o: Outlet) -> None:
        svc.notice(Notice("high", "device_fault", "oven-1", "oven-1: failure"))
        # No idle(): leaving the service must not lose it.

    outlet = Outlet(tmp_path / "alerts.jsonl")

    async def main() -> None:
        svc = AlertService(AlertsConfig(), AlertStore(tmp_path, fsync=True), outlet,
                           ManualClock())  # fmt: skip
        async with svc:
            await body(svc, ManualClock(), outlet)
        svc.notice(Notice("high", "device_fault", "oven-2", "too late"))
        assert svc.stats.late == 1

    asyncio.run(main())
    assert outlet.kinds() == [("oven-1:device_fault", "opened")]


def test_a_damaged_state_is_set_aside_rebuilt_and_said(tmp_path: Path) -> None:
    async def first(svc: AlertService, _c: ManualClock, _o: Outlet) -> None:
        svc.notice(Notice("critical", "disk_full", "gateway", "nearly full"))

    run(tmp_path, first)
    (tmp_path / "alerts.json").write_bytes(b"\x00\x00\x00")

    async def second(svc: AlertService, _c: ManualClock, out: Outlet) -> None:
        await svc.idle()
        assert {a.alert_id for a in svc.active} == {"gateway:disk_full",
                                                    "gateway:alert_state_damaged"}  # fmt: skip

    out = run(tmp_path, second)
    assert (tmp_path / "alerts.json.corrupt").read_bytes() == b"\x00\x00\x00"
    assert out.kinds() == [("gateway:alert_state_damaged", "opened")]
    json.loads((tmp_path / "alerts.json").read_text())  # whole again


class FailingStore(AlertStore):
    def write(self, events: Sequence[AlertEvent], snapshot: Snapshot) -> None:
        raise StoreError("cannot write alerts.jsonl: No space left on device")


def test_a_write_that_fails_stops_the_service_and_nothing_unwritten_is_announced(
    tmp_path: Path,
) -> None:
    async def body(svc: AlertService, _c: ManualClock, _o: Outlet) -> None:
        svc.notice(Notice("critical", "disk_full", "gateway", "nearly full"))
        await asyncio.sleep(5)  # the writer's failure cancels this

    out = Outlet(tmp_path / "alerts.jsonl")
    with pytest.raises(ServiceFailed, match="alerts stopped: cannot write"):
        run(tmp_path, body, store=FailingStore(tmp_path, fsync=True), outlet=out)
    assert out.said == [("active", [])]  # the start's empty set, and nothing after it


#: Where each condition of ENDS_BY_ITSELF is cleared, and how the call site names it.
_SINK = 'self._alert("clear", f"telemetry_sink_{before}"'
CLEARED_AT = {
    "kds_silent": ("routing/screens.py", '"clear",\n                        "kds_silent"'),
    "disk_full": ("routing/service.py", 'level = "critical" if low else "clear"'),
    "clock_unsynchronised": ("clockwatch.py", 'self._alert("clear", "clock_unsynchronised"'),
    "telemetry_sink_unavailable": ("telemetry/sink.py", _SINK),
    "telemetry_sink_refused": ("telemetry/sink.py", _SINK),
    "telemetry_write_failed": ("telemetry/recorder.py",
                               'self._alert("clear", "telemetry_write_failed"'),
    "haccp_write_failed": ("telemetry/haccp_service.py",
                           'self._alert("clear", "haccp_write_failed"'),
}  # fmt: skip


def test_every_condition_that_ends_by_itself_has_a_clear_at_its_call_site() -> None:
    # A kind missing from ENDS_BY_ITSELF would be ended by its first ack while the condition
    # still holds; one listed without a clear would stay active for ever once acknowledged.
    assert set(CLEARED_AT) == ENDS_BY_ITSELF
    for kind, (module, call) in CLEARED_AT.items():
        assert call in (GATEWAY / module).read_text(encoding="utf-8"), (kind, module)
