"""sd_notify against real AF_UNIX datagram sockets, a path one and an abstract one."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.clock import ManualClock
from gateway.sdnotify import Notifier, watchdog, watchdog_interval

if TYPE_CHECKING:
    from collections.abc import Iterator


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def _messages(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, decoded, without blocking."""
    out: list[str] = []
    sock.setblocking(False)  # noqa: FBT003
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out


@pytest.fixture
def path_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound to a path in a temporary directory (as systemd's is)."""
    # Short base directory: a socket path must fit in sun_path's 108 bytes.
    with tempfile.TemporaryDirectory(prefix="sdn-", dir="/tmp") as tmp:
        name = str(Path(tmp) / "notify")
        sock = _receiver(name)
        try:
            yield name, sock
        finally:
            sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in Linux's abstract namespace; ``$NOTIFY_SOCKET`` spells it ``@...``."""
    label = f"gateway-test-{uuid.uuid4().hex}"
    sock = _receiver("\0" + label)
    try:
        yield "@" + label, sock
    finally:
        sock.close()


def test_ready_status_watchdog_stopping_reach_a_path_socket(
    path_socket: tuple[str, socket.socket],
) -> None:
    name, receiver = path_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": name})
    try:
        assert notifier.enabled
        assert notifier.ready("serving trattoria")
        assert notifier.status("3 stations online")
        assert notifier.ping()
        assert notifier.stopping()
    finally:
        notifier.close()
    assert _messages(receiver) == [
        "READY=1\nSTATUS=serving trattoria",
        "STATUS=3 stations online",
        "WATCHDOG=1",
        "STOPPING=1",
    ]
    assert notifier.sent == 4
    assert notifier.failures == 0


def test_an_abstract_socket_is_reached_through_its_at_name(
    abstract_socket: tuple[str, socket.socket],
) -> None:
    name, receiver = abstract_socket
    notifier = Notifier(name)
    try:
        assert notifier.ready()
    finally:
        notifier.close()
    assert receiver.recv(4096) == b"READY=1"


def test_a_newline_in_a_value_cannot_start_another_assignment(
    path_socket: tuple[str, socket.socket],
) -> None:
    name, receiver = path_socket
    notifier = Notifier(name)
    try:
        notifier.status("broker down\nREADY=1")
    finally:
        notifier.close()
    assert receiver.recv(4096) == b"STATUS=broker down READY=1"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_a_socket_every_call_is_a_quiet_no_op(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env(env)
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.ping()
    assert not notifier.stopping()
    assert (notifier.sent, notifier.failures) == (0, 0)
    assert caplog.records == []


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch, path_socket: tuple[str, socket.socket]
) -> None:
    name, receiver = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    notifier = Notifier.from_env()
    try:
        notifier.ping()
    finally:
        notifier.close()
    assert receiver.recv(4096) == b"WATCHDOG=1"


def test_a_failing_socket_is_logged_once_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tempfile.TemporaryDirectory(prefix="sdn-", dir="/tmp") as tmp:
        name = str(Path(tmp) / "notify")
        notifier = Notifier(name)
        try:
            with caplog.at_level(logging.INFO, logger="gateway.sdnotify"):
                # Nobody listens yet: every send fails, and says so once.
                assert not notifier.ready()
                assert not notifier.ping()
                assert not notifier.ping()
                receiver = _receiver(name)
                try:
                    assert notifier.ping()
                    assert receiver.recv(4096) == b"WATCHDOG=1"
                finally:
                    receiver.close()
        finally:
            notifier.close()
    assert notifier.failures == 3
    assert notifier.sent == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1
    assert name in warnings[0].getMessage()
    assert len(infos) == 1
    assert "works again" in infos[0].getMessage()


def test_a_full_receive_queue_drops_the_message_instead_of_blocking(
    path_socket: tuple[str, socket.socket],
) -> None:
    name, _receiver_not_reading = path_socket
    notifier = Notifier(name)
    try:
        # A receiver that never reads fills up after some datagrams; a blocking send would
        # hang here (and the event loop with it).
        results = [notifier.ping() for _ in range(5000)]
    finally:
        notifier.close()
    assert not all(results)
    assert notifier.failures == results.count(False)


def test_a_socket_name_that_is_not_unix_disables_it_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.sdnotify")
    notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert not notifier.ready()
    assert len(caplog.records) == 1
    assert "vsock:2:1234" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # a parent's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_watchdog_interval_checks_this_process_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None


def test_the_watchdog_pings_at_half_the_interval_on_the_clock(
    path_socket: tuple[str, socket.socket],
) -> None:
    name, receiver = path_socket
    clock = ManualClock()
    notifier = Notifier(name)

    async def main() -> list[int]:
        seen: list[int] = []
        task = asyncio.create_task(watchdog(clock, 10.0, notifier), name="sd-watchdog")
        await clock.run(0)
        seen.append(len(_messages(receiver)))  # the first ping goes out at once
        await clock.run(4.9)
        seen.append(len(_messages(receiver)))  # not yet due
        await clock.run(0.1)
        seen.append(len(_messages(receiver)))  # 5 s: half of 10
        await clock.run(20)
        seen.append(len(_messages(receiver)))  # 10, 15, 20, 25 s
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    try:
        assert asyncio.run(main()) == [1, 0, 1, 4]
    finally:
        notifier.close()


def test_the_watchdog_keeps_running_while_the_socket_fails() -> None:
    clock = ManualClock()
    notifier = Notifier("/nonexistent/notify")

    async def main() -> None:
        task = asyncio.create_task(watchdog(clock, 2.0, notifier), name="sd-watchdog")
        await clock.run(10)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        notifier.close()
    assert notifier.failures == 11  # at 0, 1, ..., 10 s


def test_the_watchdog_closes_a_notifier_it_made_itself(
    monkeypatch: pytest.MonkeyPatch, path_socket: tuple[str, socket.socket]
) -> None:
    name, receiver = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    clock = ManualClock()

    async def main() -> None:
        task = asyncio.create_task(watchdog(clock, 2.0), name="sd-watchdog")
        await clock.run(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert _messages(receiver) == ["WATCHDOG=1", "WATCHDOG=1"]


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_the_watchdog_refuses_a_nonsense_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        asyncio.run(watchdog(ManualClock(), interval, Notifier(None)))


def test_the_watchdog_returns_at_once_without_an_interval(
    path_socket: tuple[str, socket.socket],
) -> None:
    name, receiver = path_socket
    notifier = Notifier(name)
    try:
        asyncio.run(watchdog(ManualClock(), None, notifier))
    finally:
        notifier.close()
    assert _messages(receiver) == []
