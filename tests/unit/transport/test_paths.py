"""Choosing the paths through paho: the pinned version, the fallback, the override, its hooks."""

from __future__ import annotations

import logging
import socket
import tomllib
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt import __version__ as installed_paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.errors import TransportError
from gateway.transport import paths
from gateway.transport.mqtt import MqttClient
from gateway.transport.paths import (
    PATHS_ENV,
    PINNED_PAHO,
    FastPahoClient,
    PahoClient,
    choose_paths,
)

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing said yet and no override."""
    monkeypatch.setattr(paths, "_said", set())
    monkeypatch.delenv(PATHS_ENV, raising=False)


def test_pyproject_pins_exactly_the_version_the_fast_paths_were_checked_against() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert f"paho-mqtt=={PINNED_PAHO}" in deps


def test_the_pinned_version_gets_the_fast_paths_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="gateway.transport.paths"):
        assert choose_paths(PINNED_PAHO) == "fast"
    assert caplog.records == []


def test_another_version_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="gateway.transport.paths"):
        assert choose_paths("2.3.1") == "paho"
        assert choose_paths("2.3.1") == "paho"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert "2.3.1" in text
    assert PINNED_PAHO in text
    assert paths.COST in text


@pytest.mark.parametrize("installed", [PINNED_PAHO, "2.3.1"])
def test_the_environment_forces_paho_s_own_paths(
    installed: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PATHS_ENV, " Paho ")
    with caplog.at_level(logging.INFO, logger="gateway.transport.paths"):
        assert choose_paths(installed) == "paho"
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert PATHS_ENV in record.getMessage()


def test_the_environment_forces_the_fast_paths_with_a_warning_on_another_version(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PATHS_ENV, "fast")
    with caplog.at_level(logging.INFO, logger="gateway.transport.paths"):
        assert choose_paths(PINNED_PAHO) == "fast"
        assert caplog.records == []
        assert choose_paths("3.0.0") == "fast"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "3.0.0" in record.getMessage()


def test_an_unknown_value_is_reported_once_and_means_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PATHS_ENV, "fastest")
    with caplog.at_level(logging.INFO, logger="gateway.transport.paths"):
        assert choose_paths(PINNED_PAHO) == "fast"
        assert choose_paths(PINNED_PAHO) == "fast"
    (record,) = caplog.records
    assert "'fastest'" in record.getMessage()
    assert PATHS_ENV in record.getMessage()


@pytest.mark.parametrize(("env", "cls"), [("fast", FastPahoClient), ("paho", PahoClient)])
def test_each_client_takes_the_paths_chosen_when_it_is_made(
    env: str, cls: type[PahoClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATHS_ENV, env)
    client = MqttClient("mqtt://127.0.0.1:1", "c")
    assert client.paths == env
    assert type(client._paho) is cls
    # paho's own paths rescan their window on each PUBACK: a narrower one (mqtt.py).
    assert client.inflight_window == (1000 if env == "fast" else 100)


def test_a_paho_without_the_installed_hooks_fails_at_start_up_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if a paho release renamed one (deleting a real one would break paho's own __del__).
    monkeypatch.setattr(paths, "_HOOKS", (*paths._HOOKS, "_renamed_in_a_later_paho"))
    with pytest.raises(TransportError, match=f"_renamed_in_a_later_paho.*paho-mqtt=={PINNED_PAHO}"):
        PahoClient(CallbackAPIVersion.VERSION2, client_id="c")


class _Socket:
    def __init__(self) -> None:
        self.reads = 0

    def recv(self, bufsize: int) -> bytes:
        self.reads += 1
        return b"\x00" * min(bufsize, 3)


def test_held_reads_would_block_on_paho_s_own_paths() -> None:
    """One loop_read reads a packet per pending publish; a pause must stop it mid-way."""
    client = PahoClient(CallbackAPIVersion.VERSION2, client_id="c")
    sock = _Socket()
    client._sock = sock  # type: ignore[assignment]
    assert client._sock_recv(2) == b"\x00\x00"
    client.hold_reads = True
    with pytest.raises(BlockingIOError):
        client._sock_recv(2)
    assert sock.reads == 1
    assert not client.buffered()  # nothing is kept outside the socket on plain TCP
    client._sock = None


def test_the_installed_paho_is_the_pinned_one() -> None:
    """The environment the tests run in gets the fast paths by default (auto)."""
    assert installed_paho == PINNED_PAHO


def _publish_311(mid: int, topic: bytes = b"t", payload: bytes = b"x") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + payload
    assert len(body) < 128
    return bytes((0x32, len(body))) + body


def test_a_read_pause_stops_paho_s_loop_read_at_the_next_packet() -> None:
    """paho reads one packet per pending publish in a loop_read: 1000 pending, 50 buffered."""
    client = PahoClient(
        CallbackAPIVersion.VERSION2, client_id="c", protocol=paho.MQTTv311, manual_ack=True
    )
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)  # noqa: FBT003
        client._sock = ours  # type: ignore[assignment]
        client._out_messages.update((mid, object()) for mid in range(1, 1001))  # type: ignore[misc]
        got: list[int] = []

        def on_message(_c: object, _u: object, m: paho.MQTTMessage) -> None:
            got.append(m.mid)
            if len(got) % 10 == 0:  # the owner's Receive Maximum: stop reading
                client.hold_reads = True

        client.on_message = on_message
        theirs.sendall(b"".join(_publish_311(mid) for mid in range(1, 51)))
        client.loop_read()
        assert got == list(range(1, 11))
        client.hold_reads = False
        client.loop_read()
        assert got == list(range(1, 21))
    finally:
        client._out_messages.clear()
        client._sock = None
        ours.close()
        theirs.close()
