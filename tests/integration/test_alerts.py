"""Alerts through a real Mosquitto and the real gateway: raised, retained, acknowledged, kept.

The first test runs the gateway in process (``gateway.app.Gateway``) and feeds its alert service
a detector's signal, as the detector service does; the second runs it as a child process, kills
it with SIGKILL and drives it with the ``gateway alerts`` commands.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Self

import pytest
import uvloop

from gateway.app import Gateway
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.site_file import load_site
from gateway.telemetry.signals import Priority, Signal
from gateway.transport.broker import MosquittoProcess
from gateway.transport.mqtt import InboundMessage, MqttClient
from tests.support.gateway_process import GatewayProcess
from tests.support.tablet import until

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")
CFG = load_site(SITE)
ROOT = f"rst/{CFG.site.id}/alerts"
FRIDGE = "fridge-1:cold_holding"


class Watcher:
    """A maintenance screen: alert events, the retained active set, its own ack replies."""

    def __init__(self, url: str, name: str) -> None:
        self.client = MqttClient(url, name, clean_start=True)
        self.events: list[dict[str, Any]] = []
        self.active: dict[str, Any] | None = None
        self.replies: dict[bytes, dict[str, Any]] = {}
        self.mine = f"{ROOT}/ack_replies/{name}"

    async def __aenter__(self) -> Self:
        await self.client.__aenter__()
        self.client.set_handler(self._on)
        for topic in (ROOT, f"{ROOT}/active", self.mine):
            self.client.subscribe(topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)

    def _on(self, msg: InboundMessage) -> None:
        self.client.ack(msg)
        if not msg.payload:
            return
        body = json.loads(msg.payload)
        if msg.topic == ROOT:
            self.events.append(body)
        elif msg.topic == f"{ROOT}/active":
            self.active = body
        elif msg.correlation_data is not None:
            self.replies[bytes(msg.correlation_data)] = body

    def active_ids(self) -> list[str]:
        return [] if self.active is None else [a["alert_id"] for a in self.active["alerts"]]

    def said(self, alert_id: str) -> list[str]:
        return [e["event"] for e in self.events if e["alert_id"] == alert_id]

    async def ack(self, alert_id: str, tag: bytes, by: str = "Marta") -> dict[str, Any]:
        body = {"v": 1, "alert_id": alert_id, "by": by, "note": "door was ajar: closed"}
        self.client.publish(f"{ROOT}/ack", json.dumps(body).encode(), response_topic=self.mine,
                            correlation_data=tag)  # fmt: skip
        assert await until(lambda: tag in self.replies, 5), f"no reply to {tag!r}"
        return self.replies[tag]


async def retained(url: str) -> dict[str, Any]:
    """What a screen that subscribes now gets: the retained active set."""
    async with Watcher(url, "test-late-screen") as late:
        assert await until(lambda: late.active is not None, 5), "no retained active set"
        assert late.active is not None
        return late.active


def test_an_alert_is_retained_acknowledged_once_survives_a_restart_and_clears(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    cfg = CFG.with_overrides(mqtt_url=broker.url, state_dir=tmp_path / "state")
    now = SystemClock().now

    def warm(kind: str) -> Signal:
        return Signal(kind, "fridge-1", "cold_holding", Priority.HIGH, now(),  # type: ignore[arg-type]
                      point="cabinet_temp", value=9.4, limit=8.0, food_safety=True,
                      text="walk-in fridge above 8.0 °C for 20 min")  # fmt: skip

    async def scenario() -> None:
        async with Watcher(broker.url, "test-maintenance") as screen:
            async with Gateway(cfg) as gw:
                gw.alerts.signal(warm("open"))
                gw.alerts.signal(warm("open"))  # the detector says it again: one alert
                assert await until(lambda: FRIDGE in screen.active_ids(), 5)
                assert screen.said(FRIDGE) == ["opened"]
                (opened,) = [e for e in screen.events if e["alert_id"] == FRIDGE]
                assert (opened["v"], opened["priority"], opened["value"], opened["limit"]) == (
                    2, "high", 9.4, 8.0
                )
                # Others may be active too (this box's clock may not be synchronised).
                assert FRIDGE in [a["alert_id"] for a in (await retained(broker.url))["alerts"]]

                first = await screen.ack(FRIDGE, b"1")
                assert (first["status"], first["acked_by"]) == ("acknowledged", "Marta")
                again = await screen.ack(FRIDGE, b"2", by="Luca")
                assert (again["status"], again["acked_by"]) == ("already_acknowledged", "Marta")
                unknown = await screen.ack("nope:nothing", b"3")
                assert unknown["status"] == "unknown"
                assert screen.said(FRIDGE) == ["opened", "acknowledged"]
                assert await until(lambda: screen.active is not None and [
                    a["acked_by"] for a in screen.active["alerts"] if a["alert_id"] == FRIDGE
                ] == ["Marta"], 5)  # fmt: skip

            # Only the gateway can bring the set back now: the broker's copy is gone.
            screen.client.publish(f"{ROOT}/active", b"", retain=True)
            await asyncio.sleep(0.2)
            async with Gateway(cfg) as gw:
                (alert,) = [a for a in (await retained(broker.url))["alerts"]
                            if a["alert_id"] == FRIDGE]  # fmt: skip
                assert (alert["acked_by"], alert["note"]) == ("Marta", "door was ajar: closed")
                gw.alerts.signal(warm("clear"))
                assert await until(lambda: screen.said(FRIDGE)[-1:] == ["cleared"], 5)
                assert await until(lambda: FRIDGE not in screen.active_ids(), 5)
                assert FRIDGE not in [a["alert_id"] for a in (await retained(broker.url))["alerts"]]
                late = await screen.ack(FRIDGE, b"4", by="Luca")
                assert (late["status"], late["acked_by"]) == ("already_acknowledged", "Marta")
                assert late["cleared_at"] is not None
        assert screen.said(FRIDGE) == ["opened", "acknowledged", "cleared"]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


def _lines(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(list(args))
    return code, capsys.readouterr().out.splitlines()


def test_a_killed_gateway_keeps_its_alerts_and_the_commands_list_and_acknowledge_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    where = ("--config", str(SITE), "--state-dir", str(state))
    window = "gateway:broker_window"  # what a broker that allows 20 in flight gets: a low alert

    def listed() -> list[str]:
        code, out = _lines(capsys, "alerts", "list", *where)
        assert code == 0
        return [line for line in out if window in line]

    with MosquittoProcess(max_inflight_messages=20) as broker:
        gateway = GatewayProcess(SITE, broker.url, state)
        try:
            gateway.start()
            assert asyncio.run(until(lambda: bool(listed()), 5)), gateway.log()[-2000:]
            (line,) = listed()
            assert line.startswith("low ")
            assert "unacknowledged" in line
            gateway.kill()
            gateway.start()
            (line,) = listed()  # kept; the restart saw the same broker and said nothing new
            history = (state / "alerts.jsonl").read_text().splitlines()
            assert [json.loads(h)["event"] for h in history if window in h] == ["opened"]

            ack = ("alerts", "ack", window, "--by", "Marta", "--note", "raised the broker's window",
                   "--config", str(SITE), "--mqtt-url", broker.url)  # fmt: skip
            code, out = _lines(capsys, *ack)
            said = f"acknowledged: {window} acknowledged by Marta; nothing else ends this alert"
            assert (code, out[0]) == (0, said + ", so it is over now")
            code, out = _lines(capsys, *ack)
            assert code == 0
            assert out[0].startswith(f"already_acknowledged: {window} was already acknowledged")
            code, out = _lines(capsys, "alerts", "ack", "nope:x", "--by", "M", "--note", "x",
                               "--config", str(SITE), "--mqtt-url", broker.url)  # fmt: skip
            assert (code, out[0].split(":")[0]) == (3, "unknown")
            assert listed() == []
            code, out = _lines(capsys, "alerts", "list", "--all", *where)
            assert any(window in line and "Marta" in line for line in out)
        finally:
            assert gateway.stop() == 0
