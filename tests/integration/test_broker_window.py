"""The gateway says what to change when the broker holds its publishes to a few in flight."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import uvloop

from gateway.app import Gateway
from gateway.site_file import load_site
from gateway.transport.broker import MosquittoProcess
from gateway.transport.mqtt import MqttClient

pytestmark = pytest.mark.integration

FAST_SITE = Path(__file__).with_name("fast-site.toml")


def start_and_stop(url: str, state: Path) -> int:
    cfg = load_site(FAST_SITE).with_overrides(mqtt_url=url, state_dir=state)

    async def main() -> int:
        async with Gateway(cfg) as gw:
            assert gw.mqtt is not None
            return gw.mqtt.inflight_window

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def own_window() -> int:
    """The client's own window: paho's own paths keep a narrower one (transport/mqtt.py)."""
    return MqttClient("mqtt://127.0.0.1:1", "probe").inflight_window


def test_a_broker_with_mosquitto_s_default_window_gets_a_warning_naming_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.app")
    with MosquittoProcess(max_inflight_messages=20) as broker:  # Mosquitto's default
        window = start_and_stop(broker.url, tmp_path / "state")
    assert window == 20
    (warning,) = [r.getMessage() for r in caplog.records if "Receive Maximum" in r.getMessage()]
    assert "max_inflight_messages 1000" in warning


def test_a_broker_with_a_wide_window_gets_none(
    broker: MosquittoProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.app")
    assert start_and_stop(broker.url, tmp_path / "state") == own_window()
    assert not [r for r in caplog.records if "Receive Maximum" in r.getMessage()]
